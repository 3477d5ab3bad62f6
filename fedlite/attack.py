"""Poisoned updates, for robustness experiments only (run-config keys ``attack.*``).

With ``attack.fraction = f`` the clients with id < round(f * num-clients) are attackers: they
train as usual, then send ``global + scale * (trained - global)`` instead of their trained
arrays (a model-replacement style boost; ``attack.scale = 100`` is the classic "scaled by
100"). The defaults (fraction 0) leave every client honest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class AttackConfig:
    scale: float = 100.0  # how far an attacker pushes its update past its trained arrays
    fraction: float = 0.0  # share of clients that attack; 0 = nobody

    def __post_init__(self) -> None:
        from fedlite.config import _require  # the config module imports this one

        _require(0.0 <= self.fraction <= 1.0, "attack.fraction",
                 "must be in [0, 1] (share of clients sending poisoned updates; 0 = none)")
        _require(np.isfinite(self.scale), "attack.scale", "must be a finite number")

    def attackers(self, num_clients: int) -> int:
        return int(round(self.fraction * num_clients))


def outgoing(attack: AttackConfig, num_clients: int, client_id: int, received: Mapping[str, Any],
             trained: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What client ``client_id`` replies: its trained arrays, or a poisoned version of them."""
    if client_id >= attack.attackers(num_clients):
        return trained
    poisoned = {}
    for key, value in trained.items():
        if not value.is_floating_point() or key not in received:
            poisoned[key] = value
            continue
        sent = received[key]
        start = torch.as_tensor(np.asarray(sent.numpy() if hasattr(sent, "numpy") else sent),
                                dtype=value.dtype, device=value.device)
        poisoned[key] = start + attack.scale * (value - start)
    return poisoned
