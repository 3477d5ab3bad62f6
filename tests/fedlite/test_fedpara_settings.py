"""The ``fedpara`` section and personalization keys: validation, model building, key split."""

from __future__ import annotations

import pytest

from fedlite.config import ConfigError, RunConfig
from fedlite.federation import build_initial, data_for, initial_model
from fedlite.wire import personalized, split_keys

BASE = {"dataset": "digits", "num-clients": 4, "partitioner": "iid"}


def config(**keys) -> RunConfig:
    return RunConfig.from_mapping({**BASE, **keys})


def test_gamma_outside_unit_interval_names_the_key():
    with pytest.raises(ConfigError, match=r"`fedpara\.gamma`.*\[0, 1\]"):
        config(**{"fedpara.gamma": 1.5})


def test_bad_gamma_fails_in_the_cli_before_ray_starts(capsys):
    import ray

    from simulations.cli import main

    assert main(["run", "digits-smoke", "fedpara.mode=fedpara", "fedpara.gamma=1.5"]) == 2
    assert "fedpara.gamma" in capsys.readouterr().err
    assert not ray.is_initialized()


def test_unknown_mode_names_the_key():
    with pytest.raises(ConfigError, match=r"`fedpara\.mode`"):
        config(**{"fedpara.mode": "hadamard"})


def test_exclude_matching_nothing_is_a_clear_error():
    cfg = config(model="cnn", **{"fedpara.mode": "fedpara", "fedpara.exclude": "fc9"})
    with pytest.raises(ConfigError, match=r"`fedpara\.exclude`.*\['fc9'\].*available"):
        initial_model(cfg, data_for(cfg))


def test_local_modules_matching_nothing_is_a_clear_error():
    cfg = config(model="mlp", **{"local-modules": "head"})
    with pytest.raises(ConfigError, match=r"`local-modules`.*\['head'\].*fc2"):
        split_keys(cfg, initial_model(cfg, data_for(cfg)))


def test_same_seed_gives_identical_converted_models():
    cfg = config(model="mlp", **{"fedpara.mode": "pfedpara", "fedpara.gamma": 0.5})
    (a, (report,)), b = build_initial(cfg, data_for(cfg)), initial_model(cfg, data_for(cfg))
    assert report.mode == "pfedpara" and report.local_params > 0
    for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert (x == y).all(), key


@pytest.mark.parametrize("keys, local", [
    ({}, []),
    ({"fedpara.mode": "fedpara"}, []),
    ({"fedpara.mode": "pfedpara"}, ["fc1.fedpara_local_x2", "fc1.fedpara_local_y2",
                                    "fc2.fedpara_local_x2", "fc2.fedpara_local_y2"]),
    ({"local-modules": "fc2"}, ["fc2.weight", "fc2.bias"]),
    ({"federated": False}, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]),
])
def test_split_keys_per_method(keys, local):
    cfg = config(model="mlp", **keys)
    model = initial_model(cfg, data_for(cfg))
    wire, kept = split_keys(cfg, model)
    assert kept == local and not set(wire) & set(kept)
    assert personalized(cfg, model) == bool(local)
