"""Threshold selection: CF accumulation, linear interpolation, threshold decision."""

from __future__ import annotations

import numpy as np
import pytest

from fedlite.train.skip import (ConfidenceHistogram, SkipControl, choose_threshold,
                                dropped_share, interpolate_gradient)


def test_histogram_accumulates_counts_and_gradient_sums_per_bin():
    # Prepare
    control = SkipControl(bins=4)
    hist = ConfidenceHistogram(4)
    confidence = np.array([0.0, 0.1, 0.3, 0.74, 0.99, 1.0])
    # Execute
    hist.add(control.bin_of(confidence), np.array([1.0, 0.9, 0.7, 0.3, 0.01, 0.0]))
    hist.add(control.bin_of(np.array([0.8])), np.array([0.2]))
    # Assert: 1.0 falls in the top bin
    np.testing.assert_array_equal(hist.counts, [2, 1, 1, 3])
    np.testing.assert_allclose(hist.grad_sums, [1.9, 0.7, 0.3, 0.21])
    hist.reset()
    assert hist.counts.sum() == 0 and hist.grad_sums.sum() == 0


def test_interpolation_uses_only_the_lowest_and_highest_occupied_bins():
    # Prepare: 5 bins, bin 0 empty; lowest occupied bin 1 (mean 0.8), highest bin 4 (mean 0.2);
    # the interior sums are nonsense on purpose: they must not matter
    counts = np.array([0.0, 10.0, 5.0, 5.0, 20.0])
    grad_sums = np.array([0.0, 8.0, 999.0, -999.0, 4.0])
    # Execute
    mean_grad = interpolate_gradient(counts, grad_sums)
    # Assert: centres 0.1 .. 0.9, slope (0.2 - 0.8) / (0.9 - 0.3) = -1 per unit confidence
    np.testing.assert_allclose(mean_grad, [1.0, 0.8, 0.6, 0.4, 0.2])


def test_hand_computed_threshold():
    # Prepare: 10 bins; g falls linearly from 0.9 (bin 0) to 0.05 (bin 9)
    counts = np.array([4, 2, 2, 2, 2, 2, 2, 4, 10, 70], dtype=float)
    g_lo, g_hi = 0.9, 0.05
    grad_sums = np.zeros(10)
    grad_sums[0], grad_sums[9] = counts[0] * g_lo, counts[9] * g_hi
    # By hand: g_b = 0.9 - (0.85 / 9) b; masses n_b g_b:
    g = 0.9 - 0.85 / 9 * np.arange(10)
    mass = counts * g  # [3.6, 1.611, 1.422, 1.233, 1.044, 0.856, 0.667, 0.956, 1.444, 3.5]
    total = mass.sum()  # 16.3333
    # E(0.9) = 3.5 / 16.33 = 0.2143; E(0.8) = 4.944 / 16.33 = 0.3027; E(0.7) = 0.3612
    # Execute / Assert: eps = 0.31 -> smallest tau with E <= 0.31 is 0.8
    tau, error = choose_threshold(counts, interpolate_gradient(counts, grad_sums), 0.31)
    assert tau == pytest.approx(0.8)
    assert error == pytest.approx((mass[8] + mass[9]) / total)
    # eps = 0.30 admits only the top bin; eps = 0.21 admits nothing (E(0.9) = 0.2143)
    assert choose_threshold(counts, interpolate_gradient(counts, grad_sums), 0.30)[0] == \
        pytest.approx(0.9)
    assert choose_threshold(counts, interpolate_gradient(counts, grad_sums), 0.21) == (1.0, 0.0)


def test_zero_bound_skips_nothing_even_with_zero_estimated_gradient():
    counts = np.array([5.0, 0.0, 0.0, 5.0])
    grad_sums = np.array([5.0, 0.0, 0.0, 0.0])  # top bin: p_y == 1 exactly, g = 0
    assert choose_threshold(counts, interpolate_gradient(counts, grad_sums), 0.0) == (1.0, 0.0)
    # with a positive bound the zero-gradient mass above bin 0 is free to skip
    assert choose_threshold(counts, interpolate_gradient(counts, grad_sums), 0.01)[0] == 0.25


def test_threshold_never_rises_into_unseen_confidences():
    # Prepare: every confidence below 0.5; bins 5..9 empty, so E(0.5) = 0 by the estimate
    counts = np.array([10.0, 10.0, 10.0, 10.0, 10.0, 0, 0, 0, 0, 0])
    grad_sums = counts * 0.5
    # Execute
    tau, _ = choose_threshold(counts, interpolate_gradient(counts, grad_sums), 0.1)
    # Assert: nothing seen to justify skipping above 0.4 -> keep everything
    assert tau == 1.0


def test_empty_histogram_keeps_everything():
    zeros = np.zeros(10)
    assert choose_threshold(zeros, interpolate_gradient(zeros, zeros), 0.5) == (1.0, 0.0)


def test_dropped_share_matches_the_tail_mass():
    counts, mean_grad = np.array([1.0, 1.0, 2.0, 4.0]), np.array([0.8, 0.6, 0.4, 0.1])
    assert dropped_share(counts, mean_grad, 0.75) == pytest.approx(0.4 / 2.6)
    assert dropped_share(counts, mean_grad, 0.5) == pytest.approx(1.2 / 2.6)
    assert dropped_share(counts, mean_grad, 1.0) == 0.0
