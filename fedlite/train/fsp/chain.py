"""The progressive chain, planned without running anything: teacher -> intermediates -> target.

Each network learns its predecessor's FSP matrices (stage 1), then the main task (stage 2).
The teacher is SMALLER than the target; the networks in between grow in size. How many
intermediates to train is chosen from a budget (KR 10-2063377, claim 8: from the target's
training time and/or accuracy): ``choose_intermediates``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from fedlite.models import MODELS


def resnet_depth(name: str) -> int:
    match = re.fullmatch(r"resnet(\d+)", name)
    if not match or name not in MODELS:
        known = ", ".join(n for n in MODELS if n.startswith("resnet"))
        raise ValueError(f"FSP chain: {name!r} is not a registered ResNet; choose from {known}")
    return int(match.group(1))


def check_chain(teacher_model: str, models: Sequence[str]) -> list[str]:
    """The chain's students in order; an error unless every network is larger than the last."""
    models = [m.strip() for m in models if m.strip()]
    if not models:
        raise ValueError("FSP chain: give at least one student model (the target last)")
    previous = teacher_model
    for model in models:
        if resnet_depth(model) <= resnet_depth(previous):
            raise ValueError(f"FSP chain: sizes must grow, but {model} follows {previous} "
                             f"(chain: {' -> '.join([teacher_model, *models])})")
        previous = model
    return models


def choose_intermediates(teacher_model: str, target_model: str, *, budget: float,
                         target_cost: float, costs: Mapping[str, float] | None = None,
                         candidates: Sequence[str] | None = None) -> list[str]:
    """The most intermediate networks whose training fits the budget, target included.

    ``budget`` and the costs share a unit: rounds, or seconds when a network's cost per run
    is measured. ``target_cost`` is what the target itself needs; each intermediate costs
    ``costs[name]`` (default 1 unit each, i.e. one run of equal rounds). Candidates are the
    registered ResNets strictly between teacher and target; k of them are the ones nearest
    k evenly spaced depths, so the size steps stay even. Returns [] when nothing fits (the target
    then learns from the teacher directly). Pure: no training, no files.
    """
    low, high = resnet_depth(teacher_model), resnet_depth(target_model)
    if high <= low:
        raise ValueError(f"FSP chain: the target {target_model} must be larger than the "
                         f"teacher {teacher_model}")
    pool = sorted((m for m in (candidates or [n for n in MODELS if n.startswith("resnet")])
                   if low < resnet_depth(m) < high), key=resnet_depth)
    costs = costs or {}
    best: list[str] = []
    for k in range(1, len(pool) + 1):
        # the candidate nearest each of k evenly spaced depths (ties: the smaller network)
        aims = [low + (high - low) * i / (k + 1) for i in range(1, k + 1)]
        picked = sorted({min(pool, key=lambda m: (abs(resnet_depth(m) - aim), resnet_depth(m)))
                         for aim in aims}, key=resnet_depth)
        if len(picked) == k and target_cost + sum(costs.get(m, 1.0) for m in picked) <= budget:
            best = picked
    return best
