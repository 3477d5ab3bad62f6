"""SGD with momentum and weight decay: ``torch.optim.SGD``'s update, without ``torch.optim``.

Every ``torch.optim`` optimizer imports ``torch._dynamo`` the first time one is built (its
methods are wrapped by ``torch._disable_dynamo``, which imports lazily): 2 s on the 2-core
machine, paid once by every fresh process, so by every Ray actor in round 1. This class does
the arithmetic of ``torch.optim.SGD`` (dampening 0, no Nesterov, no maximize) with the same
foreach ops it uses on a GPU, and the tests check that both give bit-identical weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class SGD:
    """``param_groups`` as in ``torch.optim``: a list of dicts, each with ``params`` and its
    own ``lr``, ``momentum`` and ``weight_decay`` (the constructor's values by default)."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float,
                 momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        groups = list(params)
        if not groups:
            raise ValueError("SGD got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}
        self.param_groups = [{**defaults, **group, "params": list(group["params"])}
                             for group in groups]
        self.state: dict[Tensor, Tensor] = {}  # parameter -> momentum buffer

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            # foreach ops: one kernel launch per op on a GPU; on the CPU they loop over the
            # tensors with the per-tensor ops, so the arithmetic is torch.optim.SGD's there
            grads = [p.grad for p in params]
            if group["weight_decay"] != 0:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            if group["momentum"] != 0:
                grads = self._momentum(params, grads, group["momentum"])
            torch._foreach_add_(params, grads, alpha=-group["lr"])

    def _momentum(self, params: list[Tensor], grads: list[Tensor], momentum: float) -> list[Tensor]:
        """buf = grad at a parameter's first step, then buf = momentum * buf + grad."""
        known = [(self.state[p], grad) for p, grad in zip(params, grads, strict=True)
                 if p in self.state]
        if known:
            bufs, known_grads = map(list, zip(*known, strict=True))
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_add_(bufs, known_grads)
        for p, grad in zip(params, grads, strict=True):
            if p not in self.state:
                self.state[p] = grad.detach().clone()
        return [self.state[p] for p in params]
