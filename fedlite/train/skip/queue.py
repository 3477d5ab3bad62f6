"""Kept samples wait here until a full batch is ready, so every backward stays batch-sized.

Gathering the kept rows before the grad-enabled forward is what makes skipping save work
(masking the loss inside a full-batch backward saves nothing); queueing them into batches of
``batch_size`` keeps each backward as efficient as in plain training. ``flush`` hands over the
remainder at the end of an epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from fedlite.train.loop import Batch


class KeptQueue:
    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.xs: list[Tensor] = []
        self.ys: list[Tensor] = []
        self.queued = 0

    def push(self, x: Tensor, y: Tensor) -> Iterator[Batch]:
        """Queue kept rows; yield every full batch now available, in arrival order."""
        if len(y):
            self.xs.append(x)
            self.ys.append(y)
            self.queued += len(y)
        while self.queued >= self.batch_size:
            yield self._take(self.batch_size)

    def flush(self) -> Iterator[Batch]:
        if self.queued:
            yield self._take(self.queued)

    def _take(self, n: int) -> Batch:
        # A single chunk of exactly n rows (nothing was skipped) goes out as it came in.
        x = self.xs[0] if len(self.xs) == 1 else torch.cat(self.xs)
        y = self.ys[0] if len(self.ys) == 1 else torch.cat(self.ys)
        head = (x, y) if len(y) == n else (x[:n], y[:n])
        rest_x, rest_y = x[n:], y[n:]
        self.xs, self.ys = ([rest_x], [rest_y]) if len(rest_y) else ([], [])
        self.queued = len(rest_y)
        return head
