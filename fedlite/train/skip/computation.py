"""Computation module (US 12,307,363 B2), selection half: which samples of a batch get a backward.

A forward without autograd gives each sample's confidence, the softmax probability of its
LABELED class (so a confidently wrong sample has a low confidence and is always kept), and the
norm of its output gradient. The loop's own forward + backward then runs on the kept samples
only (see ``queue.KeptQueue``), which yields the approximate weight gradient.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm


def labeled_confidence(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per sample: p_y (confidence in the labeled class) and ||p - e_y||_2 (output gradient)."""
    p = F.softmax(logits.float(), dim=1)
    p_y = p.gather(1, y.view(-1, 1)).squeeze(1)
    # ||p - e_y||^2 = sum_k p_k^2 - 2 p_y + 1, without building the one-hot matrix
    grad_norm = (p.square().sum(1) - 2 * p_y + 1).clamp_min(0).sqrt()
    return p_y, grad_norm


def selection_logits(model: nn.Module, x: Tensor) -> Tensor:
    """The model's logits in its current mode, in inference mode (no autograd), leaving no trace.

    The current (training) mode is kept so the confidence is what the training forward would
    see; but a selection pass must not change training: batch-norm running statistics are
    restored afterwards and dropout draws from a forked random stream.
    """
    return SelectionForward(model)(x)


class SelectionForward:
    """``selection_logits`` for one model, called per mini-batch: which modules need guarding
    is found once (scanning the modules each batch cost 11 % of the small CNN's forward).

    With ``compiled_rows``, batches of exactly that many rows (the full mini-batches) run
    through ``torch.compile`` with static shapes; any other size (an epoch's last, shorter
    batch) runs eagerly, so client sizes never trigger a recompile. The compiled code is cached
    per process: a new model of the same architecture reuses it, and weight updates need none.
    """

    def __init__(self, model: nn.Module, compiled_rows: int | None = None) -> None:
        self.model = model
        self.norms = [m for m in model.modules()
                      if isinstance(m, _BatchNorm) and m.track_running_stats]
        self.dropouts = [m for m in model.modules()
                         if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]
        self.compiled_rows = compiled_rows
        self.compiled = None if compiled_rows is None else torch.compile(model, dynamic=False)

    def __call__(self, x: Tensor) -> Tensor:
        with torch.inference_mode(), _restored_running_stats(self.norms), \
                _forked_rng_if_dropout(self.dropouts, x):
            if self.compiled is None or len(x) != self.compiled_rows:
                return self.model(x)
            try:
                return self.compiled(x)
            except Exception as error:  # inductor's CPU kernels need a C++ compiler, e.g.
                raise RuntimeError(
                    "skip.compile-selection = true, but torch.compile could not compile or "
                    f"run the selection forward of {type(self.model).__name__} ({error!r}); set "
                    "skip.compile-selection = false (eager selection, the same decisions) or "
                    "install what torch.compile needs (a C++ compiler on the CPU)") from error


@contextmanager
def _restored_running_stats(norms: list[_BatchNorm]) -> Iterator[None]:
    saved = [(m, {k: b.clone() for k, b in m.named_buffers(recurse=False) if b is not None})
             for m in norms if m.training]
    try:
        yield
    finally:
        for module, buffers in saved:
            for name, value in buffers.items():
                getattr(module, name).copy_(value)


def _forked_rng_if_dropout(dropouts: list[nn.Module], x: Tensor):
    if not any(m.training for m in dropouts):
        return ExitStack()  # nothing random in the forward: forking would only cost time
    devices = [x.device] if x.device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)
