"""Learning-rate schedules over a run's rounds: constant, step, cosine.

One rate per federated round (every local step of the round uses it), so a schedule's horizon
is counted in rounds. ``step`` multiplies the rate by 0.1 at 50 % and again at 75 % of the
rounds, the decay of Yim et al., CVPR 2017 (lr 0.1 -> 0.01 -> 0.001 at 32k / 48k of 64k
iterations); ``cosine`` is cosine annealing, 0.5 * (1 + cos(pi * (r - 1) / R)), which starts
at the full rate and keeps the last round above zero. The per-round factor ``lr-decay``
multiplies on top of either. Pure arithmetic: the run config imports it, and that must not
import torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

SCHEDULES = ("constant", "step", "cosine")


def schedule_factor(shape: str, step: int, steps: int) -> float:
    """The factor on the base rate in round ``step`` (1-based) of a schedule ``steps`` long."""
    if shape == "constant":
        return 1.0
    done = step - 1  # rounds already trained: round 1 runs at the full rate
    if shape == "step":
        # integer comparisons: 2 * done < steps is "before 50 %", exact for any horizon
        return 1.0 if 2 * done < steps else 0.1 if 4 * done < 3 * steps else 0.01
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(done, steps) / steps))
    raise ValueError(f"unknown learning-rate schedule {shape!r}; choose one of "
                     f"{', '.join(SCHEDULES)}")


@dataclass(frozen=True)
class LrSchedule:
    """The rate of each round of a stretch of ``rounds`` rounds: ``lr * decay ** (r - 1)``
    times the shape's factor. Called with the round number, like a function of it."""

    lr: float
    rounds: int
    shape: str = "constant"
    decay: float = 1.0

    def __call__(self, server_round: int) -> float:
        rate = self.lr * self.decay ** (server_round - 1)
        if self.shape == "constant":  # no multiplication by 1.0: today's rates, bit for bit
            return rate
        return rate * schedule_factor(self.shape, server_round, self.rounds)

    def restarted(self, rounds: int, **changes: float | str) -> LrSchedule:
        """The same shape over a new stretch of ``rounds`` rounds (its round 1 is the first
        round of the stretch), e.g. with another ``lr``, ``decay`` or ``shape``."""
        return dataclasses.replace(self, rounds=rounds, **changes)
