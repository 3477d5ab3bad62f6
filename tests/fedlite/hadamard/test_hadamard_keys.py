"""State-dict key contract: factor/local keys, wire/local split, numpy round trip."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from fedlite.hadamard import (FACTOR_PREFIX, LOCAL_PREFIX, is_factor_key, is_local_key,
                              split_state)
from fedlite.hadamard.convert import convert
from fedlite.models import build_model

torch.set_num_threads(1)


def _pfedpara_mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("mlp", (1, 28, 28), 10)
    convert(model, mode="pfedpara", gamma=0.5)
    return model


def test_prefixes_and_predicates():
    assert (FACTOR_PREFIX, LOCAL_PREFIX) == ("fedpara_", "fedpara_local_")
    assert is_factor_key("features.0.fedpara_x1") and not is_local_key("features.0.fedpara_x1")
    assert is_factor_key("fc1.fedpara_local_x2") and is_local_key("fc1.fedpara_local_y2")
    assert not is_factor_key("fc1.bias") and not is_factor_key("fedpara_x1.weight")
    assert is_factor_key("fedpara_t") and not is_local_key("fedpara_local.weight")


def test_split_pfedpara_keeps_exactly_the_local_factors():
    # Prepare
    state = _pfedpara_mlp(0).state_dict()
    # Execute
    wire, local = split_state(state)
    # Assert
    assert list(local) == ["fc1.fedpara_local_x2", "fc1.fedpara_local_y2",
                           "fc2.fedpara_local_x2", "fc2.fedpara_local_y2"]
    assert list(wire) == ["fc1.fedpara_x1", "fc1.fedpara_y1", "fc1.bias",
                          "fc2.fedpara_x1", "fc2.fedpara_y1", "fc2.bias"]
    assert all(wire[k] is state[k] for k in wire)


def test_split_fedper_local_module():
    state = build_model("mlp", (1, 28, 28), 10).state_dict()
    wire, local = split_state(state, local_modules=("fc2",))
    assert list(local) == ["fc2.weight", "fc2.bias"]
    assert list(wire) == ["fc1.weight", "fc1.bias"]


@pytest.mark.parametrize("name", ["fc3", "fc", "fc1.weight.x"])
def test_split_unknown_module(name):
    state = build_model("mlp", (1, 28, 28), 10).state_dict()
    with pytest.raises(ValueError, match=f"{name}.*fc1, fc2"):
        split_state(state, local_modules=(name,))


def test_round_trip_through_numpy():
    # Prepare: a client's state as numpy, split for the wire, then rebuilt
    source, target = _pfedpara_mlp(0), _pfedpara_mlp(1)
    arrays = {k: v.detach().cpu().numpy() for k, v in source.state_dict().items()}
    wire, local = split_state(arrays, local_modules=("fc2",))
    # Execute
    target.load_state_dict({k: torch.from_numpy(v) for k, v in {**wire, **local}.items()},
                           strict=True)
    # Assert
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(target(x), source(x))
    assert set(local) == {"fc1.fedpara_local_x2", "fc1.fedpara_local_y2", "fc2.fedpara_x1",
                          "fc2.fedpara_y1", "fc2.fedpara_local_x2", "fc2.fedpara_local_y2",
                          "fc2.bias"}


def test_no_flwr_import():
    code = ("import sys, fedlite.hadamard; "
            "assert 'flwr' not in sys.modules and 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
