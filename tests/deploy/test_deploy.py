"""A real deployment on loopback: SuperLink + SuperNodes as processes, TLS and node auth on.

One federation serves every check (processes are the slow part): 3 registered SuperNodes run
3 rounds of FedPara through ``flwr run``; one registered SuperNode is stopped after round 1 and
the run still completes. The common mistakes of docs/DEPLOY.md meet the same SuperLink, side by
side, and the page states what is checked here: an unregistered key, a node without TLS, a node
trusting another CA, a node key without TLS, and a SuperLink asked for authentication without
TLS. Every wait is bounded and every process is stopped by PID, even on failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from simulations.deploy.cluster import BIN, Cluster, free_port

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("ssh-keygen")),
                                 reason="needs openssl and ssh-keygen")]

NODES = 3
CERTS_SH = Path(__file__).resolve().parents[2] / "simulations" / "deploy" / "certs.sh"
RUN_SECONDS = 240  # bound on the whole run (3 rounds take ~1-2 min on 2 busy cores)


def wait_for(predicate, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"{what} not within {timeout:g}s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("deploy")
    with Cluster(workdir, tls=True, auth=True) as running:
        try:
            running.start_superlink()
            for i in range(NODES):
                running.register(i)
                running.start_supernode(i, partition_id=i, num_partitions=NODES)
            yield running
        finally:
            running.stop_all()  # also on failure: by PID, with their ClientApp processes
            for name in running.procs:  # what each process said, for a red CI
                print(f"--- {name}.log (tail)\n{running.log(name)[-1500:]}")


def rounds(results: Path) -> list[dict]:
    files = sorted(results.glob("*/rounds.jsonl"))
    return [json.loads(line) for line in files[0].read_text().splitlines()] if files else []


def test_common_mistakes_end_the_supernode_with_status_1(cluster):
    """What docs/DEPLOY.md tells a user to look for: each SuperNode exits with status 1 (Flower's
    own exit code is only in the log text), the unregistered and wrong-CA ones within their
    start-up, the one without TLS after retrying for its ``--max-wait-time``."""
    other_ca = cluster.dir / "other-ca"
    subprocess.run(["bash", str(CERTS_SH), str(other_ca)], check=True, capture_output=True,
                   timeout=60)
    cluster.register(NODES + 1)  # a registered key, so only the transport is wrong below
    node_config = ["--node-config", f"partition-id=0 num-partitions={NODES}"]
    mistakes = {  # name: (extra flags, max wait, what its log says)
        "unregistered": ([*cluster.tls_args(), "--auth-supernode-private-key",
                          str(cluster.node_key(NODES))], 300,
                         ["Exit Code: 305", "Failed to activate SuperNode"]),
        "no-tls": (["--insecure"], 5,
                   ["Connection attempt failed, retrying", "Giving up reconnection after",
                    "Exit Code: 305"]),
        "other-ca": (["--root-certificates", str(other_ca / "ca.crt"),
                      "--auth-supernode-private-key", str(cluster.node_key(NODES + 1))], 300,
                     ["CERTIFICATE_VERIFY_FAILED", "Exit Code: 305"]),
        "key-without-tls": (["--insecure", "--auth-supernode-private-key",
                             str(cluster.node_key(NODES + 1))], 300, ["Exit Code: 303"]),
    }
    started = time.monotonic()
    procs = {name: cluster._spawn(f"mistake-{name}", [
        str(BIN / "flower-supernode"), "--superlink", cluster.address, *flags, *node_config,
        "--port", str(free_port()), "--max-wait-time", str(wait)])
        for name, (flags, wait, _) in mistakes.items()}
    wait_for(lambda: all(p.poll() is not None for p in procs.values()), 120,
             "every mistaken SuperNode's exit")
    elapsed = time.monotonic() - started
    for name, (_, _, says) in mistakes.items():
        log = cluster.log(f"mistake-{name}")
        assert procs[name].returncode == 1, f"{name}: {procs[name].returncode}\n{log[-2000:]}"
        for text in says:
            assert text in log, f"{name}: {text!r} not in\n{log[-2000:]}"
    assert elapsed < 120  # none of those with --max-wait-time 300 waited for it


def test_superlink_refuses_authentication_without_tls(tmp_path):
    """Why ``--insecure`` turns authentication off in the scripts: Flower's SuperLink exits."""
    with pytest.raises(ValueError, match="needs TLS"):
        Cluster(tmp_path / "refused", tls=False, auth=True)
    done = subprocess.run([str(BIN / "flower-superlink"), "--insecure", "--enable-supernode-auth",
                           "--port", str(free_port())], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Exit Code: 104" in done.stdout + done.stderr


def test_fedpara_run_completes_though_a_node_is_stopped(cluster):
    results = cluster.dir / "results"
    run = cluster.start_run(
        f'num-rounds=3 num-clients={NODES} min-replies=2 round-timeout=150.0 '
        f'node-wait-timeout=90.0 dataset="digits" partitioner="iid" model="mlp" '
        f'fedpara.mode="fedpara" central-eval-size=200 results-dir="{results}"')
    # Stop one SuperNode (by PID) once round 1 is recorded: rounds 2 and 3 go on without it.
    wait_for(lambda: len(rounds(results)) >= 2 or run.poll() is not None, RUN_SECONDS,
             "round 1")
    cluster.stop("supernode2")
    wait_for(lambda: run.poll() is not None, RUN_SECONDS, "the end of the run")
    assert run.returncode == 0, cluster.log("flwr-run")[-3000:]
    finished = [p for p in results.iterdir() if not p.name.endswith(".partial")]
    assert len(finished) == 1, "the run did not complete"
    lines = rounds(results)
    assert [line["round"] for line in lines] == [0, 1, 2, 3]
    assert lines[1]["replies-ok"] == NODES  # no mistaken node took part
    assert all(2 <= line["replies-ok"] <= NODES for line in lines[2:])
    assert all(line["round-skipped"] == 0 and line["replies-rejected"] == 0 for line in lines[1:])
    assert 0 < lines[-1]["bytes-up"] < lines[-1]["dense-bytes-up"]  # only FedPara factors
    summary = json.loads((finished[0] / "summary.json").read_text())
    assert summary["rounds"] == 3 and summary["final-accuracy"] > 0.3
