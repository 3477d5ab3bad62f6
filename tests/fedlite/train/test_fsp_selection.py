"""Claim 8 of KR 10-2063377: how many intermediates, chosen on recorded costs and accuracies."""

from __future__ import annotations

import pytest

from fedlite.train.fsp import ChainError, Measured, Plan, next_network, select_intermediates

TEACHER = Measured("resnet8", 0.70)
# recorded runs of 3 rounds each, client seconds: resnet14 costs 30, resnet20 45
RECORDED = {"resnet14": Measured("resnet14", 0.74, cost=30.0, rounds=3),
            "resnet20": Measured("resnet20", 0.78, cost=45.0, rounds=3)}


def plan(**changes) -> Plan:
    return Plan(**{"target": "resnet26", "target_rounds": 4, "intermediate_rounds": 3,
                   **changes})


def test_intermediates_are_added_while_each_improves_on_its_teacher():
    assert select_intermediates(TEACHER, RECORDED, plan()) == (
        ["resnet14", "resnet20"], "no registered ResNet between resnet20 and resnet26")
    worse = {**RECORDED, "resnet14": Measured("resnet14", 0.69, cost=30.0, rounds=3)}
    assert select_intermediates(TEACHER, worse, plan()) == (
        ["resnet14"], "resnet14 did not improve on resnet8")


def test_a_target_accuracy_reached_by_an_intermediate_ends_the_chain():
    assert select_intermediates(TEACHER, RECORDED, plan(target_accuracy=0.74)) == (
        ["resnet14"], "resnet14 reached the target accuracy")


def test_the_budget_counts_measured_costs_and_depth_scaled_estimates():
    # after resnet14 (30 s, 10 s a round): resnet20 estimated 3 * 10 * 20/14, the target
    # 4 * 10 * 26/14 -> 30 + 42.9 + 74.3 = 147.1
    assert select_intermediates(TEACHER, RECORDED, plan(budget=148.0))[0] == [
        "resnet14", "resnet20"]
    assert select_intermediates(TEACHER, RECORDED, plan(budget=147.0)) == (
        ["resnet14"], "another intermediate (resnet20) would not fit the budget")


def test_a_chain_always_has_one_intermediate_or_says_why_not():
    # recorded per-round costs (a round budget: every round costs 1)
    rounds = dict.fromkeys(["resnet14", "resnet20", "resnet26"], 1.0)
    assert next_network([TEACHER], plan(budget=7, costs=rounds)).model == "resnet14"
    with pytest.raises(ChainError, match=r"need about 7, over the budget of 6"):
        next_network([TEACHER], plan(budget=6, costs=rounds))
    with pytest.raises(ChainError, match="no registered ResNet lies between resnet8 and resnet14"):
        next_network([TEACHER], plan(target="resnet14"))
    # no measured cost yet: the first intermediate runs, its cost then decides the rest
    assert next_network([TEACHER], plan(budget=1.0)).intermediate


def test_unknown_teacher_accuracy_does_not_stop_the_chain():
    bare = Measured("resnet8", None)
    assert select_intermediates(bare, RECORDED, plan())[0] == ["resnet14", "resnet20"]
