"""Flower's simulation engine against a plain sequential FedAvg: no update lost or doubled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedlite.config import RunConfig
from fedlite.federation import run_sequential_fedavg
from fedlite.records import load_checkpoint
from simulations.engine import Resources, simulate

pytestmark = pytest.mark.integration  # Flower's simulation runtime on Ray


@pytest.fixture(scope="module")
def digits_config(tmp_path_factory) -> RunConfig:
    return RunConfig(num_rounds=2, num_clients=4, dataset="digits", partitioner="dirichlet",
                     dirichlet_alpha=1.0, local_epochs=1, batch_size=16, lr=0.05, seed=3,
                     results_dir=str(tmp_path_factory.mktemp("results")), run_name="exact")


@pytest.fixture(scope="module")
def flower_run(digits_config):
    lines: list[dict] = []
    summary = simulate(digits_config, Resources(num_cpus=1), on_round=lines.append)
    return summary, lines


def test_flower_fedavg_equals_sequential_fedavg(digits_config, flower_run):
    # Prepare
    summary, _ = flower_run
    torch.set_num_threads(1)
    # Execute
    expected = run_sequential_fedavg(digits_config).arrays
    completed_round, actual = load_checkpoint(summary["run-dir"])
    # Assert
    assert completed_round == digits_config.num_rounds
    assert actual.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def test_every_client_replies_in_every_round(digits_config, flower_run):
    _, lines = flower_run
    trained = [line for line in lines if line["round"] >= 1]
    assert [line["replies-ok"] for line in trained] == [digits_config.num_clients] * 2
    assert all(line["replies-failed"] == 0 for line in trained)
    assert all(line["bytes-down"] == line["bytes-up"] > 0 for line in trained)
