"""``SkipGate``: the patent's modules put together as a batch gate for THE training loop.

Per incoming mini-batch: selection forward (computation) -> confidences into the period's
histogram (CF accumulation) -> keep the samples with confidence <= tau, queue them into full
batches, and hand those to the loop, whose forward + backward + optimizer step are the
approximate gradient and the weight update. While tau >= 1 nothing can be skipped, so the
confidences come from the training forward instead of a selection forward; with
``selection_every > 1`` most epochs reuse remembered confidences (``memory``). In the run's
first ``warmup_rounds`` rounds nothing is skipped either, while the histogram accumulates: the
first threshold then comes from a model that has stopped changing fast. A batch where
every sample is skipped yields nothing (no step) and is counted. At the end of each period
(an epoch or the round) tau is re-chosen from the histogram (linear interpolation + threshold
decision).

Per-client state, kept across rounds under ``skip/`` keys: the threshold in force, and the
histogram and |gradient| sums of the last completed period (small: 2 x bins floats); with
stale selection also the per-sample confidence memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping

import numpy as np
import torch
from torch import Tensor, nn

from fedlite.train.loop import Batch
from fedlite.train.skip.computation import SelectionForward, labeled_confidence
from fedlite.train.skip.control import SkipControl
from fedlite.train.skip.memory import ConfidenceMemory
from fedlite.train.skip.queue import KeptQueue
from fedlite.train.skip.threshold import (ConfidenceHistogram, choose_threshold, dropped_share,
                                          interpolate_gradient)

THRESHOLD, COUNTS, GRAD_SUMS = "skip/threshold", "skip/counts", "skip/grad-sums"


class SkipGate:
    """A ``BatchGate`` and a ``Callback``: pass it to ``train`` as both."""

    def __init__(self, control: SkipControl,
                 state: MutableMapping[str, np.ndarray] | None = None,
                 server_round: int | None = None) -> None:
        self.control = control
        self.state = {} if state is None else state
        # Before the first period ends there is no histogram: skip nothing (a natural warm-up).
        self.threshold = float(self.state.get(THRESHOLD, np.ones(1))[0])
        self.warming_up = server_round is not None and server_round <= control.warmup_rounds
        self.period = ConfidenceHistogram(control.bins)  # CF accumulation for the next tau
        self.epoch = ConfidenceHistogram(control.bins)  # this epoch only, for the metrics
        self.seen = self.kept = 0
        self.grad_total = self.grad_dropped = 0.0
        self.epoch_thresholds: list[float] = []
        self.epoch_estimates: list[float] = []
        self.memory: ConfidenceMemory | None = None  # only when selecting on stale confidences
        self._pending: tuple[Tensor, bool] | None = None  # the batch the loop trains on now

    # -- BatchGate ----------------------------------------------------------------------------
    def filter(self, model: nn.Module, batches: Iterable[Batch], order: Tensor) -> Iterator[Batch]:
        every = self.control.selection_every
        memory = ConfidenceMemory(self.state, len(order), every) if every > 1 else None
        self.memory = memory
        fresh = memory is None or memory.fresh
        queue = KeptQueue(self.control.batch_size)
        select = SelectionForward(model)
        start = 0
        for x, y in batches:
            index = order[start:start + len(y)]
            start += len(y)
            if self.in_force >= 1.0:
                # Nothing can be skipped: the training forward's logits (``observe``) give
                # the same confidences as a selection forward would, at no cost.
                self._pending = (index, True)
                yield x, y
                continue
            if fresh:
                confidence, grad_norm = labeled_confidence(select(x), y)
                conf_np, grad_np = confidence.cpu().numpy(), grad_norm.cpu().numpy()
                if memory is not None:
                    memory.store(index.numpy(), conf_np, grad_np)
            else:
                conf_np, grad_np = memory.lookup(index.numpy())
            keep_np = ~(conf_np > self.in_force)  # a NaN confidence (diverged model) is kept
            self._account(conf_np, grad_np, keep_np)
            keep = torch.from_numpy(keep_np)
            if keep_np.all():
                kept = (x, y, index)
            else:  # gathered before any autograd forward
                kept = (x[keep.to(x.device)], y[keep.to(y.device)], index[keep])
            for xb, yb, ib in queue.push(*kept):
                self._pending = (ib, False)
                yield xb, yb
        for xb, yb, ib in queue.flush():
            self._pending = (ib, False)
            yield xb, yb
        if memory is not None:
            memory.save()

    def observe(self, y: Tensor, logits: Tensor) -> None:
        """Confidences from the training forward: counted when no selection forward ran, and
        remembered for the next epochs when selecting on stale confidences."""
        if self._pending is None:
            return
        index, uncounted = self._pending
        self._pending = None
        if not uncounted and self.memory is None:
            return
        confidence, grad_norm = labeled_confidence(logits, y)
        conf_np, grad_np = confidence.cpu().numpy(), grad_norm.cpu().numpy()
        if uncounted:
            self._account(conf_np, grad_np, np.ones(len(conf_np), dtype=bool))
        if self.memory is not None:
            self.memory.store(index.numpy(), conf_np, grad_np)

    def _account(self, confidence: np.ndarray, grad_norm: np.ndarray, keep: np.ndarray) -> None:
        """CF accumulation and the run's counters for one incoming batch."""
        bins = self.control.bin_of(confidence)
        self.period.add(bins, grad_norm)
        self.epoch.add(bins, grad_norm)
        self.seen += len(keep)
        self.kept += int(keep.sum())
        self.grad_total += float(grad_norm.sum())
        self.grad_dropped += float(grad_norm[~keep].sum())

    @property
    def in_force(self) -> float:
        """The threshold this batch is judged by: 1 (skip nothing) while warming up."""
        return 1.0 if self.warming_up else self.threshold

    def metrics(self) -> dict[str, float]:
        return {"skip-threshold": _mean(self.epoch_thresholds, self.in_force),
                "skip-backprop-fraction": self.kept / self.seen if self.seen else 1.0,
                "skip-estimated-error": _mean(self.epoch_estimates, 0.0),
                # the same share measured on the proxy itself, sample by sample
                "skip-dropped-gradient": (self.grad_dropped / self.grad_total
                                          if self.grad_total > 0 else 0.0)}

    # -- Callback -----------------------------------------------------------------------------
    def on_epoch_end(self, epoch: int) -> None:
        estimate = interpolate_gradient(self.epoch.counts, self.epoch.grad_sums)
        self.epoch_thresholds.append(self.in_force)
        self.epoch_estimates.append(dropped_share(self.epoch.counts, estimate, self.in_force))
        self.epoch.reset()
        if self.control.period == "epoch":
            self._choose()

    def on_round_end(self) -> dict[str, float]:
        if self.control.period == "round":
            self._choose()
        return {}

    def _choose(self) -> None:
        """End of a period: pick the next tau and persist it with the period's statistics."""
        counts, grad_sums = self.period.counts.copy(), self.period.grad_sums.copy()
        if counts.sum() == 0:
            return  # an empty period (no data) says nothing: keep tau
        self.threshold, _ = choose_threshold(counts, interpolate_gradient(counts, grad_sums),
                                             self.control.error_bound)
        self.period.reset()
        self.state[THRESHOLD] = np.array([self.threshold])
        self.state[COUNTS], self.state[GRAD_SUMS] = counts, grad_sums


def _mean(values: list[float], default: float) -> float:
    return float(np.mean(values)) if values else default
