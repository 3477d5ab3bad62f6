"""One small pFedPara run on Flower's simulation engine: records carry the dense-equivalent
bytes, the per-client accuracy and the model's conversion (the one Ray-based test here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedlite.config import RunConfig
from simulations.engine import Resources, simulate

pytestmark = pytest.mark.integration  # Flower's simulation runtime on Ray


def test_pfedpara_run_records_saving_and_client_accuracy(tmp_path):
    cfg = RunConfig.from_mapping({
        "dataset": "digits", "num-clients": 2, "num-rounds": 1, "partitioner": "iid",
        "model": "mlp", "fraction-evaluate": 1.0, "results-dir": str(tmp_path),
        "fedpara.mode": "pfedpara", "fedpara.gamma": 0.5})
    summary = simulate(cfg, Resources(num_cpus=1))
    run_dir = Path(summary["run-dir"])
    last = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()][-1]
    assert 0 < last["bytes-up"] < last["dense-bytes-up"] / 2  # W2 stays home
    assert 0 < last["bytes-down"] < last["dense-bytes-down"] / 2
    assert 0.0 <= last["client-accuracy-mean"] <= 1.0 and last["client-accuracy-std"] >= 0.0
    assert summary["final-client-accuracy-mean"] == last["client-accuracy-mean"]
    assert summary["total-dense-bytes"] > summary["total-bytes"]
    model = json.loads((run_dir / "config.json").read_text())["model"]
    assert [layer["name"] for layer in model["layers"]] == ["fc1", "fc2"]
    assert model["local-keys"] and all("fedpara_local_" in k for k in model["local-keys"])
    assert "pfedpara conversion" in (run_dir / "model.txt").read_text()
