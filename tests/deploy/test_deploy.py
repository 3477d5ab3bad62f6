"""A real deployment on loopback: SuperLink + SuperNodes as processes, TLS and node auth on.

One federation serves every check (processes are the slow part): 3 registered SuperNodes run
3 rounds of FedPara through ``flwr run``; a 4th, unregistered SuperNode is refused; one
registered SuperNode is stopped after round 1 and the run still completes. Every wait is
bounded and every process is stopped by PID in the fixture's teardown, even on failure.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from simulations.deploy.cluster import Cluster

pytestmark = pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("ssh-keygen")),
                                reason="needs openssl and ssh-keygen")

NODES = 3
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


def test_unregistered_supernode_is_refused(cluster):
    cluster.node_key(NODES)  # a key pair that was never registered
    proc = cluster.start_supernode(NODES, partition_id=0, num_partitions=NODES, max_wait=20)
    code = wait_for(lambda: proc.poll() is not None, 60, "the unregistered SuperNode's exit")
    assert code and proc.returncode != 0
    assert "Failed to activate SuperNode" in cluster.log(f"supernode{NODES}")


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
    assert lines[1]["replies-ok"] == NODES  # the unregistered node never took part
    assert all(2 <= line["replies-ok"] <= NODES for line in lines[2:])
    assert all(line["round-skipped"] == 0 and line["replies-rejected"] == 0 for line in lines[1:])
    assert 0 < lines[-1]["bytes-up"] < lines[-1]["dense-bytes-up"]  # only FedPara factors
    summary = json.loads((finished[0] / "summary.json").read_text())
    assert summary["rounds"] == 3 and summary["final-accuracy"] > 0.3
