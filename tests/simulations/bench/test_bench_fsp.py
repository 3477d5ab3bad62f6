"""The FSP benchmark's arithmetic: client seconds of an arm, stage 1's seconds, the goals, the
workload of each mode and how a record reads."""

import pytest

from simulations.bench.fsp import (client_seconds, goals_met, stage1_seconds, summary_line,
                                   workload)


def _run(accuracy, seconds, stage=None):
    return {"series": {"accuracy": accuracy, "client_seconds": seconds,
                       "stage": stage or [None] * len(seconds)}}


def test_an_arms_client_seconds_count_every_round_of_every_network():
    chain = [_run([0.1, 0.2], [5.0, 5.0]), _run([0.5, 0.8, 0.9], [10.0, 10.0, 10.0])]
    assert client_seconds(chain) == 40.0
    assert client_seconds([]) == 0


def test_stage_1_seconds_are_the_stage_1_rounds_only():
    assert stage1_seconds(_run([0.1] * 4, [3.0, 3.0, 2.0, 2.0], [1, 1, 2, 2])) == 6.0


def _arm(direct, chain, fractions, full=0.80, compressed=0.75):
    return {"scratch_full_accuracy": full, "scratch_compressed_accuracy": compressed,
            "fsp_direct_accuracy": direct, "chain_accuracy": chain,
            "client_seconds_fraction": {"direct": fractions[0], "chain": fractions[1]}}


def test_goals_judge_the_better_of_direct_and_chain():
    assert goals_met(_arm(0.796, 0.70, (0.45, 0.6))) == {
        "accuracy": True, "over_compressed": True, "client_seconds": True}
    # the chain is the better arm here: 2 points short of full, 3 above compressed, too costly
    assert goals_met(_arm(0.70, 0.78, (0.45, 0.6))) == {
        "accuracy": False, "over_compressed": True, "client_seconds": False}
    assert goals_met(_arm(0.79, None, (0.4, None)))["accuracy"] is False  # no chain: direct
    assert goals_met(_arm(None, None, (None, None)))["accuracy"] is None


def test_quick_runs_every_arm_small_and_the_full_run_keeps_the_paper_ratio():
    full, quick = workload(False), workload(True)
    assert full["rounds"]["compressed"] * 3 == full["rounds"]["full"]
    assert full["seeds"][0] == 0 and len(full["seeds"]) == 3  # 2 held-out seeds
    assert quick["seeds"] == (0,) and quick["config"].dataset == "digits"
    assert quick["rounds"]["full"] <= 3 and quick["config"].lr_schedule == "step"
    assert quick["config"].local_epochs >= 2  # the cache serves from the second epoch on
    assert full["chain_budget"] == 1.0 and quick["chain_budget"] is None


@pytest.mark.parametrize("chain", [{"models": ["resnet14", "resnet20"]},
                                   {"error": "no chain fits"}])
def test_summary_reads_every_arm(chain):
    record = {"teacher_accuracy": 0.7, "scratch_full_accuracy": 0.8,
              "scratch_compressed_accuracy": 0.75, "fsp_direct_accuracy": 0.79,
              "chain_accuracy": 0.78 if "models" in chain else None,
              "client_seconds_fraction": {"direct": 0.45, "chain": 0.6},
              "stage1_seconds": {"cached": 10.0, "uncached": 14.0}, "chain": chain}
    line = summary_line(record)
    assert "scratch full 80.00%, compressed 75.00%; FSP direct 79.00% at 0.45" in line
    assert "stage 1 10.0 client s cached, 14.0 uncached" in line
    assert ("chain resnet14 -> resnet20 78.00% at 0.6" in line if "models" in chain
            else "chain: no chain fits" in line)
