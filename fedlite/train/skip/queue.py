"""Kept samples wait here until a full batch is ready, so every backward stays batch-sized.

Gathering the kept rows before the grad-enabled forward is what makes skipping save work
(masking the loss inside a full-batch backward saves nothing); queueing them into batches of
``batch_size`` keeps each backward as efficient as in plain training. ``flush`` hands over the
remainder at the end of an epoch. Each row travels with its index in the training set, so the
gate knows whose confidence the training forward refreshes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

IndexedBatch = tuple[Tensor, Tensor, Tensor]  # x, y, index into the training set


class KeptQueue:
    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.parts: list[IndexedBatch] = []
        self.queued = 0

    def push(self, x: Tensor, y: Tensor, index: Tensor) -> Iterator[IndexedBatch]:
        """Queue kept rows; yield every full batch now available, in arrival order."""
        if len(y):
            self.parts.append((x, y, index))
            self.queued += len(y)
        while self.queued >= self.batch_size:
            yield self._take(self.batch_size)

    def flush(self) -> Iterator[IndexedBatch]:
        if self.queued:
            yield self._take(self.queued)

    def _take(self, n: int) -> IndexedBatch:
        # A single chunk of exactly n rows (nothing was skipped) goes out as it came in.
        whole = self.parts[0] if len(self.parts) == 1 else tuple(
            torch.cat(column) for column in zip(*self.parts))
        head = whole if len(whole[1]) == n else tuple(t[:n] for t in whole)
        rest = tuple(t[n:] for t in whole)
        self.parts = [rest] if len(rest[1]) else []
        self.queued = len(rest[1])
        return head  # type: ignore[return-value]
