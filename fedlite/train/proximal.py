"""A proximal term, and FedProx's client half as an entry of the method table.

FedProx (Li et al., MLSys 2020, https://arxiv.org/abs/1812.06127) adds ``mu/2 * ||w - w_t||^2``
to each client's loss, ``w_t`` the global model it received. Flower's ``FedProx`` strategy sends
``mu`` in the train ConfigRecord as ``proximal-mu``; the term covers the parameters that travel
(pFedPara's local factors and FedPer's local modules are the client's own). ``mu = 0`` attaches
nothing, so the round is plain training exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from fedlite.methods import ClientRound, Method

MU_KEY = "proximal-mu"  # what flwr.serverapp.strategy.FedProx puts in the train config


class ProximalTerm:
    """``weight * ||p - p_0||^2`` over ``params`` (divided by their number of entries when
    ``mean``), ``p_0`` their values at the first call: the round's start, before any step."""

    def __init__(self, params: Sequence[nn.Parameter], weight: float, mean: bool = False) -> None:
        self.params, self.weight, self.mean = list(params), weight, mean
        self.start: list[Tensor] | None = None

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        if self.start is None:  # lazily, so the snapshot sits on the training device
            self.start = [p.detach().clone() for p in self.params]
        squared = sum((p - q).pow(2).sum() for p, q in zip(self.params, self.start, strict=True))
        if self.mean:
            return self.weight * squared / sum(q.numel() for q in self.start)
        return self.weight * squared


class FedProx(Method):
    name = "proximal"
    label = "FedProx's proximal term"

    def attach(self, s: None, rnd: ClientRound) -> None:
        mu = float(rnd.config.get(MU_KEY, 0.0))
        if mu <= 0:
            return
        # by identity: a method may have narrowed the trained module to part of the model
        traveling = {id(p) for name, p in rnd.root.named_parameters() if name in rnd.wire_keys}
        params = [p for p in rnd.model.parameters() if p.requires_grad and id(p) in traveling]
        if params:
            rnd.loss_terms.append(ProximalTerm(params, mu / 2))
            rnd.metrics["proximal-mu"] = mu
