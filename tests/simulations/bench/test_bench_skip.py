"""The skipping benchmark: time to a target, the speed-up, the goals, and arms stepped in turns
that each train exactly as they would alone."""

from types import SimpleNamespace

import numpy as np
import pytest

from fedlite.config import RunConfig
from fedlite.federation import run_sequential_fedavg
from simulations.bench.skip import compare, goals_met, interleaved, time_to, workload


def arm(accuracy, client_seconds, skipped=0.0, dropped=None):
    rounds = []
    for acc, seconds in zip(accuracy, client_seconds, strict=True):
        record = {"accuracy": acc, "client_seconds": seconds, "wall_seconds": seconds + 1.0,
                  "samples_seen": 100, "samples_backprop": round(100 * (1 - skipped)),
                  "skipped_share": skipped}
        if dropped is not None:
            record |= {"dropped_share_measured_max": dropped, "selection_seconds": 0.25 * seconds}
        rounds.append(record)
    return rounds


def test_time_to_target_sums_seconds_up_to_the_first_round_at_or_above_it():
    series = arm([0.5, 0.8, 0.79, 0.9], [2.0, 2.0, 2.0, 2.0])
    assert time_to(series, 0.8) == {"round": 2, "client_seconds": 4.0, "wall_seconds": 6.0}
    assert time_to(series, 0.95) == {"round": None, "client_seconds": None,
                                     "wall_seconds": None}


def test_compare_judges_each_arm_against_plains_final_accuracy_minus_the_margin():
    plain = arm([0.5, 0.8, 0.85, 0.9], [4.0] * 4)
    fast = arm([0.5, 0.85, 0.899, 0.898], [2.0] * 4, skipped=0.6, dropped=0.09)
    result = compare({"plain": plain, "skip": fast})
    assert result["target_accuracy"] == pytest.approx(0.898)
    assert result["time_to_target"]["plain"]["round"] == 4  # 16 client seconds
    assert result["time_to_target"]["skip"]["round"] == 3  # 0.899 >= 0.898: 6 client seconds
    skip = result["arms"]["skip"]
    assert skip["speedup_client"] == pytest.approx(16 / 6, abs=1e-3)
    assert skip["speedup_wall"] == pytest.approx(20 / 9, abs=1e-3)
    assert skip["accuracy_gap"] == pytest.approx(0.2)
    assert skip["skipped_share_final_rounds"] == pytest.approx(0.6)
    assert skip["dropped_share_measured_max"] == pytest.approx(0.09)
    # selection at a quarter of the arm's seconds, half of plain's per-sample step ...
    assert skip["cost_model"]["selection_share_of_step"] == pytest.approx(0.125)
    assert skip["cost_model"]["measured_speedup_per_round"] == pytest.approx(2.0)


def test_an_arm_that_never_reaches_the_target_has_no_speedup_and_misses_the_goal():
    plain = arm([0.5, 0.9], [4.0, 4.0])
    slow = arm([0.5, 0.7], [2.0, 2.0], skipped=0.7, dropped=0.1)
    result = compare({"plain": plain, "skip": slow})["arms"]["skip"]
    assert result["speedup_client"] is None and result["accuracy_gap"] == pytest.approx(20.0)
    record = {"time_to_accuracy_speedup_client": None, "skipped_share_final_rounds": 0.7,
              "accuracy_gap": 0.1, "heldout_accuracy_gaps": [0.2, 0.6],
              "dropped_share_measured_max": 0.1,
              "goal": {"speedup_client_min": 1.3, "skipped_share_final_rounds_min": 0.6,
                       "accuracy_gap_max_points": 0.3, "heldout_accuracy_gap_max_points": 0.5,
                       "dropped_share_measured_max": 0.12}}
    assert goals_met(record) == {"speedup_client": False, "skipped_share": True,
                                 "accuracy_gap": True, "heldout_accuracy_gaps": False,
                                 "dropped_share": True}


def test_quick_workload_takes_the_scenarios_digits_settings():
    cfg = workload(quick=True, seed=7)
    assert (cfg.dataset, cfg.num_rounds, cfg.num_clients, cfg.seed) == ("digits", 3, 6, 7)
    assert cfg.local_epochs == 5  # default.toml's [digits] table, not Fashion-MNIST's 1


def test_arms_stepped_in_turns_train_as_each_would_alone(partition_cache, tmp_path):
    base = RunConfig(num_rounds=2, num_clients=3, dataset="digits", partitioner="dirichlet",
                     model="mlp", seed=3, device="cpu", results_dir=str(tmp_path))
    skipping = base.with_keys({"skip.enabled": True, "skip.min-threshold": 0.0})
    series = interleaved({"plain": base, "skip": skipping})
    for cfg, name in ((base, "plain"), (skipping, "skip")):
        alone = run_sequential_fedavg(cfg)
        assert [r["accuracy"] for r in series[name]] == alone.accuracy
    assert series["plain"][1]["skipped_share"] == 0.0
    assert "dropped_share_measured_max" not in series["plain"][1]
    assert 0.0 < series["skip"][1]["skipped_share"] < 1.0  # round 2 has a threshold
    assert series["skip"][1]["dropped_share_measured_max"] <= 0.1 + 1e-9
    assert np.isfinite(series["skip"][1]["selection_seconds"])


def test_skipping_arms_go_on_until_they_have_spent_plains_client_seconds(partition_cache,
                                                                         tmp_path):
    base = RunConfig(num_rounds=2, num_clients=3, dataset="digits", partitioner="dirichlet",
                     model="mlp", seed=3, device="cpu", results_dir=str(tmp_path))
    skipping = base.with_keys({"skip.enabled": True, "skip.min-threshold": 0.0})
    series = interleaved({"plain": base, "skip": skipping}, max_rounds=5)
    assert len(series["plain"]) == 2
    rounds = len(series["skip"])
    spent = [sum(r["client_seconds"] for r in series[arm]) for arm in ("plain", "skip")]
    assert 2 <= rounds <= 5
    # it stopped at the cap, or as soon as it had spent what plain spent (not before)
    assert rounds == 5 or spent[1] >= spent[0]
    before_last = sum(r["client_seconds"] for r in series["skip"][:-1])
    assert rounds == 2 or before_last < spent[0]
    # rounds past plain's are the federation's own next rounds, as if it had run alone
    alone = run_sequential_fedavg(skipping.with_keys({"num-rounds": rounds}))
    assert [r["accuracy"] for r in series["skip"]] == alone.accuracy


def test_the_gap_is_judged_at_the_arms_last_round_and_at_plains():
    plain = arm([0.5, 0.8, 0.9], [4.0] * 3)
    longer = arm([0.5, 0.7, 0.85, 0.89, 0.9], [2.0] * 5, skipped=0.6, dropped=0.09)
    result = compare({"plain": plain, "skip": longer})["arms"]["skip"]
    assert result["rounds"] == 5
    assert result["accuracy_gap"] == pytest.approx(0.0)
    assert result["accuracy_gap_same_round"] == pytest.approx(5.0)
    assert result["speedup_client"] == pytest.approx(12 / 10)  # 0.9 - 0.002 first at round 5


def test_the_goals_are_judged_on_the_patents_form_and_the_stale_arm_runs_beside_it():
    from simulations.bench.skip import ARMS, HEADLINE, HELDOUT_ARMS, STALE, STALE_EVERY

    assert "skip.selection-every" not in ARMS[HEADLINE]  # a selection forward every mini-batch
    assert ARMS[STALE]["skip.selection-every"] == STALE_EVERY > 1
    assert {"plain", HEADLINE, STALE} <= set(HELDOUT_ARMS)
    for name in ARMS:  # every arm is a valid run config
        workload(quick=True).with_keys(ARMS[name])


def test_the_audit_replays_the_timed_run_and_reports_the_fresh_dropped_share(partition_cache,
                                                                            tmp_path):
    from simulations.bench.skip import audit_replay

    cfg = RunConfig(num_rounds=3, num_clients=3, dataset="digits", partitioner="dirichlet",
                    model="mlp", seed=3, device="cpu", results_dir=str(tmp_path)).with_keys(
        {"skip.enabled": True, "skip.error-bound": 0.2, "skip.selection-every": 2})
    timed = interleaved({"stale": cfg})["stale"]
    audit = audit_replay(cfg, timed)
    assert audit["same_accuracies"]
    assert len(audit["dropped_share_fresh_per_round"]) == 3
    assert audit["dropped_share_fresh_max"] == max(audit["dropped_share_fresh_per_round"])
    assert audit["dropped_share_fresh_per_round"][0] == 0.0  # round 1 skips nothing


def test_no_round_starts_after_the_deadline(partition_cache, tmp_path, monkeypatch):
    import simulations.bench.skip as skip

    base = RunConfig(num_rounds=3, num_clients=3, dataset="digits", partitioner="dirichlet",
                     model="mlp", seed=3, device="cpu", results_dir=str(tmp_path))
    clock = iter([0.0, 1.0, 2.5, 9.0])  # checked before each round: the third starts past 2
    monkeypatch.setattr(skip, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    series = interleaved({"plain": base, "skip": base.with_keys({"skip.enabled": True})},
                         max_rounds=6, deadline=2.0)
    # every arm ran the rounds that started in time, the same count, as in a full run
    assert [len(series["plain"]), len(series["skip"])] == [2, 2]
