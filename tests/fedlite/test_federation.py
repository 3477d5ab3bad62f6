"""The framework-free federation: seeds, array loading, the initial model, sequential FedAvg."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedlite.config import RunConfig
from fedlite.arrays import load_arrays, state_arrays
from fedlite.federation import data_for, initial_model, run_sequential_fedavg
from fedlite.seeding import derive_seed
from fedlite.models import build_model
from fedlite.train import evaluate

torch.set_num_threads(1)


@pytest.fixture
def small_cfg(partition_cache, tmp_path) -> RunConfig:
    return RunConfig(num_rounds=2, num_clients=3, dataset="digits", partitioner="iid",
                     model="mlp", batch_size=32, lr=0.05, seed=5, device="cpu",
                     results_dir=str(tmp_path / "results"))


def test_derive_seed_deterministic_and_distinct():
    seeds = {derive_seed(0, r, c) for r in range(1, 6) for c in range(20)}
    assert len(seeds) == 100
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    assert derive_seed(0, 1, 2) != derive_seed(0, 2, 1) != derive_seed(1, 1, 2)
    assert all(0 <= s < 2 ** 63 for s in seeds)
    torch.Generator().manual_seed(max(seeds))  # usable as a torch seed


def test_load_arrays_round_trip():
    torch.manual_seed(0)
    source = build_model("mlp", (1, 8, 8), 10)
    target = build_model("mlp", (1, 8, 8), 10)
    load_arrays(target, state_arrays(source))
    for key, value in state_arrays(target).items():
        np.testing.assert_array_equal(value, state_arrays(source)[key])


def test_state_arrays_are_copies():
    model = build_model("mlp", (1, 8, 8), 10)
    arrays = state_arrays(model)
    arrays["fc2.bias"][:] = 123.0
    assert not torch.any(model.state_dict()["fc2.bias"] == 123.0)


def test_load_arrays_shape_mismatch_names_key_and_both_shapes():
    # Prepare
    model = build_model("mlp", (1, 8, 8), 10)
    before = state_arrays(model)
    arrays = {"fc1.bias": np.zeros(256, np.float32), "fc2.weight": np.zeros((3, 256), np.float32)}
    # Execute / Assert
    with pytest.raises(ValueError,
                       match=r"`fc2.weight`: model has \(10, 256\), received \(3, 256\)"):
        load_arrays(model, arrays)
    # nothing was copied, not even the arrays that did fit
    np.testing.assert_array_equal(state_arrays(model)["fc1.bias"], before["fc1.bias"])


def test_load_arrays_unknown_key():
    model = build_model("mlp", (1, 8, 8), 10)
    with pytest.raises(KeyError, match="`conv9.weight` does not belong to this model"):
        load_arrays(model, {"conv9.weight": np.zeros(3, np.float32)})
    load_arrays(model, {"conv9.weight": np.zeros(3, np.float32),
                        "fc2.bias": np.ones(10, np.float32)}, strict=False)
    np.testing.assert_array_equal(state_arrays(model)["fc2.bias"], np.ones(10))


def test_initial_model_deterministic_from_seed(small_cfg):
    # Prepare
    data = data_for(small_cfg)
    torch.manual_seed(999)
    rng_before = torch.random.get_rng_state()
    # Execute
    a = state_arrays(initial_model(small_cfg, data))
    b = state_arrays(initial_model(small_cfg, data))
    c = state_arrays(initial_model(small_cfg.replace(seed=6), data))
    # Assert
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the global stream is untouched
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_sequential_fedavg_learns_and_is_deterministic(small_cfg):
    # Prepare
    data = data_for(small_cfg)
    _, initial_accuracy = evaluate(initial_model(small_cfg, data), data.dataset.test_x,
                                   data.dataset.test_y)
    seen = []
    # Execute
    held = []  # what after_round sees: the model holding the round's global arrays
    first = run_sequential_fedavg(small_cfg, on_round=lambda *args: seen.append(args),
                                  after_round=lambda m, r: held.append((r, state_arrays(m))))
    second = run_sequential_fedavg(small_cfg)
    # Assert
    assert len(first.accuracy) == 2 and [r for r, _, _ in seen] == [1, 2]
    # the clients' own seconds, summed per round: part of each round's wall time
    assert len(first.train_seconds) == 2
    assert all(0 < t <= r for t, r in zip(first.train_seconds, first.round_seconds, strict=True))
    assert [r for r, _ in held] == [1, 2]
    for key, value in held[-1][1].items():
        np.testing.assert_array_equal(value, first.arrays[key], err_msg=key)
    assert first.accuracy[-1] > max(0.6, initial_accuracy + 0.3)
    assert first.accuracy == second.accuracy
    assert first.arrays.keys() == state_arrays(initial_model(small_cfg, data)).keys()
    for key in first.arrays:
        assert first.arrays[key].dtype == np.float32
        np.testing.assert_array_equal(first.arrays[key], second.arrays[key], err_msg=key)


def test_sequential_fedavg_one_client_one_round_equals_local_training(small_cfg):
    """With one client, FedAvg's average is that client's model."""
    from fedlite.federation import local_round

    cfg = small_cfg.replace(num_clients=1, num_rounds=1)
    data = data_for(cfg)
    model = initial_model(cfg, data)
    local_round(model, data.client(0), cfg, 1, 0)
    result = run_sequential_fedavg(cfg)
    for key, value in state_arrays(model).items():
        np.testing.assert_allclose(result.arrays[key], value, rtol=1e-6, atol=1e-7, err_msg=key)
