"""RunConfig: defaults, coercion, unknown keys, validation naming its key, round trip."""

from __future__ import annotations

import pytest

from fedlite.config import ConfigError, RunConfig


def test_defaults_and_empty_mapping():
    cfg = RunConfig.from_mapping({})
    assert cfg == RunConfig()
    assert (cfg.num_rounds, cfg.num_clients, cfg.strategy) == \
        (10, 20, "flwr.serverapp.strategy:FedAvg")
    assert (cfg.dataset, cfg.partitioner, cfg.model) == ("auto", "dirichlet", "cnn")
    assert cfg.strategy_arguments() == {}


def test_from_mapping_coerces_strings_and_ints():
    # Execute
    cfg = RunConfig.from_mapping({"num-rounds": "3", "lr": 1, "dirichlet-alpha": "0.25",
                                  "central-eval": "false", "momentum": "0", "seed": 7.0,
                                  "run-name": 5})
    # Assert
    assert cfg.num_rounds == 3 and type(cfg.num_rounds) is int
    assert cfg.lr == 1.0 and type(cfg.lr) is float
    assert cfg.dirichlet_alpha == 0.25
    assert cfg.central_eval is False
    assert cfg.momentum == 0.0 and cfg.seed == 7
    assert cfg.run_name == "5"


@pytest.mark.parametrize(("key", "value"), [("num-rounds", "three"), ("num-rounds", 2.5),
                                            ("central-eval", "maybe"), ("lr", "fast")])
def test_uncoercible_value_names_key_and_type(key, value):
    with pytest.raises(ConfigError, match=f"`{key}`: expected"):
        RunConfig.from_mapping({key: value})


def test_unknown_key_suggests_the_close_key():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_mapping({"num-round": 3})
    assert "`num-round`" in str(info.value)
    assert "did you mean `num-rounds`" in str(info.value)


def test_unknown_key_without_close_match_points_to_fedlite_keys():
    with pytest.raises(ConfigError, match="unknown run config key `zzzz`.*fedlite keys"):
        RunConfig.from_mapping({"zzzz": 1})


@pytest.mark.parametrize(("key", "value"), [
    ("num-rounds", 0), ("num-clients", 0), ("dataset", "cifar-1000"),
    ("partitioner", "random"), ("dirichlet-alpha", 0), ("dirichlet-alpha", -1.0),
    ("classes-per-client", 0), ("client-test-fraction", 1.0), ("client-test-fraction", -0.1),
    ("fraction-train", 0.0), ("fraction-train", 1.5), ("fraction-evaluate", 2.0),
    ("node-wait-timeout", 0), ("round-timeout", -1), ("local-epochs", 0), ("batch-size", 0),
    ("lr", 0), ("lr", -0.1), ("lr-decay", 0), ("lr-decay", 1.1), ("momentum", 1.0),
    ("weight-decay", -1e-4), ("clip-grad-norm", -1.0), ("device", "tpu"), ("strategy", "FedAvg"),
    ("strategy-kwargs", "{not json"), ("strategy-kwargs", "[1, 2]"),
])
def test_each_validation_names_its_key(key, value):
    with pytest.raises(ConfigError, match=f"run config `{key}`"):
        RunConfig.from_mapping({key: value})


def test_bad_choice_lists_the_choices():
    with pytest.raises(ConfigError, match="digits") as info:
        RunConfig(dataset="cifar-1000")
    assert "fashion-mnist" in str(info.value)
    with pytest.raises(ConfigError, match="iid, dirichlet, pathological"):
        RunConfig(partitioner="random")


def test_strategy_kwargs_json_error_shows_an_example():
    with pytest.raises(ConfigError, match="not valid JSON.*fraction_train"):
        RunConfig(strategy_kwargs="{'a': 1}")


def test_strategy_arguments_decodes_json():
    cfg = RunConfig(strategy_kwargs='{"fraction_train": 0.5, "min_train_nodes": 2}')
    assert cfg.strategy_arguments() == {"fraction_train": 0.5, "min_train_nodes": 2}
    assert RunConfig(strategy_kwargs="").strategy_arguments() == {}


def test_to_flat_from_mapping_round_trip():
    # Prepare
    cfg = RunConfig(num_rounds=3, num_clients=5, dataset="digits", partitioner="pathological",
                    classes_per_client=3, lr=0.1, lr_decay=0.5, central_eval=False,
                    strategy_kwargs='{"min_train_nodes": 2}', run_name="x")
    # Execute
    flat = cfg.to_flat()
    again = RunConfig.from_mapping(flat)
    # Assert
    assert again == cfg
    assert all("_" not in key for key in flat)
    assert flat["num-rounds"] == 3 and flat["central-eval"] is False
    assert RunConfig.from_mapping({k: str(v) for k, v in flat.items()}) == cfg


def test_lr_at_decays_per_round():
    cfg = RunConfig(lr=0.1, lr_decay=0.5)
    assert [cfg.lr_at(r) for r in (1, 2, 3)] == pytest.approx([0.1, 0.05, 0.025])


def test_replace_revalidates():
    assert RunConfig().replace(num_rounds=2).num_rounds == 2
    with pytest.raises(ConfigError, match="`lr`"):
        RunConfig().replace(lr=0.0)


def test_skip_selection_every_must_be_a_positive_integer():
    with pytest.raises(ConfigError, match="skip.selection-every"):
        RunConfig.from_mapping({"skip.selection-every": 0})
