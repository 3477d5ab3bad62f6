"""Convert a model's ``nn.Linear`` / ``nn.Conv2d`` layers to FedPara layers, in place."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from torch import nn

from fedlite.hadamard.factors import FORMS
from fedlite.hadamard.keys import is_local_key
from fedlite.hadamard.layers import (FactorizedLayer, HadamardConv2d, HadamardLinear,
                                     LowRankConv2d, LowRankLinear, PersonalHadamardConv2d,
                                     PersonalHadamardLinear)
from fedlite.hadamard.ranks import check_gamma, check_mode, check_rank, rank_for_gamma
from fedlite.hadamard.recurrent import gate_maps, non_gate_linears

LAYERS: dict[str, dict[type[nn.Module], type[FactorizedLayer]]] = {
    "fedpara": {nn.Linear: HadamardLinear, nn.Conv2d: HadamardConv2d},
    "pfedpara": {nn.Linear: PersonalHadamardLinear, nn.Conv2d: PersonalHadamardConv2d},
    "lowrank": {nn.Linear: LowRankLinear, nn.Conv2d: LowRankConv2d},
}
"""Dispatch table: mode -> exact dense type -> factorised type. Subclasses of nn.Linear
(e.g. attention's out_proj) are left alone since their owners may read ``.weight`` directly."""


@dataclass(frozen=True)
class LayerReport:
    """One converted layer; parameter counts are for the weight only (biases are unchanged)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    rank: int
    dense_params: int
    new_params: int


@dataclass(frozen=True)
class ConversionReport:
    """What ``convert`` did: per-layer ranks and parameter counts, and model totals."""

    mode: str
    gamma: float
    layers: tuple[LayerReport, ...]
    params_before: int
    params_after: int
    local_params: int
    """Parameters that never leave the client (pFedPara's ``fedpara_local_*``)."""

    @property
    def ratio(self) -> float:
        """Model parameters after / before."""
        return self.params_after / self.params_before

    def describe(self) -> dict:
        """What config.json records about the conversion."""
        return {"fedpara-mode": self.mode, "dense-params": self.params_before,
                "layers": [dataclasses.asdict(layer) for layer in self.layers]}

    def __str__(self) -> str:
        rows = [("layer", "kind", "shape", "rank", "dense", "new")]
        rows += [(r.name, r.kind, "x".join(map(str, r.shape)), str(r.rank),
                  f"{r.dense_params:,}", f"{r.new_params:,}") for r in self.layers]
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        lines = [f"{self.mode} conversion, gamma={self.gamma}"]
        lines += ["  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(row, widths, strict=True)))
                  for row in rows]
        dense = sum(r.dense_params for r in self.layers)
        new = sum(r.new_params for r in self.layers)
        lines.append(f"{len(self.layers)} layers: {dense:,} -> {new:,} weight params")
        lines.append(f"model: {self.params_before:,} -> {self.params_after:,} params "
                     f"({100 * self.ratio:.2f} %), {self.local_params:,} of them local")
        return "\n".join(lines)


def default_exclude(model: nn.Module) -> tuple[str, ...]:
    """Names of the layers a conversion keeps dense by default: a conv net's heads, the
    ``nn.Linear`` layers that follow an ``nn.Conv2d``.

    The paper keeps VGG16's classifier (512-512-C) dense and factorises every conv. A model
    of several convolutional branches (continual learning's first and second model) keeps
    every branch's head dense, so the branches' heads stay alike. An LSTM keeps every Linear
    but its gate maps (``recurrent.gate_maps``): its output layer. A model without either
    (the pFedPara MLP) gets ``()``: all its layers are factorised.
    """
    if gate_maps(model):
        return non_gate_linears(model)
    modules = list(model.named_modules())
    first_conv = min((i for i, (_, m) in enumerate(modules) if type(m) is nn.Conv2d),
                     default=None)
    if first_conv is None:
        return ()
    return tuple(n for n, m in modules[first_conv + 1:] if type(m) is nn.Linear)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in patterns)


def _matches_any(pattern: str, names: list[str]) -> bool:
    return any(_matches(n, (pattern,)) for n in names)


def _select(model: nn.Module, mode: str, include, exclude) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs to convert; raise on names that match no layer."""
    table = LAYERS[mode]
    layers = [(n, m) for n, m in model.named_modules() if n and type(m) in table]
    names = [n for n, _ in layers]
    for label, patterns in (("include", include or ()), ("exclude", exclude)):
        unknown = [p for p in patterns if not _matches_any(p, names)]
        if unknown:
            raise ValueError(f"{label} names {unknown} match no Linear/Conv2d layer; "
                             f"available: {', '.join(names)}")
    return [(n, m) for n, m in layers
            if (include is None or _matches(n, include)) and not _matches(n, exclude)]


def convert(model: nn.Module, mode: str = "fedpara", gamma: float = 0.1,
            ranks: Mapping[str, int] | None = None, include: Iterable[str] | None = None,
            exclude: Iterable[str] | None = None, conv_form: str = "prop3",
            tanh: bool = False) -> ConversionReport:
    """Replace ``nn.Linear`` / ``nn.Conv2d`` modules of ``model`` by FedPara layers, in place.

    New layers are freshly initialised (He-like on the composed weight) on the old layer's
    device and dtype; nothing is replaced if any check fails.

    Parameters
    ----------
    model : nn.Module
        Modified in place with ``setattr(parent, name, new)``.
    mode : {"fedpara", "pfedpara", "lowrank"}, default "fedpara"
        ``HadamardLinear``/``HadamardConv2d``, their personal variants, or the low-rank
        baseline at rank 2R (the same budget as FedPara at rank R).
    gamma : float, default 0.1
        Rank knob in [0, 1] shared by all layers (``ranks.rank_for_gamma``). The paper uses
        0.1 for CIFAR-10 and 0.5 for pFedPara.
    ranks : Mapping[str, int], optional
        Explicit rank per module name; overrides ``gamma`` for those layers (for "lowrank"
        it is the low-rank layer's own rank).
    include : Iterable[str], optional
        Module names or prefixes to convert (``"features"``); default every layer.
    exclude : Iterable[str], optional
        Module names or prefixes kept dense. Default ``None`` keeps the classifier head dense
        (``default_exclude(model)``, as in the paper); pass ``()`` to convert every layer.
    conv_form : {"prop3", "prop1"}, default "prop3"
        Tucker-2 (Prop. 3) or reshaped-matrix (Prop. 1) factors for convolutions.
    tanh : bool, default False
        Compose ``tanh(W1) * tanh(W2)``.

    Returns
    -------
    ConversionReport
        Per-layer name, kind, shape, rank, dense and new weight parameters, and totals.

    Raises
    ------
    ValueError
        Unknown mode or conv_form, gamma outside [0, 1], an include/exclude/ranks name
        matching no layer, a rank below the minimum, tanh with "lowrank", or a grouped
        convolution selected for conversion.
    """
    check_mode(mode)
    check_gamma(gamma)
    if conv_form not in FORMS:
        raise ValueError(f"conv_form must be one of {FORMS}, got {conv_form!r}")
    exclude = default_exclude(model) if exclude is None else tuple(exclude)
    include = None if include is None else tuple(include)
    ranks = dict(ranks or {})
    selected = _select(model, mode, include, exclude)
    unknown = sorted(set(ranks) - {n for n, _ in selected})
    if unknown:
        raise ValueError(f"ranks given for {unknown}, which are not converted; converted layers: "
                         f"{', '.join(n for n, _ in selected)}")
    params_before = sum(p.numel() for p in model.parameters())
    plan, rows = [], []
    for name, module in selected:
        if isinstance(module, nn.Conv2d) and module.groups != 1:
            raise ValueError(f"layer {name!r} is a grouped convolution (groups={module.groups}), "
                             "which FedPara layers do not support: add it to exclude")
        shape = tuple(module.weight.shape)
        form = conv_form if isinstance(module, nn.Conv2d) else "prop1"
        rank = (check_rank(ranks[name], mode, repr(name)) if name in ranks
                else rank_for_gamma(shape, gamma, form, mode))
        extra = {"form": form} if isinstance(module, nn.Conv2d) else {}
        new = (LAYERS[mode][type(module)].from_dense(module, rank, tanh=tanh, **extra)
               .train(module.training))
        kind = f"conv-{form}" if isinstance(module, nn.Conv2d) else "linear"
        plan.append((name, new))
        rows.append(LayerReport(name, kind, shape, rank, math.prod(shape), new.factor_params()))
    for name, new in plan:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, new)
    return ConversionReport(
        mode, gamma, tuple(rows), params_before,
        params_after=sum(p.numel() for p in model.parameters()),
        local_params=sum(p.numel() for k, p in model.named_parameters() if is_local_key(k)))
