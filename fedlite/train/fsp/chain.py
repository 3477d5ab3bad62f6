"""The progressive chain, planned without running anything: teacher -> intermediates -> target.

Each network learns its predecessor's FSP matrices (stage 1), then the main task (stage 2).
The teacher is SMALLER than the target; the networks in between grow in size. How many
intermediates to train is chosen as the chain runs (KR 10-2063377, claim 8): ``selection``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

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
