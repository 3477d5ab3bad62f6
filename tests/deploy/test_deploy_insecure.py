"""docs/DEPLOY.md's path without TLS, as a user runs it: ``local.sh --insecure`` to a completed run.

Real processes: the script starts a SuperLink and two SuperNodes with ``--insecure`` (and so
without SuperNode authentication, which Flower allows only over TLS), runs ``flwr run`` and stops
them all. The test stops whatever is left by the PIDs the script writes, also on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NODES = 2


def _stop_leftovers(workdir: Path) -> None:
    """Kill the process group of every PID the script recorded that still runs (each was
    started as the leader of its own session, so its group id is its PID)."""
    for pid_file in workdir.glob("*.pid"):
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def test_local_script_without_tls_completes_a_run(tmp_path):
    workdir = tmp_path / "deploy"
    argv = ["bash", str(ROOT / "simulations" / "deploy" / "local.sh"), "--insecure",
            "--nodes", str(NODES), "--workdir", str(workdir), "--timeout", "240",
            "num-rounds=1", 'dataset="digits"', 'partitioner="iid"', 'model="mlp"',
            "central-eval-size=200", "node-wait-timeout=90.0"]
    script = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, FEDLITE_PYTHON=sys.executable),
                              start_new_session=True)
    try:
        out, err = script.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        script.send_signal(signal.SIGTERM)  # the script stops its processes on SIGTERM
        out, err = script.communicate(timeout=60)
        pytest.fail(f"local.sh --insecure did not finish within 300 s:\n{out}\n{err}")
    finally:
        _stop_leftovers(workdir)
    # Assert: it said what is off, and the run completed with every node's replies
    assert script.returncode == 0, f"{out}\n{err}\n{_tail(workdir / 'flwr-run.log')}"
    assert "TLS OFF, node auth off" in out
    assert "TLS is off" in err and "authentication is off" in err
    assert "Traceback" not in err
    [run_dir] = [p for p in (workdir / "results").iterdir() if not p.name.endswith(".partial")]
    lines = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]
    assert [line["round"] for line in lines] == [0, 1]
    assert all(line["replies-ok"] == NODES for line in lines[1:])
    assert json.loads((run_dir / "summary.json").read_text())["rounds"] == 1


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.is_file() else ""
