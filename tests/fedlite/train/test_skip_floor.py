"""The floor on tau: a sample whose labeled-class probability is at most ``skip.min-threshold``
(0.5: one the model may misclassify) is backpropagated, whatever the histogram or the
threshold a client carries."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedlite.train.skip import SkipControl, SkipGate, choose_threshold, interpolate_gradient
from fedlite.train.skip.threshold import first_edge_at_or_above


def _histograms(rng: np.random.Generator, bins: int):
    """Random histograms of every shape: mass low, mass high, sparse, one bin, skewed sums."""
    for _ in range(400):
        counts = rng.integers(0, 50, bins).astype(float) * (rng.random(bins) < rng.random())
        if counts.sum() == 0:
            counts[rng.integers(bins)] = 1.0
        grad_sums = counts * rng.random(bins) * rng.choice([0.01, 1.0, 100.0])
        yield counts, grad_sums


@pytest.mark.parametrize("bins", [1, 2, 7, 10, 64])
def test_no_histogram_chooses_a_threshold_below_the_floor(bins):
    rng = np.random.default_rng(bins)
    for counts, grad_sums in _histograms(rng, bins):
        for bound in (0.01, 0.3, 0.9, 0.999):
            tau, _ = choose_threshold(counts, interpolate_gradient(counts, grad_sums), bound, 0.5)
            assert tau >= 0.5, (counts, grad_sums, bound, tau)


def test_without_a_floor_a_low_confidence_histogram_can_push_tau_below_one_half():
    # Prepare: the case the floor exists for: most mass in low-confidence bins
    counts = np.array([40.0, 30, 20, 10, 5, 5, 5, 5, 5, 5])
    grad_sums = counts * np.linspace(1.0, 0.1, 10)
    mean_grad = interpolate_gradient(counts, grad_sums)
    # Execute / Assert: unfloored tau falls to 0.2; floored it is 0.5
    assert choose_threshold(counts, mean_grad, 0.5)[0] == pytest.approx(0.2)
    assert choose_threshold(counts, mean_grad, 0.5, floor=0.5)[0] == pytest.approx(0.5)


def test_a_floor_between_edges_rounds_up_to_the_next_edge():
    assert first_edge_at_or_above(0.5, 10) == 5
    assert first_edge_at_or_above(0.55, 10) == 6
    assert first_edge_at_or_above(0.0, 10) == 0
    assert first_edge_at_or_above(1.0, 10) == 10
    counts = np.full(10, 10.0)
    assert choose_threshold(counts, np.linspace(1, 0.01, 10), 0.9, floor=1.0) == (1.0, 0.0)


def test_the_gate_never_skips_a_sample_at_or_below_the_floor():
    # Prepare: the model is the identity, so each row IS its logits: confidences of every kind,
    # including p_y exactly 0.5 (two equal logits), against thresholds a client may carry
    rng = np.random.default_rng(0)
    rows = torch.as_tensor(rng.normal(0, 1, (512, 10)) * rng.choice([0.5, 3, 8], (512, 1)),
                           dtype=torch.float32)
    labels = torch.as_tensor(rng.integers(0, 10, 512))
    labels[1::2] = rows[1::2].argmax(1)  # half labeled with the predicted class
    rows[:8] = -30.0
    rows[:8, 0] = rows[:8, 1] = 0.0  # p_0 = p_1 = 0.5 exactly
    labels[:8] = 0
    p_y = torch.softmax(rows, 1)[torch.arange(512), labels]
    must_keep = {tuple(r) for r in rows[p_y <= 0.5].tolist()}
    assert (p_y == 0.5).sum() == 8 and (p_y > 0.5).sum() > 100  # both kinds are present
    for pinned in (0.0, 0.2, 0.5):
        for bound in (0.3, 0.99):
            gate = SkipGate(SkipControl(error_bound=bound),
                            {"skip/threshold": np.array([pinned])})
            # Execute
            kept = torch.cat([xb for xb, _ in gate.filter(
                nn.Identity(), [(rows[i:i + 32], labels[i:i + 32]) for i in range(0, 512, 32)],
                torch.arange(512))])
            # Assert
            assert must_keep <= {tuple(r) for r in kept.tolist()}, (pinned, bound)
            assert gate.in_force == 0.5
    assert len(kept) < 512  # the confident rows above the floor were skippable


def test_a_zero_floor_is_the_unfloored_method():
    gate = SkipGate(SkipControl(min_threshold=0.0), {"skip/threshold": np.array([0.3])})
    assert gate.in_force == pytest.approx(0.3)
