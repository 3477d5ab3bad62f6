"""An existing Ray cluster: two raylets on this machine (Ray's own cluster utilities), fedlite
attaches through ``ray-address`` and its clients train on both nodes.

Which node trained a client is told by the worker process itself: Ray starts every worker with
``RAY_RAYLET_PID``, its raylet's PID, and a small method of the test's (loaded through the
``methods`` key, as a user's would be) leaves one mark per client round named by it; so the
test also shows that Ray workers load a user's method from the run config alone.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fedlite.config import RunConfig
from fedlite.methods import table

pytestmark = pytest.mark.integration

MARKER = textwrap.dedent('''
    import os
    from dataclasses import dataclass
    from pathlib import Path

    from fedlite.fields import setting
    from fedlite.methods import Method


    @dataclass(frozen=True)
    class MarkConfig:
        where: str = setting("", "directory for one mark per client round; '' = off")


    class Mark(Method):
        name = "mark"
        settings = MarkConfig
        label = "raylet marks"

        def active(self, s):
            return bool(s.where)

        def attach(self, s, rnd):
            raylet = os.environ.get("RAY_RAYLET_PID", "outside-ray")
            mark = f"{raylet}-{os.getpid()}-{rnd.client_id}-{rnd.server_round}"
            (Path(s.where) / mark).touch()
''')


@pytest.fixture
def two_node_cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1, include_dashboard=False)
        cluster.wait_for_nodes()
        raylets = {str(node.all_processes["raylet"][0].process.pid)
                   for node in cluster.list_all_nodes()}
        yield cluster.address, raylets
    finally:
        cluster.shutdown()
        # `ray start` (and these utilities) record the cluster for a later bare ray.init();
        # fedlite never reads that file, but leave no stale address behind for other tools
        recorded = Path("/tmp/ray/ray_current_cluster")
        if recorded.is_file() and recorded.read_text().strip() == cluster.address:
            recorded.unlink()


def test_clients_train_on_both_nodes_of_an_existing_cluster(two_node_cluster, tmp_path):
    from simulations.engine import Resources, simulate

    address, raylets = two_node_cluster
    assert len(raylets) == 2
    marks = tmp_path / "marks"
    marks.mkdir()
    method = tmp_path / "mark_method.py"
    method.write_text(MARKER)
    try:
        cfg = RunConfig.from_mapping({
            "methods": f"{method}:Mark", "mark.where": str(marks), "dataset": "digits",
            "num-clients": 4, "num-rounds": 2, "partitioner": "iid", "model": "mlp",
            "central-eval-size": 200, "results-dir": str(tmp_path / "results")})
        summary = simulate(cfg, Resources(num_cpus=1, ray_address=address))
    finally:
        table.unregister("mark")
        table._loaded.discard(f"{method}:Mark")
    assert summary["rounds"] == 2 and summary["failure"] is None
    trained = [mark.name.split("-") for mark in marks.iterdir()]
    assert len(trained) == 2 * 4  # every client in every round
    assert {raylet for raylet, *_ in trained} == raylets  # both nodes trained clients
