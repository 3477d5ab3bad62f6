"""The README's `flwr run .` command, as a Flower user runs it: Flower's own CLI builds the app,
starts a local SuperLink in the background and simulates the federation with it.

Real processes. The SuperLink that `flwr run` leaves running is found by the FLWR_HOME this test
gives it (no other process names that directory) and stopped by its PID, also on failure.
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
ROUNDS, CLIENTS = 2, 4


def superlinks_under(home: Path) -> list[int]:
    """PIDs of the SuperLinks whose command line names ``home`` (the one this test started)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:  # the process ended while we looked
            continue
        if any(b"flower-superlink" in arg for arg in argv) and \
                any(str(home).encode() in arg for arg in argv):
            pids.append(int(cmdline.parent.name))
    return pids


def test_flwr_run_simulates_the_app_with_the_readme_command(tmp_path):
    home, results = tmp_path / "flwr-home", tmp_path / "results"
    bin_dir = Path(sys.executable).parent  # as after `source .venv/bin/activate`: flwr
    env = dict(os.environ, FLWR_HOME=str(home), FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
               PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")  # finds its SuperLink
    run_config = (f"num-rounds={ROUNDS} num-clients={CLIENTS} dataset='digits' local-epochs=5 "
                  f"results-dir='{results}'")
    argv = [str(bin_dir / "flwr"), "run", ".", "--run-config", run_config,
            "--federation-config", f"num-supernodes={CLIENTS} client-resources-num-cpus=1",
            "--stream"]
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
    finally:
        for pid in superlinks_under(home):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "fedlite: run complete" in output
    (run_dir,) = [d for d in results.iterdir() if d.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    lines = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]
    assert [line["round"] for line in lines] == list(range(ROUNDS + 1))  # round 0: the start
    assert all(line.get("replies-ok") == CLIENTS for line in lines[1:])
    assert summary["final-accuracy"] > 0.5  # digits after two rounds of five local epochs
