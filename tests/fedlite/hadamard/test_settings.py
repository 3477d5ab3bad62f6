"""``fedpara.local-lr-scale``: pFedPara's local factors get their own learning rate; 1 is plain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedlite.config import ConfigError, RunConfig
from fedlite.data import ClientData
from fedlite.arrays import state_arrays
from fedlite.federation import data_for, initial_model, local_round

BASE = {"dataset": "digits", "model": "mlp", "fedpara.mode": "pfedpara", "fedpara.gamma": 0.5,
        "lr": 0.02, "momentum": 0.0}


def _round(digits, **changes):
    cfg = RunConfig.from_mapping({**BASE, **changes})
    torch.manual_seed(0)
    model = initial_model(cfg, data_for(cfg))
    before = state_arrays(model)
    client = ClientData(digits.train_x[:256], digits.train_y[:256], digits.test_x[:8],
                        digits.test_y[:8])
    local_round(model, client, cfg, 1, 0)
    after = state_arrays(model)
    return {k: np.abs(after[k] - before[k]).mean() for k in before if after[k].dtype.kind == "f"}


def test_scale_multiplies_only_the_local_factors_steps(digits):
    plain = _round(digits)
    scaled = _round(digits, **{"fedpara.local-lr-scale": 10.0})
    local = [k for k in plain if "fedpara_local_" in k]
    assert local
    for key in local:  # first steps: the update grows with the learning rate
        assert scaled[key] > 3 * plain[key], key
    # the shared factors still take steps of the shared learning rate's size
    assert scaled["fc1.fedpara_x1"] < 3 * plain["fc1.fedpara_x1"]


def test_scale_one_is_plain_sgd_exactly(digits):
    assert _round(digits) == _round(digits, **{"fedpara.local-lr-scale": 1.0})


def test_scale_must_be_positive():
    with pytest.raises(ConfigError, match="fedpara.local-lr-scale"):
        RunConfig.from_mapping({"fedpara.local-lr-scale": 0})
