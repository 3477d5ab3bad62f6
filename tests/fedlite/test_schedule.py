"""Learning-rate schedules: the rate of every round for each shape, and the run-config key."""

from __future__ import annotations

import math

import pytest

from fedlite.config import ConfigError, RunConfig
from fedlite.schedule import LrSchedule, schedule_factor


def test_step_decays_tenfold_at_half_and_three_quarters_of_the_rounds():
    rates = [RunConfig(lr=0.1, num_rounds=12, lr_schedule="step").lr_at(r) for r in range(1, 13)]
    assert rates == pytest.approx([0.1] * 6 + [0.01] * 3 + [0.001] * 3)
    # a horizon that does not divide evenly: rounds 1-2 of 4 before 50 %, round 3 before 75 %
    assert [schedule_factor("step", r, 4) for r in (1, 2, 3, 4)] == [1.0, 1.0, 0.1, 0.01]
    assert [schedule_factor("step", r, 3) for r in (1, 2, 3)] == [1.0, 1.0, 0.1]
    assert schedule_factor("step", 1, 1) == 1.0


def test_cosine_anneals_from_the_full_rate_and_stays_above_zero():
    cfg = RunConfig(lr=0.2, num_rounds=4, lr_schedule="cosine")
    expected = [0.2 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert [cfg.lr_at(r) for r in (1, 2, 3, 4)] == pytest.approx(expected)
    assert cfg.lr_at(1) == 0.2 and cfg.lr_at(4) > 0


def test_constant_is_the_per_round_decay_exactly():
    cfg = RunConfig(lr=0.1, lr_decay=0.9, num_rounds=5)
    assert [cfg.lr_at(r) for r in range(1, 6)] == [0.1 * 0.9 ** (r - 1) for r in range(1, 6)]


def test_lr_decay_multiplies_the_schedule():
    cfg = RunConfig(lr=0.1, lr_decay=0.5, num_rounds=4, lr_schedule="step")
    assert [cfg.lr_at(r) for r in (1, 2, 3, 4)] == pytest.approx([0.1, 0.05, 0.0025, 0.000125])


def test_a_restarted_schedule_counts_its_own_rounds():
    rates = LrSchedule(0.1, 10, "step").restarted(4, lr=0.01)
    assert [rates(r) for r in (1, 2, 3, 4)] == pytest.approx([0.01, 0.01, 0.001, 0.0001])


def test_unknown_schedule_names_the_key():
    with pytest.raises(ConfigError, match="`lr-schedule`: choose one of constant, step, cosine"):
        RunConfig.from_mapping({"lr-schedule": "linear"})
