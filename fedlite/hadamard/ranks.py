"""The FedPara rank rule: r = ceil((1 - gamma) * r_min + gamma * r_max) (paper Sec. 3.1)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from fedlite.hadamard.factors import BRANCHES, branch_params, check_form

MIN_RANK = {"fedpara": 2, "pfedpara": 2, "lowrank": 1}
"""Smallest accepted rank per mode. At R = 1 a Hadamard product of two rank-1 matrices is
again rank 1, so FedPara/pFedPara would be a (worse-conditioned) rank-1 layer."""


def check_mode(mode: str) -> None:
    """Raise ValueError unless ``mode`` is one of ``fedpara``, ``pfedpara``, ``lowrank``."""
    if mode not in BRANCHES:
        raise ValueError(f"mode must be one of {tuple(BRANCHES)}, got {mode!r}")


def check_gamma(gamma: float) -> None:
    """Raise ValueError unless 0 <= gamma <= 1."""
    if not 0.0 <= gamma <= 1.0:  # also rejects NaN
        raise ValueError(f"gamma must be in [0, 1], got gamma={gamma}")


def check_rank(rank: int, mode: str, layer: str) -> int:
    """Return ``rank`` if it is an integer >= MIN_RANK[mode], else raise ValueError naming
    ``layer``."""
    check_mode(mode)
    if isinstance(rank, bool) or int(rank) != rank or rank < MIN_RANK[mode]:
        raise ValueError(f"layer {layer}: rank {rank!r} is too small for mode {mode!r} "
                         f"(minimum {MIN_RANK[mode]}; "
                         "a Hadamard product of rank-1 factors is rank 1)")
    return int(rank)


def factorized_params(weight_shape: Sequence[int], rank: int, form: str = "prop1",
                      mode: str = "fedpara") -> int:
    """Factor parameters of a layer (no bias).

    FC 2R(m+n), prop1 2R(O+I*K1*K2), prop3 2R(O+I+R*K1*K2).

    The low-rank baseline has half of that per rank for prop1 (R(m+n)); its Tucker form has
    R(O+I) + R**2*K1*K2.
    """
    check_mode(mode)
    return BRANCHES[mode] * branch_params(weight_shape, rank, form)


def rank_bounds(weight_shape: Sequence[int], form: str = "prop1") -> tuple[int, int]:
    """Return (r_min, r_max) of the FedPara rank rule for a dense weight of ``weight_shape``.

    r_min = min(ceil(sqrt(m)), ceil(sqrt(n))), the smallest R with R**2 >= min(m, n) (full
    rank possible), where m = O and n = I*K1*K2 for prop1, n = I for prop3 (as in the Flower
    baseline). r_max is the largest R whose FedPara parameter count does not exceed the dense
    layer's; for prop3 that is the floor of the root of K1*K2*R**2 + (O+I)*R - O*I*K1*K2/2.
    """
    check_form(form, weight_shape)
    m = int(weight_shape[0])
    n = int(weight_shape[1]) if form == "prop3" else math.prod(weight_shape[1:])
    r_min = min(math.isqrt(m - 1) + 1, math.isqrt(n - 1) + 1)
    dense = math.prod(weight_shape)
    lo, hi = 0, dense  # the parameter count is increasing in R: bisect for the last fitting R
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if factorized_params(weight_shape, mid, form) <= dense:
            lo = mid
        else:
            hi = mid - 1
    return r_min, lo


def lowrank_rank(weight_shape: Sequence[int], rank: int, form: str = "prop1") -> int:
    """Smallest low-rank rank whose parameter count reaches FedPara's at ``rank``.

    That is exactly 2R for FC layers and prop1 (R(m+n) is linear in R). For the Tucker
    form it is a little below 2R; on VGG16 at gamma=0.1 it gives the paper's 10.25 % of
    the parameters (Table 2), where 2R would give 12.2 %.
    """
    budget = factorized_params(weight_shape, rank, form, "fedpara")
    low = rank
    while factorized_params(weight_shape, low, form, "lowrank") < budget:
        low += 1
    return low


def rank_for_gamma(weight_shape: Sequence[int], gamma: float, form: str = "prop1",
                   mode: str = "fedpara") -> int:
    """Rank of one layer for the model-wide knob ``gamma`` in [0, 1].

    FedPara and pFedPara use r = ceil((1 - gamma) * r_min + gamma * r_max), raised to
    MIN_RANK when a tiny layer gives less. The low-rank baseline gets the same parameter
    budget as FedPara at rank r (``lowrank_rank``: 2r for FC and prop1).
    """
    check_gamma(gamma)
    check_mode(mode)
    r_min, r_max = rank_bounds(weight_shape, form)
    # 1e-9 absorbs float error such as 0.9 * 10 + 0.1 * 30 = 12.000000000000002
    rank = max(MIN_RANK["fedpara"], math.ceil((1 - gamma) * r_min + gamma * r_max - 1e-9))
    return lowrank_rank(weight_shape, rank, form) if mode == "lowrank" else rank
