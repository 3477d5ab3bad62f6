"""Factor shapes, composition and variance-matched initialisation of FedPara weights.

A *branch* is one low-rank weight built from factors: ``x @ y.T`` (Prop. 1, the
weight reshaped to O x (I*K1*K2)) or the Tucker-2 product ``t x1 x x2 y`` (Prop. 3,
conv only). FedPara multiplies two branches, pFedPara adds the first one back, and
the low-rank baseline is a single branch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

FORMS = ("prop1", "prop3")

BRANCHES = {"fedpara": 2, "pfedpara": 2, "lowrank": 1}
"""Number of factor branches per mode."""

COMBINE: dict[str, Callable[[Sequence[torch.Tensor]], torch.Tensor]] = {
    "fedpara": lambda w: w[0] * w[1],
    "pfedpara": lambda w: w[0] * w[1] + w[0],  # = W1 * (W2 + 1): global weight + personal residue
    "lowrank": lambda w: w[0],
}


def check_form(form: str, weight_shape: Sequence[int]) -> None:
    """Raise ValueError unless ``form`` is known and fits a weight of ``weight_shape``."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if form == "prop3" and len(weight_shape) != 4:
        raise ValueError("form 'prop3' (Tucker-2) needs a 4-D conv kernel, "
                         f"got shape {tuple(weight_shape)}")


def factor_shapes(weight_shape: Sequence[int], rank: int, form: str) -> dict[str, tuple[int, ...]]:
    """Shapes of one branch's factors, keyed by letter (``x``, ``y`` and, for prop3, ``t``).

    prop1: x (O, R), y (I*K1*K2, R). prop3: t (R, R, K1, K2), x (O, R), y (I, R).
    """
    check_form(form, weight_shape)
    out = int(weight_shape[0])
    if form == "prop1":
        return {"x": (out, rank), "y": (math.prod(weight_shape[1:]), rank)}
    _, in_, k1, k2 = weight_shape
    return {"t": (rank, rank, k1, k2), "x": (out, rank), "y": (in_, rank)}


def branch_params(weight_shape: Sequence[int], rank: int, form: str) -> int:
    """Number of parameters of one branch."""
    return sum(math.prod(s) for s in factor_shapes(weight_shape, rank, form).values())


def compose_branch(x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None,
                   weight_shape: Sequence[int]) -> torch.Tensor:
    """Build one branch's dense weight: ``x @ y.T`` (prop1) or ``t x1 x x2 y`` (prop3)."""
    if t is None:
        return (x @ y.T).reshape(weight_shape)
    return torch.einsum("abkl,oa,ib->oikl", t, x, y)


def branch_variances(mode: str, target: float) -> tuple[float, ...]:
    """Per-branch weight variance so that the composed weight has variance ``target``.

    Independent zero-mean branches give Var(W1*W2) = Var(W1)*Var(W2), hence sqrt(target)
    each for FedPara. For pFedPara Var(W1*(W2+1)) = v*(v+1) with equal branch variances v;
    the personal gate 1+W2 then starts near 1, so the model starts close to its global part.
    """
    if mode == "fedpara":
        return (math.sqrt(target),) * 2
    if mode == "pfedpara":
        v = (math.sqrt(1.0 + 4.0 * target) - 1.0) / 2.0
        return (v, v)
    return (target,)


def factor_std(variance: float, rank: int, form: str) -> float:
    """Per-entry std shared by a branch's factors so that the branch has ``variance``.

    An entry of x @ y.T sums R products (variance R*s**4); a Tucker-2 entry sums R**2
    products of three factors (R**2 * s**6). Equal stds keep the factors' gradients balanced.
    """
    if form == "prop1":
        return (variance / rank) ** 0.25
    return (variance / rank**2) ** (1.0 / 6.0)
