"""THE local training loop. Every method attaches to it; with none attached it is plain SGD.

Attachment points:
- a batch gate (``BatchGate``) rewrites the stream of mini-batches before the grad-enabled
  forward (backprop skipping keeps only the samples worth a backward pass), and sees the
  logits of every batch it let through (``observe``);
- loss terms (``LossTerm``) add to, or with ``task_loss=False`` replace, cross-entropy
  (FSP and prototype distillation);
- callbacks (``Callback``) run at the end of each epoch and of the round;
- a loss term or callback with ``on_batch(index)`` learns which training samples each batch
  holds (``BatchIndex``), e.g. to look up per-sample values computed in an earlier epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fedlite.train.layout import channels_last, prefers_channels_last
from fedlite.train.sgd import SGD

Batch = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    clip_grad_norm: float = 0.0  # 0: off, the plain step
    seed: int = 0  # drives the shuffling order only


@dataclass
class TrainResult:
    num_examples: int
    loss: float
    accuracy: float
    samples_seen: int
    samples_backprop: int
    seconds: float
    method_metrics: dict[str, float]

    def metrics(self) -> dict[str, float | int]:
        """Flat metrics as a Flower MetricRecord wants them (``num-examples`` first)."""
        return {"num-examples": self.num_examples, "train-loss": self.loss,
                "train-accuracy": self.accuracy, "samples-seen": self.samples_seen,
                "samples-backprop": self.samples_backprop, "train-seconds": self.seconds,
                **self.method_metrics}


class BatchGate(Protocol):
    def filter(self, model: nn.Module, batches: Iterable[Batch], order: Tensor) -> Iterator[Batch]:
        """``batches`` are the epoch's samples in ``order`` (indices into the training set)."""
    def observe(self, y: Tensor, logits: Tensor) -> None:
        """The training logits of the batch just yielded (detached)."""
    def metrics(self) -> dict[str, float]: ...


class Optimizer(Protocol):
    """What the loop needs of an optimizer: ``fedlite.train.sgd.SGD`` or any ``torch.optim`` one."""
    def zero_grad(self, set_to_none: bool = True) -> None: ...
    def step(self) -> None: ...


class LossTerm(Protocol):
    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, logits: Tensor) -> Tensor: ...


class Callback(Protocol):
    def on_epoch_end(self, epoch: int) -> None: ...
    def on_round_end(self) -> dict[str, float]: ...


class BatchIndex(Protocol):
    def on_batch(self, index: Tensor | None) -> None:
        """Before each batch's forward: its samples' indices into the training set, or None
        when a gate rewrites the stream (which samples a batch holds is then its own)."""


def batches(x: Tensor, y: Tensor, batch_size: int, order: Tensor) -> Iterator[Batch]:
    """Mini-batches, in ``order``, of tensors already on the training device."""
    order = order.to(x.device)
    for start in range(0, len(y), batch_size):
        index = order[start:start + batch_size]
        yield x[index], y[index]


def train(model: nn.Module, x: np.ndarray | Tensor, y: np.ndarray | Tensor,
          settings: TrainSettings, *, device: str | torch.device = "cpu",
          gate: BatchGate | None = None, loss_terms: Sequence[LossTerm] = (),
          task_loss: bool = True, callbacks: Sequence[Callback] = (),
          make_optimizer: Callable[[nn.Module, TrainSettings], Optimizer] | None = None,
          ) -> TrainResult:
    """Train ``model`` in place for ``settings.epochs`` local epochs and report what it did."""
    start = time.perf_counter()
    x, y = torch.as_tensor(x).to(device), torch.as_tensor(y).to(device)
    model.to(device).train()
    with channels_last(model, prefers_channels_last(x, device)):
        totals = _epochs(model, x, y, settings, gate, loss_terms, task_loss, callbacks,
                         (make_optimizer or sgd)(model, settings))
    method_metrics: dict[str, float] = dict(gate.metrics()) if gate is not None else {}
    for callback in callbacks:
        method_metrics.update(callback.on_round_end())
    loss_sum, correct, seen, backprop = totals
    return TrainResult(num_examples=len(y), loss=loss_sum / max(backprop, 1),
                       accuracy=correct / max(backprop, 1), samples_seen=int(seen),
                       samples_backprop=int(backprop), seconds=time.perf_counter() - start,
                       method_metrics=method_metrics)


def _epochs(model: nn.Module, x: Tensor, y: Tensor, settings: TrainSettings,
            gate: BatchGate | None, loss_terms: Sequence[LossTerm], task_loss: bool,
            callbacks: Sequence[Callback],
            optimizer: Optimizer) -> tuple[float, float, float, float]:
    """The local epochs: (loss sum, correct, samples seen, samples backpropagated)."""
    generator = torch.Generator().manual_seed(settings.seed)
    # once each, though a part may be both a loss term and a callback (FSP's term is)
    listeners = list({id(part): part for part in (*loss_terms, *callbacks)
                      if hasattr(part, "on_batch")}.values())
    size = settings.batch_size
    loss_sum = correct = seen = backprop = 0.0
    for epoch in range(settings.epochs):
        order = torch.randperm(len(y), generator=generator)
        counter = _SampleCounter(batches(x, y, size, order))
        stream: Iterable[Batch] = counter if gate is None else gate.filter(model, counter, order)
        for step, (xb, yb) in enumerate(stream):
            if listeners:  # without a gate, batch k is order[k*size:(k+1)*size]
                index = None if gate is not None else order[step * size:(step + 1) * size]
                for listener in listeners:
                    listener.on_batch(index)
            logits = model(xb)
            if gate is not None:
                gate.observe(yb, logits.detach())
            loss = F.cross_entropy(logits, yb) if task_loss else logits.new_zeros(())
            for term in loss_terms:
                loss = loss + term(model, xb, yb, logits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.clip_grad_norm:
                nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad_norm)
            optimizer.step()
            n = len(yb)
            loss_sum += float(loss.detach()) * n
            correct += float((logits.detach().argmax(1) == yb).sum())
            backprop += n
        seen += counter.samples
        for callback in callbacks:
            callback.on_epoch_end(epoch)
    return loss_sum, correct, seen, backprop


def sgd(model: nn.Module, settings: TrainSettings,
        params: Iterable | None = None) -> SGD:
    """SGD with momentum and weight decay; a fresh optimizer per round, as in FedAvg.
    ``params`` (parameter groups) defaults to all of ``model``'s parameters."""
    return SGD(model.parameters() if params is None else params, lr=settings.lr,
               momentum=settings.momentum, weight_decay=settings.weight_decay)


def scaled_lr_groups(model: nn.Module, scaled: Callable[[str], bool], lr: float,
                     scale: float) -> list[dict]:
    """Parameter groups for an optimizer: trainable parameters whose name ``scaled`` picks
    learn at ``lr * scale``, the others at ``lr`` (empty groups dropped)."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for name, p in named if not scaled(name)]},
              {"params": [p for name, p in named if scaled(name)], "lr": lr * scale}]
    return [group for group in groups if group["params"]]


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray | Tensor, y: np.ndarray | Tensor, *,
             batch_size: int = 256, device: str | torch.device = "cpu") -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy.

    Batches of 256 keep a conv model's activations in the CPU's cache: on 2 cores the small
    CNN scores Fashion-MNIST's 10,000 test images in 0.9 s, against 1.8 s at 1024.
    """
    model.to(device).eval()
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    loss_sum = correct = 0.0
    with channels_last(model, prefers_channels_last(x, device)):
        for start in range(0, len(y), batch_size):
            xb = x[start:start + batch_size].to(device)
            yb = y[start:start + batch_size].to(device)
            logits = model(xb)
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += float((logits.argmax(1) == yb).sum())
    return loss_sum / max(len(y), 1), correct / max(len(y), 1)


class _SampleCounter:
    """Counts the samples a batch stream yields (the gate may drop some of them)."""

    def __init__(self, stream: Iterable[Batch]) -> None:
        self.stream, self.samples = stream, 0

    def __iter__(self) -> Iterator[Batch]:
        for xb, yb in self.stream:
            self.samples += len(yb)
            yield xb, yb
