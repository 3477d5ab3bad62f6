"""Threshold selection module (US 12,307,363 B2) in its three parts.

- CF accumulation: ``ConfidenceHistogram`` counts confidences per bin over the period.
- Linear interpolation: ``interpolate_gradient`` estimates the mean |gradient| of every
  bin from the lowest and the highest occupied bins only, because per-sample |gradient| is
  close to linear in the confidence (for softmax cross-entropy the output gradient p - e_y has
  a norm between 1 - p_y and sqrt(2) (1 - p_y)).
- Threshold decision: ``choose_threshold`` picks the smallest tau among the bin edges
  whose estimated dropped share E(tau) = sum_{bins above tau} n_b g_b / sum_b n_b g_b stays
  within the error bound.

The |gradient| measured per sample is the norm of the loss gradient with respect to the
logits, ||p - e_y||_2: the exact quantity the linearity argument is about, and free from the
selection forward (the last layer's weight gradient is this norm times its input's norm).
"""

from __future__ import annotations

import numpy as np


class ConfidenceHistogram:
    """Counts and summed |gradient| per confidence bin, accumulated until ``reset``.

    Summing |gradient| in every bin costs one weighted bincount, the same as summing it in
    two; the interpolation still reads only the extreme bins, as the patent prescribes.
    """

    def __init__(self, bins: int) -> None:
        self.counts = np.zeros(bins)
        self.grad_sums = np.zeros(bins)

    def add(self, bin_index: np.ndarray, grad_norm: np.ndarray) -> None:
        size = len(self.counts)
        self.counts += np.bincount(bin_index, minlength=size)
        self.grad_sums += np.bincount(bin_index, weights=grad_norm, minlength=size)

    def reset(self) -> None:
        self.counts[:] = 0.0
        self.grad_sums[:] = 0.0


def bin_centres(bins: int) -> np.ndarray:
    return (np.arange(bins) + 0.5) / bins


def interpolate_gradient(counts: np.ndarray, grad_sums: np.ndarray) -> np.ndarray:
    """Mean |gradient| per bin on the line through the lowest and highest occupied bins."""
    occupied = np.flatnonzero(counts > 0)
    if occupied.size == 0:
        return np.zeros(len(counts))
    lo, hi = occupied[0], occupied[-1]
    g_lo, g_hi = grad_sums[lo] / counts[lo], grad_sums[hi] / counts[hi]
    if lo == hi:
        return np.full(len(counts), g_lo)
    centres = bin_centres(len(counts))
    slope = (g_hi - g_lo) / (centres[hi] - centres[lo])
    return np.maximum(g_lo + slope * (centres - centres[lo]), 0.0)


def dropped_share(counts: np.ndarray, mean_grad: np.ndarray, threshold: float) -> float:
    """E(tau): the estimated share of gradient mass in the bins skipped under ``threshold``.

    Thresholds are bin edges b / K; samples above tau are skipped, i.e. bins b..K-1.
    """
    mass = counts * mean_grad
    total = mass.sum()
    first_skipped = int(round(threshold * len(counts)))
    return float(mass[first_skipped:].sum() / total) if total > 0 else 0.0


def choose_threshold(counts: np.ndarray, mean_grad: np.ndarray, error_bound: float,
                     floor: float = 0.0) -> tuple[float, float]:
    """The smallest edge tau >= ``floor`` with E(tau) <= error_bound, and E(tau); (1.0, 0.0)
    skips nothing.

    tau never goes above the lowest edge of the highest occupied bin: confidences never seen
    in the period carry no estimate, so they stay kept. A zero bound allows no noise at all,
    so it skips nothing even where the estimate is zero (this keeps the neutral setting exact).
    The floor holds for any histogram: no edge below it is a candidate (one that is not an
    edge itself rounds up to the next edge).
    """
    bins = len(counts)
    mass = counts * mean_grad
    total = mass.sum()
    occupied = np.flatnonzero(counts > 0)
    if error_bound <= 0 or total <= 0 or occupied.size == 0:
        return 1.0, 0.0
    tail = np.cumsum(mass[::-1])[::-1] / total  # tail[b] = E(b / K)
    lowest = first_edge_at_or_above(floor, bins)
    for b in range(lowest, occupied[-1] + 1):
        if tail[b] <= error_bound:
            return b / bins, float(tail[b])
    return 1.0, 0.0


def first_edge_at_or_above(floor: float, bins: int) -> int:
    """The index b of the smallest bin edge b / K that is not below ``floor``."""
    b = int(np.ceil(floor * bins - 1e-9))  # 0.5 * 10 is edge 5, not 6 by rounding noise
    while b / bins < floor:
        b += 1
    return b
