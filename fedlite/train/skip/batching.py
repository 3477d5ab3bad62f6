"""How kept samples become the loop's batches: ``refill`` or ``shrink`` (``skip.batching``).

Gathering the kept rows before the grad-enabled forward is what makes skipping save work
(masking the loss inside a full-batch backward saves nothing). Then two forms:

- ``refill`` (``KeptQueue``): kept rows wait until a full batch of ``batch_size`` is ready, so
  every backward stays as large, and as efficient, as in plain training; an epoch takes fewer
  optimizer steps, each the mean over kept samples only. ``flush`` hands over the remainder at
  the end of an epoch. With ``skip.refill-size`` r below the batch size, the batches hold r rows
  and each step's gradient is scaled by r / B (``ShrinkNormalization``), so a sample weighs what
  it does in plain training while an epoch takes B / r times as many steps; on a CPU a backward
  costs about the same per row down to some 16 rows (docs/experiments/skip.md).
- ``shrink`` (``ShrinkingBatches``, the form of the DAC 2020 paper and the patent): each
  mini-batch's kept rows are that step's batch, one optimizer step per mini-batch, and
  ``ShrinkNormalization`` makes the step's gradient the approximate gradient of the whole
  mini-batch: the kept samples' gradients summed over the mini-batch's size B, so skipping
  leaves the skipped samples' share out instead of scaling the kept ones up.

Each row travels with its index in the training set, so the gate knows whose confidence the
training forward refreshes; each batch with its scale: kept / B for ``shrink``, rows / B for
``refill`` below B rows (1 at the default r = B).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.nn import functional as F

IndexedBatch = tuple[Tensor, Tensor, Tensor]  # x, y, index into the training set
ScaledBatch = tuple[Tensor, Tensor, Tensor, float]  # ... and the step's gradient scale


class BatchForm(Protocol):
    def push(self, x: Tensor, y: Tensor, index: Tensor, incoming: int) -> Iterator[ScaledBatch]:
        """The kept rows of one incoming mini-batch of ``incoming`` rows."""
    def flush(self) -> Iterator[ScaledBatch]: ...


class KeptQueue:
    def __init__(self, batch_size: int, scale: float = 1.0) -> None:
        self.batch_size, self.scale = batch_size, scale
        self.parts: list[IndexedBatch] = []
        self.queued = 0

    def push(self, x: Tensor, y: Tensor, index: Tensor,
             incoming: int | None = None) -> Iterator[ScaledBatch]:
        """Queue kept rows; yield every full batch now available, in arrival order."""
        if len(y):
            self.parts.append((x, y, index))
            self.queued += len(y)
        while self.queued >= self.batch_size:
            yield (*self._take(self.batch_size), self.scale)

    def flush(self) -> Iterator[ScaledBatch]:
        """The epoch's remainder: its rows weigh what they weigh in a full batch (k of r rows
        at scale r / B: k / B), and an unscaled refill stays a mean, as plain training's last
        batch is."""
        if self.queued:
            rows = self.queued
            scale = 1.0 if self.scale == 1.0 else self.scale * rows / self.batch_size
            yield (*self._take(rows), scale)

    def _take(self, n: int) -> IndexedBatch:
        # A single chunk of exactly n rows (nothing was skipped) goes out as it came in.
        whole = self.parts[0] if len(self.parts) == 1 else tuple(
            torch.cat(column) for column in zip(*self.parts, strict=True))
        head = whole if len(whole[1]) == n else tuple(t[:n] for t in whole)
        rest = tuple(t[n:] for t in whole)
        self.parts = [rest] if len(rest[1]) else []
        self.queued = len(rest[1])
        return head  # type: ignore[return-value]


class ShrinkingBatches:
    """Each mini-batch's kept rows as they are; a mini-batch with none kept yields no step."""

    def push(self, x: Tensor, y: Tensor, index: Tensor, incoming: int) -> Iterator[ScaledBatch]:
        if len(y):
            yield x, y, index, len(y) / incoming

    def flush(self) -> Iterator[ScaledBatch]:
        return iter(())


def batch_form(batching: str, batch_size: int, refill_rows: int) -> BatchForm:
    if batching == "shrink":
        return ShrinkingBatches()
    return KeptQueue(refill_rows, refill_rows / batch_size)


class ScaleSource(Protocol):
    step_scale: float  # the gradient scale of the batch the loop trains on now


class ShrinkNormalization:
    """A loss term that turns the loop's mean over a shrunk (or small refilled) batch's k rows
    into the sum over them divided by the mini-batch's B: the gradient scales by k / B (r / B
    for a refilled batch of r rows), the loss value shown stays the mean (the term's value is
    exactly 0). ``scale`` is read from the gate, which sets it before it hands the batch over,
    times the gate's compensation with ``skip.compensate`` (above 1 there); at 1 (nothing
    skipped) the term adds nothing."""

    def __init__(self, scale_of: ScaleSource) -> None:
        self.source = scale_of

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        scale = self.source.step_scale
        if scale == 1.0:
            return logits.new_zeros(())
        mean = F.cross_entropy(logits, y)
        return (scale - 1.0) * (mean - mean.detach())
