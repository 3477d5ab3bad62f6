"""SuperNodes as separate hosts: each in its own network namespace, dialing the SuperLink
across a veth link with TLS and node authentication, as on separate machines.

Runs wherever network namespaces can be made (root with ``ip``; about a minute); skipped
elsewhere, or with ``FEDLITE_TEST_NETNS=0``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time

import pytest

from simulations.deploy import netns
from simulations.deploy.cluster import Cluster

NODES = 2
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("FEDLITE_TEST_NETNS") == "0",
                       reason="turned off with FEDLITE_TEST_NETNS=0"),
    pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("ssh-keygen")),
                       reason="needs openssl and ssh-keygen")]


def test_supernodes_in_their_own_network_namespaces(tmp_path):
    if not netns.available():
        pytest.skip("network namespaces are not permitted here")
    results = tmp_path / "results"
    with contextlib.ExitStack() as stack:
        spaces = [stack.enter_context(netns.Namespace(i)) for i in range(NODES)]
        cluster = stack.enter_context(Cluster(tmp_path / "deploy", host="0.0.0.0",
                                              cert_names=tuple(s.host_ip for s in spaces)))
        try:
            cluster.start_superlink()
            for i, space in enumerate(spaces):
                cluster.register(i)
                cluster.start_supernode(i, i, NODES, superlink=f"{space.host_ip}:{cluster.port}",
                                        prefix=tuple(space.exec_prefix()))
            run = cluster.start_run(
                f'num-rounds=2 num-clients={NODES} node-wait-timeout=90.0 dataset="digits" '
                f'partitioner="iid" model="mlp" fedpara.mode="fedpara" central-eval-size=200 '
                f'results-dir="{results}"')
            deadline = time.monotonic() + 240
            while run.poll() is None and time.monotonic() < deadline:
                time.sleep(1)
            assert run.returncode == 0, cluster.log("flwr-run")[-3000:]
        finally:
            cluster.stop_all()
    [run_dir] = [p for p in results.iterdir() if not p.name.endswith(".partial")]
    lines = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]
    assert [line["round"] for line in lines] == [0, 1, 2]
    assert all(line["replies-ok"] == NODES for line in lines[1:])
