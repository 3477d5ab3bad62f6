"""The ``skip.*`` run-config keys: defaults, coercion, errors naming the key."""

from __future__ import annotations

import pytest

from fedlite.config import ConfigError, RunConfig
from fedlite.methods import table
from fedlite.train.skip import SkipControl
from fedlite.train.skip.method import Skip


def test_defaults_are_off_and_keys_are_dotted():
    flat = RunConfig().to_flat()
    assert flat["skip.enabled"] is False
    assert {"skip.error-bound", "skip.bins", "skip.period"} <= set(flat)
    assert not any(isinstance(method, Skip) for method, _ in table.active(RunConfig()))


def test_keys_coerce_from_strings():
    cfg = RunConfig.from_mapping({"skip.enabled": "true", "skip.error-bound": "0.2",
                                  "skip.bins": "20", "skip.period": "epoch"})
    s = cfg.section("skip")
    assert (s.enabled, s.error_bound, s.bins, s.period) == (True, 0.2, 20, "epoch")
    assert any(isinstance(method, Skip) for method, _ in table.active(cfg))
    warm = RunConfig.from_mapping({"skip.enabled": "true", "skip.warmup-rounds": "2"})
    assert warm.section("skip").warmup_rounds == 2
    shrink = RunConfig.from_mapping({"skip.batching": "shrink", "skip.min-threshold": "0.6"})
    assert (shrink.section("skip").batching, shrink.section("skip").min_threshold) == \
        ("shrink", 0.6)
    assert RunConfig.from_mapping({"skip.refill-size": "16"}).section("skip").refill_size == 16


@pytest.mark.parametrize(("key", "value"), [
    ("skip.error-bound", 1.0), ("skip.error-bound", -0.1), ("skip.error-bound", "nan"),
    ("skip.bins", 0), ("skip.bins", -3), ("skip.period", "batch"), ("skip.period", "3"),
    ("skip.warmup-rounds", -1), ("skip.warmup-rounds", 1.5),
    ("skip.min-threshold", -0.1), ("skip.min-threshold", 1.5), ("skip.min-threshold", "nan"),
    ("skip.batching", "queue"), ("skip.batching", ""),
    ("skip.refill-size", -1), ("skip.refill-size", 2.5),
])
def test_bad_values_name_their_key(key, value):
    with pytest.raises(ConfigError, match=f"run config `{key}`"):
        RunConfig.from_mapping({key: value})


def test_control_built_directly_is_validated_the_same_way():
    with pytest.raises(ConfigError, match="`skip.error-bound`"):
        SkipControl(error_bound=1.5)
    with pytest.raises(ConfigError, match="`skip.bins`"):
        SkipControl(bins=0)
