"""The error bound held within the period: the measured dropped share of ||p - e_y|| never
crosses the bound while a period runs, even when tau (chosen on an older model) would drop far
more."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedlite.train.skip import DroppedShareGuard, SkipControl, SkipGate


def test_compensation_gives_the_kept_samples_the_periods_whole_mass_and_resets_with_it():
    # Prepare: a period of mass 11.06 of which 0.76 was skipped
    guard = DroppedShareGuard(0.1)
    assert guard.compensation() == 1.0  # nothing dropped yet: exactly 1
    guard.record(np.array([10.0, 0.3, 0.5, 0.05, 0.2, 0.01]),
                 np.array([False, False, True, True, True, True]))
    # Assert: kept mass 10.3 times the factor is the period's 11.06; at most 1 / (1 - bound)
    assert 10.3 * guard.compensation() == pytest.approx(11.06)
    assert guard.compensation() <= 1 / (1 - 0.1)
    guard.reset()
    assert guard.compensation() == 1.0


def test_guard_skips_the_smallest_gradients_first_within_the_budget():
    # Prepare: a period that has seen mass 10 with nothing dropped; bound 0.1
    guard = DroppedShareGuard(0.1)
    guard.record(np.array([10.0]), np.array([False]))
    grad = np.array([0.5, 0.05, 0.2, 0.3, 0.01])
    candidates = np.array([True, True, True, False, True])
    # Execute: budget = 0.1 * (10 + 1.06) - 0 = 1.106; smallest first: 0.01, 0.05, 0.2 (0.26),
    # then 0.5 would make 0.76 <= 1.106 too; 0.3 is no candidate
    skip = guard.skippable(candidates, grad)
    # Assert
    assert skip.tolist() == [True, True, True, False, True]
    guard.record(grad, skip)
    assert guard.dropped / guard.total == pytest.approx(0.76 / 11.06)
    # a second batch: the budget left is 0.1 * 12.06 - 0.76 = 0.446: one 0.3 fits, two do not
    more = np.array([0.3, 0.4, 0.3])
    assert guard.skippable(np.ones(3, bool), more).tolist() == [True, False, False]


def test_guard_never_skips_a_non_candidate_or_an_unknown_gradient():
    guard = DroppedShareGuard(0.99)
    grad = np.array([0.1, np.nan, 0.2])
    skip = guard.skippable(np.array([False, True, True]), grad)
    assert skip.tolist() == [False, False, True]
    guard.record(grad, skip)
    assert np.isfinite(guard.total) and guard.total == pytest.approx(0.3)


class _Prefix:
    """Records the guard's measured share after every batch the gate hands over."""

    def __init__(self, gate: SkipGate) -> None:
        self.gate, self.shares = gate, []

    def run(self, batches, n):
        for _ in self.gate.filter(nn.Identity(), batches, torch.arange(n)):
            self.shares.append(self.gate.guard.dropped / self.gate.guard.total)


def _confident_rows(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (the identity model's output) of a model that has learned most of its data."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    rows = rng.normal(0, 1, (n, 10))
    rows[np.arange(n), labels] += rng.choice([1.0, 4.0, 8.0], n, p=[0.3, 0.3, 0.4])
    return torch.as_tensor(rows, dtype=torch.float32), torch.as_tensor(labels)


@pytest.mark.parametrize("batching", ["refill", "shrink"])
@pytest.mark.parametrize("bound", [0.02, 0.05, 0.1])
def test_measured_dropped_share_stays_within_the_bound_at_every_point_of_the_period(
        batching, bound):
    # Prepare: tau pinned at the floor; on these confidences it alone would drop far more
    rows, labels = _confident_rows(960)
    gate = SkipGate(SkipControl(error_bound=bound, batching=batching),
                    {"skip/threshold": np.array([0.5])})
    prefix = _Prefix(gate)
    # Execute
    prefix.run([(rows[i:i + 32], labels[i:i + 32]) for i in range(0, 960, 32)], 960)
    metrics = gate.metrics()
    # Assert: the guard acted, held the bound throughout, and still skipped what fits
    assert metrics["skip-dropped-without-guard"] > 2 * bound
    assert max(prefix.shares) <= bound + 1e-12
    assert metrics["skip-dropped-gradient"] <= bound + 1e-12
    assert metrics["skip-dropped-gradient"] > 0.8 * bound
    assert 0 < metrics["skip-guard-kept"] and metrics["skip-backprop-fraction"] < 1.0


def test_the_guard_restarts_with_each_period():
    # Prepare: period = epoch; two epochs of the same confident batches
    rows, labels = _confident_rows(320)
    gate = SkipGate(SkipControl(error_bound=0.1, period="epoch"),
                    {"skip/threshold": np.array([0.5])})
    batches = [(rows[i:i + 32], labels[i:i + 32]) for i in range(0, 320, 32)]
    list(gate.filter(nn.Identity(), batches, torch.arange(320)))
    first = gate.guard.dropped / gate.guard.total
    # Execute: the end of the period
    gate.on_epoch_end(0)
    # Assert: a fresh budget, and the share it measured was within the bound
    assert gate.guard.total == gate.guard.dropped == 0.0
    assert 0 < first <= 0.1 + 1e-12
