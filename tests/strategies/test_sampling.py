"""Seeded sampling: node ids listed in partition order, so one seed trains the same clients in
every run although the simulation draws new random node ids each time."""

from __future__ import annotations

import numpy as np

from fedlite.config import RunConfig
from fedlite.records import load_checkpoint
from simulations.engine import Resources, simulate
from strategies.sampling import PartitionOrderedGrid


def test_node_ids_come_in_partition_order(grid):
    ordered = PartitionOrderedGrid(grid([70, 10, 55, 99]), {70: 0, 10: 2, 55: 1})
    assert list(ordered.get_node_ids()) == [70, 55, 10, 99]  # 99 answered nothing: last


def test_two_runs_with_one_seed_sample_the_same_clients(tmp_path):
    def final_weights(seed: int) -> dict[str, np.ndarray]:
        cfg = RunConfig.from_mapping({
            "dataset": "digits", "num-clients": 6, "num-rounds": 2, "partitioner": "iid",
            "model": "mlp", "fraction-train": 0.5, "central-eval-size": 50, "seed": seed,
            "results-dir": str(tmp_path / str(seed))})
        return load_checkpoint(simulate(cfg, Resources(num_cpus=1))["run-dir"])[1]

    first, second = final_weights(0), final_weights(0)
    for key in first:
        # allclose: FedAvg sums replies in arrival order; another sample moves weights by far more
        np.testing.assert_allclose(first[key], second[key], rtol=1e-4, atol=1e-6, err_msg=key)
