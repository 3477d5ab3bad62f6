"""The skipping benchmark's arithmetic: shares over passes, seconds over rounds."""

import pytest

from simulations.bench.skip import single_run, totals, workload

OUTCOME = {"accuracy": [0.5, 0.7, 0.8], "seen": [100, 100, 100], "backprop": [100, 40, 60],
           "client_seconds": [3.0, 2.0, 1.0]}


def test_totals_weigh_the_backprop_fraction_by_samples_and_sum_seconds():
    result = totals(OUTCOME)
    assert result["accuracy"] == 0.8
    assert result["backprop_fraction"] == pytest.approx(200 / 300)
    assert result["client_seconds"] == 6.0 and result["client_seconds_after_round_1"] == 3.0


def test_totals_cut_at_a_round_for_the_sweep():
    result = totals(OUTCOME, rounds=2)
    assert result["accuracy"] == 0.7 and result["backprop_fraction"] == pytest.approx(0.7)
    assert result["client_seconds"] == 5.0


def test_a_single_run_variant_is_judged_against_plains_mean_seconds():
    arm = {"accuracy": 0.8, "backprop_fraction": 0.55558, "client_seconds": 6.0}
    result = single_run(arm, seconds_plain=8.0)
    assert result == {"accuracy": 0.8, "backprop_fraction": 0.5556, "client_seconds": 6.0,
                      "time_saving": 0.25}


def test_quick_workload_takes_the_scenarios_digits_settings():
    cfg = workload(quick=True)
    assert (cfg.dataset, cfg.num_rounds, cfg.num_clients) == ("digits", 4, 10)
    assert cfg.local_epochs == 5  # default.toml's [digits] table, not Fashion-MNIST's 1
