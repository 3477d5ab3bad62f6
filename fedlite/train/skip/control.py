"""Control module (US 12,307,363 B2): the knobs that steer the computation and the threshold.

Batch size, the confidence bins, the error bound, the update period, and how often a fresh
selection forward runs. The run config's
``skip.*`` section (``fedlite.config.SkipConfig``) validates them, so a bad value names its key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedlite.config import ConfigError, RunConfig, SkipConfig


@dataclass(frozen=True)
class SkipControl:
    batch_size: int = 32  # rows per backward: kept samples are queued until a batch is full
    bins: int = 10  # uniform confidence bins over [0, 1]
    error_bound: float = 0.1  # epsilon: share of estimated gradient mass that may be dropped
    period: str = "round"  # "epoch" or "round": when tau is re-chosen
    selection_every: int = 1  # fresh selection forward every n-th local epoch (1: the patent)
    warmup_rounds: int = 0  # the run's first rounds skip nothing; the histogram accumulates

    def __post_init__(self) -> None:
        # One source of validation: the run-config section, whose errors name the key.
        SkipConfig(enabled=True, error_bound=self.error_bound, bins=self.bins, period=self.period,
                   selection_every=self.selection_every, warmup_rounds=self.warmup_rounds)
        if self.batch_size < 1:
            raise ConfigError("run config `batch-size`: must be a positive integer")

    @classmethod
    def from_run_config(cls, cfg: RunConfig) -> SkipControl:
        return cls(batch_size=cfg.batch_size, bins=cfg.skip.bins,
                   error_bound=cfg.skip.error_bound, period=cfg.skip.period,
                   selection_every=cfg.skip.selection_every,
                   warmup_rounds=cfg.skip.warmup_rounds)

    def bin_of(self, confidence: np.ndarray) -> np.ndarray:
        """Bin index of each confidence; 1.0 falls in the top bin."""
        return np.clip((confidence * self.bins).astype(np.int64), 0, self.bins - 1)
