"""FedPara layers: the dense weight is composed from low-rank factors in every forward pass.

==========================  ==========================================  =====================
class                       weight                                      factor names
==========================  ==========================================  =====================
HadamardLinear / Conv2d     W = W1 * W2 (or tanh(W1) * tanh(W2))        fedpara_{x,y,t}{1,2}
PersonalHadamard...         W = W1 * W2 + W1, W2 personal (pFedPara)    fedpara_{x,y,t}1,
                                                                        fedpara_local_{x,y,t}2
LowRankLinear / Conv2d      W = X Y^T (or Tucker-2), the baseline       fedpara_{x,y,t}
==========================  ==========================================  =====================

Each Wi is ``Xi Yi^T`` (Prop. 1; a conv kernel is reshaped to O x (I*K1*K2)) or the
Tucker-2 product ``Ti x1 Xi x2 Yi`` (Prop. 3, ``form="prop3"``). Gradients come from
autograd on the composition; there is no custom backward.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.utils import _pair

from fedlite.hadamard.factors import (COMBINE, branch_variances, compose_branch, factor_shapes,
                                      factor_std)
from fedlite.hadamard.keys import FACTOR_PREFIX, LOCAL_PREFIX
from fedlite.hadamard.ranks import check_rank

# (name prefix, name suffix) of each branch's factors, per mode
BRANCH_NAMES = {
    "fedpara": ((FACTOR_PREFIX, "1"), (FACTOR_PREFIX, "2")),
    "pfedpara": ((FACTOR_PREFIX, "1"), (LOCAL_PREFIX, "2")),
    "lowrank": ((FACTOR_PREFIX, ""),),
}


class FactorizedLayer(nn.Module):
    """Base of the FedPara layers: factor branches, bias, He-like init and ``compose()``.

    Subclasses set ``mode`` and implement ``forward`` with the composed weight.
    """

    mode: ClassVar[str]

    def _build(self, weight_shape: tuple[int, ...], rank: int, form: str, tanh: bool,
               bias: bool, device=None, dtype=None) -> None:
        layer = f"{type(self).__name__}{weight_shape}"
        if not hasattr(self, "mode"):
            raise TypeError(f"{type(self).__name__} is a base class: use a Hadamard*, "
                            "PersonalHadamard* or LowRank* layer")
        self.rank = check_rank(rank, self.mode, layer)
        if tanh and self.mode == "lowrank":
            raise ValueError(f"{layer}: tanh applies to Hadamard branches, "
                             "not to the low-rank layer")
        self.weight_shape, self.form, self.tanh = weight_shape, form, tanh
        factory = {"device": device, "dtype": dtype}
        self.branch_names: list[tuple[str | None, str, str]] = []  # (t, x, y) per branch
        for prefix, suffix in BRANCH_NAMES[self.mode]:
            for letter, shape in factor_shapes(weight_shape, self.rank, form).items():
                self.register_parameter(f"{prefix}{letter}{suffix}",
                                        nn.Parameter(torch.empty(shape, **factory)))
            t = f"{prefix}t{suffix}" if form == "prop3" else None
            self.branch_names.append((t, f"{prefix}x{suffix}", f"{prefix}y{suffix}"))
        self.register_parameter(
            "bias", nn.Parameter(torch.empty(weight_shape[0], **factory)) if bias else None)
        self.reset_parameters()

    @property
    def fan_in(self) -> int:
        """Fan-in of the dense layer this one replaces (I * K1 * K2)."""
        return math.prod(self.weight_shape[1:])

    def reset_parameters(self) -> None:
        """He-like init of the composed weight, Var(W) = 2 / fan_in; bias as in nn.Linear.

        Per-factor He init would make W about 100x too small (the init of the authors' demo code,
        github.com/South-hw/FedPara_ICLR22, which Flower's FedPara baseline found not to
        converge), so the
        target variance is split over the branches and then over each branch's factors.
        """
        with torch.no_grad():
            variances = branch_variances(self.mode, 2.0 / self.fan_in)
            for index, (names, var) in enumerate(zip(self.branch_names, variances, strict=True)):
                factors = [getattr(self, n) for n in names if n]
                for factor in factors:
                    nn.init.normal_(factor, 0.0, factor_std(var, self.rank, self.form))
                if not factors[0].is_meta and math.prod(self.weight_shape) > 1:
                    self._calibrate(index, factors, math.sqrt(var))
            if self.bias is not None:
                bound = 1.0 / math.sqrt(self.fan_in)
                nn.init.uniform_(self.bias, -bound, bound)

    def _calibrate(self, index: int, factors: list[torch.Tensor], target: float) -> None:
        # The realised std of a small-R Tucker product strays far from its expectation
        # (W came out 1.6x He on a 3->64 conv at R=3) and tanh squashes the tails, so rescale
        # the factors until the branch has the target std; one step is exact without tanh.
        for _ in range(5 if self.tanh else 1):
            gain = target / self.branch(index).std().item()
            for factor in factors:
                factor.mul_(gain ** (1.0 / len(factors)))

    def branch(self, index: int) -> torch.Tensor:
        """Dense weight of one branch (after tanh when enabled)."""
        t, x, y = (getattr(self, n) if n else None for n in self.branch_names[index])
        w = compose_branch(x, y, t, self.weight_shape)
        return torch.tanh(w) if self.tanh else w

    def compose(self) -> torch.Tensor:
        """Return the dense weight, shaped like ``nn.Linear.weight`` / ``nn.Conv2d.weight``."""
        return COMBINE[self.mode]([self.branch(i) for i in range(len(self.branch_names))])

    def factor_params(self) -> int:
        """Number of factor parameters (bias excluded)."""
        return sum(getattr(self, n).numel() for names in self.branch_names for n in names if n)


class FactorizedLinear(FactorizedLayer):
    """A factorised drop-in for ``nn.Linear``: ``F.linear(x, self.compose(), self.bias)``.

    Parameters
    ----------
    in_features, out_features : int
        As in ``nn.Linear``; the composed weight is (out_features, in_features).
    rank : int
        Rank R of each factor product.
    bias : bool, default True
    tanh : bool, default False
        Compose ``tanh(W1) * tanh(W2)`` (paper Supp. B); not for the low-rank layer.
    device, dtype : optional
        Factory arguments, as in ``nn.Linear``.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True, *,
                 tanh: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._build((out_features, in_features), rank, "prop1", tanh, bias, device, dtype)

    @classmethod
    def from_dense(cls, module: nn.Linear, rank: int, **kwargs) -> FactorizedLinear:
        """A fresh layer with ``module``'s features, bias, device and dtype (weights not copied)."""
        return cls(module.in_features, module.out_features, rank, module.bias is not None,
                   device=module.weight.device, dtype=module.weight.dtype, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.compose(), self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"rank={self.rank}, bias={self.bias is not None}, tanh={self.tanh}")


class FactorizedConv2d(FactorizedLayer):
    """A factorised drop-in for ``nn.Conv2d``: ``F.conv2d`` with the composed kernel.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, bias, padding_mode
        As in ``nn.Conv2d`` (padding may be an int, a pair, ``"same"`` or ``"valid"``).
    rank : int
        Rank R of each factor product (Tucker rank for prop3).
    groups : int, default 1
        Only 1 is supported.
    form : {"prop3", "prop1"}, default "prop3"
        ``"prop3"``: Tucker-2 factors T (R,R,K1,K2), X (O,R), Y (I,R), 2R(O+I+R*K1*K2)
        parameters (the paper's conv experiments). ``"prop1"``: the kernel reshaped to
        O x (I*K1*K2), 2R(O+I*K1*K2) parameters.
    tanh : bool, default False
        Compose ``tanh(W1) * tanh(W2)``; not for the low-rank layer.
    device, dtype : optional
        Factory arguments, as in ``nn.Conv2d``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, rank: int, stride=1,
                 padding=0, dilation=1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", *, form: str = "prop3", tanh: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__()
        name = type(self).__name__
        if groups != 1:
            raise ValueError(f"{name} does not support groups > 1 (got groups={groups}); "
                             "exclude grouped or depthwise convolutions from conversion")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"{name}: unknown padding_mode {padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.dilation = _pair(dilation)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        if self.padding not in ("same", "valid") and isinstance(self.padding, str):
            raise ValueError(f"{name}: padding must be an int, a pair, 'same' or 'valid'")
        if self.padding == "same" and self.stride != (1, 1):
            raise ValueError(f"{name}: padding='same' needs stride 1, as in nn.Conv2d")
        self.groups, self.padding_mode = groups, padding_mode
        self._build((out_channels, in_channels, *self.kernel_size), rank, form, tanh, bias,
                    device, dtype)

    @classmethod
    def from_dense(cls, module: nn.Conv2d, rank: int, **kwargs) -> FactorizedConv2d:
        """A fresh layer with ``module``'s configuration, device and dtype (weights not copied)."""
        return cls(module.in_channels, module.out_channels, module.kernel_size, rank,
                   module.stride, module.padding, module.dilation, module.groups,
                   module.bias is not None, module.padding_mode,
                   device=module.weight.device, dtype=module.weight.dtype, **kwargs)

    def _explicit_padding(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) for ``F.pad``, as nn.Conv2d pads for non-zero modes."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            pads = []
            for k, d in zip(reversed(self.kernel_size), reversed(self.dilation), strict=False):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
            return tuple(pads)
        ph, pw = self.padding
        return (pw, pw, ph, ph)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.compose()
        if self.padding_mode == "zeros":
            return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation)
        x = F.pad(x, self._explicit_padding(), mode=self.padding_mode)
        return F.conv2d(x, weight, self.bias, self.stride, 0, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"rank={self.rank}, form={self.form!r}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, "
                f"bias={self.bias is not None}, padding_mode={self.padding_mode!r}, "
                f"tanh={self.tanh}")


class HadamardLinear(FactorizedLinear):
    """FedPara ``nn.Linear``: W = (X1 Y1^T) * (X2 Y2^T), full rank once R**2 >= min(m, n).

    Parameters: see ``FactorizedLinear``.
    """

    mode = "fedpara"


class PersonalHadamardLinear(FactorizedLinear):
    """pFedPara ``nn.Linear``: W = W1 * W2 + W1; W2's factors (``fedpara_local_*``) stay local.

    Parameters: see ``FactorizedLinear``.
    """

    mode = "pfedpara"


class LowRankLinear(FactorizedLinear):
    """Low-rank ``nn.Linear`` baseline: W = X Y^T; rank 2R costs what FedPara costs at rank R.

    Parameters: see ``FactorizedLinear`` (no ``tanh``).
    """

    mode = "lowrank"


class HadamardConv2d(FactorizedConv2d):
    """FedPara ``nn.Conv2d``: W = W1 * W2, each Wi a Tucker-2 (prop3) or X Y^T (prop1) kernel.

    Parameters: see ``FactorizedConv2d``.
    """

    mode = "fedpara"


class PersonalHadamardConv2d(FactorizedConv2d):
    """pFedPara ``nn.Conv2d``: W = W1 * W2 + W1; W2's factors (``fedpara_local_*``) stay local.

    Parameters: see ``FactorizedConv2d``.
    """

    mode = "pfedpara"


class LowRankConv2d(FactorizedConv2d):
    """Low-rank ``nn.Conv2d`` baseline: one Tucker-2 (prop3) or X Y^T (prop1) kernel.

    For prop1 rank 2R costs what FedPara costs at rank R; the Tucker form needs a little
    less than 2R for the same budget (``ranks.lowrank_rank``).
    Parameters: see ``FactorizedConv2d`` (no ``tanh``).
    """

    mode = "lowrank"
