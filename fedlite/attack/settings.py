"""The run config's ``attack`` section."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fedlite.errors import require
from fedlite.fields import setting


@dataclass(frozen=True)
class AttackConfig:
    scale: float = setting(100.0, "how far an attacker pushes its update past its trained "
                                  "arrays")
    fraction: float = setting(0.0, "share of clients that send poisoned updates; 0 = none")

    def __post_init__(self) -> None:
        require(0.0 <= self.fraction <= 1.0, "attack.fraction",
                "must be in [0, 1] (share of clients sending poisoned updates; 0 = none)")
        require(math.isfinite(self.scale), "attack.scale", "must be a finite number")

    def attackers(self, num_clients: int) -> int:
        return int(round(self.fraction * num_clients))
