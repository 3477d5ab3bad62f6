"""``SkipGate``: the patent's modules put together as a batch gate for THE training loop.

Per incoming mini-batch: selection forward (computation) -> confidences into the period's
histogram (CF accumulation) -> the samples with confidence above tau are candidates to skip,
and the in-period guard (``guard``) skips them only while the period's measured dropped share
stays within the error bound -> the kept samples go to the loop in the run's batch form
(``batching``: refilled into full batches, or each mini-batch shrunk), whose forward + backward +
optimizer step are the approximate gradient and the weight update; with ``compensate`` each
step's gradient is scaled by 1 / (1 - the period's measured dropped share so far). tau never
goes below ``min_threshold`` (0.5: a sample the model may misclassify is always
backpropagated). While tau >= 1 nothing can be skipped, so the confidences come from the
training forward instead of a selection forward; with ``selection_every > 1`` most epochs
reuse remembered confidences (``memory``); with ``compile_selection`` the selection forward of
full mini-batches runs through ``torch.compile`` (the same logits, cheaper on the CPU). In the
run's first ``warmup_rounds`` rounds nothing is skipped either, while the histogram
accumulates. A batch where every sample is skipped yields nothing (no step) and is counted.
At the end of each period (an epoch or the round) tau is re-chosen from the histogram (linear
interpolation + threshold decision).

Per-client state, kept across rounds under ``skip/`` keys: the threshold in force, and the
histogram and |gradient| sums of the last completed period (small: 2 x bins floats); with
stale selection also the per-sample confidence memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, MutableMapping

import numpy as np
import torch
from torch import Tensor, nn

from fedlite.train.loop import Batch
from fedlite.train.skip.batching import batch_form
from fedlite.train.skip.computation import SelectionForward, labeled_confidence
from fedlite.train.skip.control import SkipControl
from fedlite.train.skip.guard import DroppedShareGuard
from fedlite.train.skip.memory import ConfidenceMemory
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
        self.guard = DroppedShareGuard(control.error_bound)  # the bound, within the period
        self.seen = self.kept = self.guard_kept = 0
        self.grad_total = self.grad_dropped = self.grad_above = 0.0
        self.selection_seconds = 0.0
        self.fresh_total = self.fresh_dropped = 0.0  # ``audit_stale``: fresh ||p - e_y||
        self.epoch_thresholds: list[float] = []
        self.epoch_estimates: list[float] = []
        self.memory: ConfidenceMemory | None = None  # only when selecting on stale confidences
        self._pending: tuple[Tensor, bool] | None = None  # the batch the loop trains on now
        self.step_scale = 1.0  # that batch's gradient scale (``batching.ShrinkNormalization``)
        self._select: SelectionForward | None = None

    # -- BatchGate ----------------------------------------------------------------------------
    def filter(self, model: nn.Module, batches: Iterable[Batch], order: Tensor) -> Iterator[Batch]:
        every = self.control.selection_every
        memory = ConfidenceMemory(self.state, len(order), every) if every > 1 else None
        self.memory = memory
        fresh = memory is None or memory.fresh
        form = batch_form(self.control.batching, self.control.batch_size,
                          self.control.refill_rows)
        select = self._selection_forward(model)
        start = 0
        for x, y in batches:
            index = order[start:start + len(y)]
            start += len(y)
            tau = self.in_force
            if tau >= 1.0:
                # Nothing can be skipped: the training forward's logits (``observe``) give
                # the same confidences as a selection forward would, at no cost.
                self._pending, self.step_scale = (index, True), 1.0
                yield x, y
                continue
            if fresh:
                began = time.perf_counter()
                confidence, grad_norm = labeled_confidence(select(x), y)
                conf_np, grad_np = confidence.cpu().numpy(), grad_norm.cpu().numpy()
                self.selection_seconds += time.perf_counter() - began
                if memory is not None:
                    memory.store(index.numpy(), conf_np, grad_np)
            else:
                conf_np, grad_np = memory.lookup(index.numpy())
            above = conf_np > tau  # a NaN confidence (diverged model) is never above: kept
            skip = self.guard.skippable(above, grad_np)
            if self.control.audit_stale:
                fresh_grad = grad_np if fresh else labeled_confidence(select(x), y)[1].cpu().numpy()
                self.fresh_total += float(np.nansum(fresh_grad, dtype=np.float64))
                self.fresh_dropped += float(np.nansum(fresh_grad[skip], dtype=np.float64))
            keep_np = ~skip
            self._account(conf_np, grad_np, keep_np, above)
            keep = torch.from_numpy(keep_np)
            if keep_np.all():
                kept = (x, y, index)
            else:  # gathered before any autograd forward
                kept = (x[keep.to(x.device)], y[keep.to(y.device)], index[keep])
            for xb, yb, ib, scale in form.push(*kept, len(y)):
                self._hand_over(ib, scale)
                yield xb, yb
        for xb, yb, ib, scale in form.flush():
            self._hand_over(ib, scale)
            yield xb, yb
        if memory is not None:
            memory.save()

    def _selection_forward(self, model: nn.Module) -> SelectionForward:
        """One per round (wrapping a model in ``torch.compile`` again each epoch costs ms)."""
        if self._select is None or self._select.model is not model:
            self._select = SelectionForward(model, self.control.batch_size
                                            if self.control.compile_selection else None)
        return self._select

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
            everything = np.ones(len(conf_np), dtype=bool)
            self._account(conf_np, grad_np, everything, ~everything)
        if self.memory is not None:
            self.memory.store(index.numpy(), conf_np, grad_np)

    def _account(self, confidence: np.ndarray, grad_norm: np.ndarray, keep: np.ndarray,
                 above: np.ndarray) -> None:
        """CF accumulation, the guard's period sums and the run's counters for one batch."""
        bins = self.control.bin_of(confidence)
        self.period.add(bins, grad_norm)
        self.epoch.add(bins, grad_norm)
        self.guard.record(grad_norm, ~keep)
        self.seen += len(keep)
        self.kept += int(keep.sum())
        self.guard_kept += int((above & keep).sum())
        self.grad_total += float(np.nansum(grad_norm, dtype=np.float64))
        self.grad_dropped += float(np.nansum(grad_norm[~keep], dtype=np.float64))
        self.grad_above += float(np.nansum(grad_norm[above], dtype=np.float64))

    def _hand_over(self, index: Tensor, scale: float) -> None:
        """The loop trains on these kept rows next: whose they are, and the step's gradient
        scale (the batch form's, times the guard's compensation with ``compensate``)."""
        if self.control.compensate:
            scale *= self.guard.compensation()
        self._pending, self.step_scale = (index, False), scale

    @property
    def in_force(self) -> float:
        """The threshold this batch is judged by: 1 (skip nothing) while warming up, never
        below the floor (a threshold from older state, or set by hand, is raised to it)."""
        return 1.0 if self.warming_up else max(self.threshold, self.control.min_threshold)

    def metrics(self) -> dict[str, float]:
        def share(part: float) -> float:
            return part / self.grad_total if self.grad_total > 0 else 0.0

        return {"skip-threshold": _mean(self.epoch_thresholds, self.in_force),
                "skip-backprop-fraction": self.kept / self.seen if self.seen else 1.0,
                # E(tau) as the linear model estimates it on the round's own histogram
                "skip-estimated-error": _mean(self.epoch_estimates, 0.0),
                # measured sample by sample on ||p - e_y||: what was dropped (the guard holds
                # it within the bound), and what tau alone would have dropped
                "skip-dropped-gradient": share(self.grad_dropped),
                "skip-dropped-without-guard": share(self.grad_above),
                "skip-guard-kept": self.guard_kept / self.seen if self.seen else 0.0,
                "skip-selection-seconds": self.selection_seconds,
                **({"skip-dropped-gradient-fresh": (self.fresh_dropped / self.fresh_total
                                                    if self.fresh_total > 0 else 0.0)}
                   if self.control.audit_stale else {})}

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
        self.guard.reset()
        counts, grad_sums = self.period.counts.copy(), self.period.grad_sums.copy()
        if counts.sum() == 0:
            return  # an empty period (no data) says nothing: keep tau
        self.threshold, _ = choose_threshold(counts, interpolate_gradient(counts, grad_sums),
                                             self.control.error_bound,
                                             self.control.min_threshold)
        self.period.reset()
        self.state[THRESHOLD] = np.array([self.threshold])
        self.state[COUNTS], self.state[GRAD_SUMS] = counts, grad_sums


def _mean(values: list[float], default: float) -> float:
    return float(np.mean(values)) if values else default
