"""The attack of robustness experiments: who attacks, what an attacker sends, and the keys."""

from __future__ import annotations

import numpy as np
import pytest

from fedlite.attack.method import Attack, poisoned
from fedlite.attack.settings import AttackConfig
from fedlite.config import ConfigError, RunConfig


def test_attack_boosts_only_the_attackers_update():
    attack = AttackConfig(scale=100.0, fraction=0.2)
    sent = {"w": np.zeros(3, np.float32), "steps": np.zeros(1, np.int64)}
    trained = {"w": np.ones(3, np.float32), "steps": np.ones(1, np.int64)}
    assert attack.attackers(10) == 2
    boosted = poisoned(attack, 10, 1, sent, trained)
    np.testing.assert_array_equal(boosted["w"], np.full(3, 100.0, np.float32))
    assert boosted["w"].dtype == np.float32
    assert boosted["steps"] is trained["steps"]  # integers are not scaled
    assert poisoned(attack, 10, 2, sent, trained) is trained
    assert poisoned(AttackConfig(), 10, 0, sent, trained) is trained


def test_the_method_is_active_only_with_attackers():
    assert not Attack().active(AttackConfig())
    assert Attack().active(AttackConfig(fraction=0.1))


@pytest.mark.parametrize("key,value", [("attack.fraction", 1.5), ("attack.fraction", -0.1),
                                       ("attack.scale", "inf")])
def test_bad_values_name_their_key(key, value):
    with pytest.raises(ConfigError, match=f"`{key}`"):
        RunConfig.from_mapping({key: value})
