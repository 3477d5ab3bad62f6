"""The README's strategy example, saved outside the repository, runs through the simulation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fedlite.config import RunConfig
from fedlite.arrays import state_arrays
from fedlite.federation import data_for, initial_model
from fedlite.records import load_checkpoint
from simulations.engine import Resources, simulate

pytestmark = pytest.mark.integration  # Flower's simulation runtime on Ray

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_strategy_source() -> str:
    section = README.read_text().split("## Write a strategy", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_strategy_from_a_file_outside_the_repo(tmp_path):
    # Prepare
    module = tmp_path / "my_strategies.py"
    module.write_text(readme_strategy_source())
    cfg = RunConfig(num_rounds=1, num_clients=3, dataset="digits", partitioner="iid",
                    strategy=f"{module}:FedAvgWithServerLR",
                    strategy_kwargs=json.dumps({"server_lr": 0.0}),
                    results_dir=str(tmp_path / "results"), run_name="user-strategy")
    # Execute
    summary = simulate(cfg, Resources(num_cpus=1))
    # Assert: server_lr = 0 keeps the initial model, so the class really ran
    config = json.loads((Path(summary["run-dir"]) / "config.json").read_text())
    assert config["strategy"] == "FedAvgWithServerLR"
    _, arrays = load_checkpoint(summary["run-dir"])
    initial = state_arrays(initial_model(cfg, data_for(cfg)))
    for key, value in initial.items():
        np.testing.assert_allclose(arrays[key], value, err_msg=key)
