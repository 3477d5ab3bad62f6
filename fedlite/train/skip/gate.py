"""``SkipGate``: the seed's modules put together as a batch gate for THE training loop.

Per incoming mini-batch: selection forward (computation) -> confidences into the period's
histogram (CF accumulation) -> keep the samples with confidence <= tau, queue them into full
batches, and hand those to the loop, whose forward + backward + optimizer step are the
approximate gradient and the weight update. A batch where every sample is skipped yields
nothing (no step) and is counted. At the end of each period (an epoch or the round) tau is
re-chosen from the histogram (linear interpolation + threshold decision).

Per-client state, kept across rounds under ``skip/`` keys: the threshold in force, and the
histogram and |gradient| sums of the last completed period (small: 2 x bins floats).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping

import numpy as np
from torch import nn

from fedlite.train.loop import Batch
from fedlite.train.skip.computation import labeled_confidence, selection_logits
from fedlite.train.skip.control import SkipControl
from fedlite.train.skip.queue import KeptQueue
from fedlite.train.skip.threshold import (ConfidenceHistogram, choose_threshold, dropped_share,
                                          interpolate_gradient)

THRESHOLD, COUNTS, GRAD_SUMS = "skip/threshold", "skip/counts", "skip/grad-sums"


class SkipGate:
    """A ``BatchGate`` and a ``Callback``: pass it to ``train`` as both."""

    def __init__(self, control: SkipControl,
                 state: MutableMapping[str, np.ndarray] | None = None) -> None:
        self.control = control
        self.state = {} if state is None else state
        # Before the first period ends there is no histogram: skip nothing (a natural warm-up).
        self.threshold = float(self.state.get(THRESHOLD, np.ones(1))[0])
        self.period = ConfidenceHistogram(control.bins)  # CF accumulation for the next tau
        self.epoch = ConfidenceHistogram(control.bins)  # this epoch only, for the metrics
        self.seen = self.kept = 0
        self.grad_total = self.grad_dropped = 0.0
        self.epoch_thresholds: list[float] = []
        self.epoch_estimates: list[float] = []

    # -- BatchGate ----------------------------------------------------------------------------
    def filter(self, model: nn.Module, batches: Iterable[Batch]) -> Iterator[Batch]:
        queue = KeptQueue(self.control.batch_size)
        for x, y in batches:
            confidence, grad_norm = labeled_confidence(selection_logits(model, x), y)
            keep = ~(confidence > self.threshold)  # a NaN confidence (diverged model) is kept
            conf_np, grad_np, keep_np = (t.cpu().numpy() for t in (confidence, grad_norm, keep))
            bins = self.control.bin_of(conf_np)
            self.period.add(bins, grad_np)
            self.epoch.add(bins, grad_np)
            n_kept = int(keep_np.sum())
            self.seen += len(keep_np)
            self.kept += n_kept
            self.grad_total += float(grad_np.sum())
            self.grad_dropped += float(grad_np[~keep_np].sum())
            if n_kept == len(keep_np):
                yield from queue.push(x, y)
            elif n_kept:
                yield from queue.push(x[keep], y[keep])  # gathered before any autograd forward
        yield from queue.flush()

    def metrics(self) -> dict[str, float]:
        return {"skip-threshold": _mean(self.epoch_thresholds, self.threshold),
                "skip-backprop-fraction": self.kept / self.seen if self.seen else 1.0,
                "skip-estimated-error": _mean(self.epoch_estimates, 0.0),
                # the same share measured on the proxy itself, sample by sample
                "skip-dropped-gradient": (self.grad_dropped / self.grad_total
                                          if self.grad_total > 0 else 0.0)}

    # -- Callback -----------------------------------------------------------------------------
    def on_epoch_end(self, epoch: int) -> None:
        estimate = interpolate_gradient(self.epoch.counts, self.epoch.grad_sums)
        self.epoch_thresholds.append(self.threshold)
        self.epoch_estimates.append(dropped_share(self.epoch.counts, estimate, self.threshold))
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
