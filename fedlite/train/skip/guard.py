"""The error bound held within the period, on the measured dropped share.

tau is chosen at the end of a period from that period's histogram, so it is applied to a model
that has moved on: in round 2 of the default scenario, round 1's tau dropped 0.24 of the
gradient mass against a bound of 0.1. The selection forward gives ||p - e_y|| for every sample,
so the gate can measure the share it drops as it goes: ``DroppedShareGuard`` lets a sample above
tau be skipped only while the period's measured dropped share, this batch included, stays
within the bound. Among a batch's candidates the smallest gradients go first (most samples
skipped for the same mass). tau from the histogram stays the starting point; the guard only
keeps samples, it never skips one that tau keeps.
"""

from __future__ import annotations

import numpy as np


class DroppedShareGuard:
    def __init__(self, bound: float) -> None:
        self.bound = bound
        self.total = self.dropped = 0.0  # summed ||p - e_y|| this period: all, and skipped

    def skippable(self, candidates: np.ndarray, grad_norm: np.ndarray) -> np.ndarray:
        """Which of the ``candidates`` (a mask) may be skipped without the period's measured
        dropped share crossing the bound; call ``record`` with the decision afterwards."""
        batch_total = float(np.nansum(grad_norm, dtype=np.float64))
        budget = self.bound * (self.total + batch_total) - self.dropped
        chosen = np.flatnonzero(candidates & np.isfinite(grad_norm))
        chosen = chosen[np.argsort(grad_norm[chosen], kind="stable")]
        fits = int(np.searchsorted(np.cumsum(grad_norm[chosen], dtype=np.float64), budget,
                                   side="right"))
        skip = np.zeros(len(grad_norm), dtype=bool)
        skip[chosen[:fits]] = True
        return skip

    def record(self, grad_norm: np.ndarray, skipped: np.ndarray) -> None:
        self.total += float(np.nansum(grad_norm, dtype=np.float64))
        self.dropped += float(np.nansum(grad_norm[skipped], dtype=np.float64))

    def compensation(self) -> float:
        """1 / (1 - the period's measured dropped share): the factor that gives the kept
        samples the period's whole gradient mass (exactly 1 while nothing was dropped)."""
        if self.dropped <= 0.0:
            return 1.0
        return self.total / (self.total - self.dropped)

    def reset(self) -> None:
        self.total = self.dropped = 0.0
