"""Control module (US 12,307,363 B2): the knobs that steer the computation and the threshold.

The run config's ``skip.*`` settings (``settings.SkipConfig``, which validates them, so a bad
value names its key) plus the batch size kept samples are queued into.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedlite.errors import require
from fedlite.train.skip.settings import SkipConfig


@dataclass(frozen=True)
class SkipControl(SkipConfig):
    batch_size: int = 32  # rows per backward: kept samples are queued until a batch is full

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.batch_size >= 1, "batch-size", "must be a positive integer")

    @property
    def refill_rows(self) -> int:
        """Rows of a refilled batch: ``skip.refill-size``, 0 meaning ``batch-size``."""
        return self.refill_size or self.batch_size

    @property
    def scales_steps(self) -> bool:
        """Whether a step's gradient may be scaled (``batching.ShrinkNormalization``): the
        per-batch form, refills smaller than a mini-batch, or compensation."""
        return (self.batching == "shrink" or self.refill_rows != self.batch_size
                or self.compensate)

    def bin_of(self, confidence: np.ndarray) -> np.ndarray:
        """Bin index of each confidence; 1.0 falls in the top bin."""
        return np.clip((confidence * self.bins).astype(np.int64), 0, self.bins - 1)
