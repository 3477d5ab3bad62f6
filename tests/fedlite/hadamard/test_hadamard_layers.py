"""FedPara layers: KR 10-2023-0065883 Table 1, nn.Linear/nn.Conv2d equivalence, gradients, init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from fedlite.hadamard import (FactorizedLayer, HadamardConv2d, HadamardLinear, LowRankConv2d,
                              LowRankLinear, PersonalHadamardConv2d, PersonalHadamardLinear)

torch.set_num_threads(1)
F64 = torch.float64

LINEAR_KINDS = {
    "fedpara": (HadamardLinear, {}),
    "tanh": (HadamardLinear, {"tanh": True}),
    "personal": (PersonalHadamardLinear, {}),
    "lowrank": (LowRankLinear, {}),
}
CONV_KINDS = {
    "prop1": (HadamardConv2d, {"form": "prop1"}),
    "prop3": (HadamardConv2d, {"form": "prop3"}),
    "prop3-tanh": (HadamardConv2d, {"form": "prop3", "tanh": True}),
    "personal-prop3": (PersonalHadamardConv2d, {"form": "prop3"}),
    "personal-prop1": (PersonalHadamardConv2d, {"form": "prop1"}),
    "lowrank-prop3": (LowRankConv2d, {"form": "prop3"}),
    "lowrank-prop1": (LowRankConv2d, {"form": "prop1"}),
}
# nn.Conv2d keyword arguments beyond (in, out, kernel_size)
CONV_CONFIGS = [
    {},
    {"stride": 2, "padding": 1},
    {"padding": 2, "dilation": 2, "bias": False},
    {"stride": (1, 2), "padding": (1, 0)},
    {"padding": "same", "padding_mode": "reflect"},
    {"padding": 1, "padding_mode": "circular", "stride": 2},
    {"padding": "valid", "padding_mode": "replicate"},
]


def numerical_rank(weight: torch.Tensor) -> int:
    return int(torch.linalg.matrix_rank(weight.detach().to(F64).flatten(1)))


# ---- KR 10-2023-0065883, Table 1 (m = n = O = I = 256, K = 3, R = 16); factor parameters, no bias

def test_table1_fc():
    torch.manual_seed(0)
    fedpara = HadamardLinear(256, 256, 16, dtype=F64)
    lowrank = LowRankLinear(256, 256, 32, dtype=F64)
    assert fedpara.factor_params() == 16_384 == lowrank.factor_params()
    assert numerical_rank(fedpara.compose()) == 256
    assert numerical_rank(lowrank.compose()) == 32


@pytest.mark.parametrize("form, params", [("prop1", 81_920), ("prop3", 20_992)])
def test_table1_conv(form, params):
    torch.manual_seed(0)
    layer = HadamardConv2d(256, 256, 3, 16, form=form, dtype=F64)
    assert layer.factor_params() == params
    weight = layer.compose()
    assert weight.shape == (256, 256, 3, 3)
    assert numerical_rank(weight) == 256  # first unfolding, O x (I*K1*K2)
    assert numerical_rank(weight.transpose(0, 1)) == 256  # second unfolding


def test_factor_parameter_names():
    names = {kind: [n for n, _ in cls(4, 3, 3, 2, **kw).named_parameters()]
             for kind, (cls, kw) in CONV_KINDS.items()}
    assert names["prop3"] == ["fedpara_t1", "fedpara_x1", "fedpara_y1",
                              "fedpara_t2", "fedpara_x2", "fedpara_y2", "bias"]
    assert names["prop1"] == ["fedpara_x1", "fedpara_y1", "fedpara_x2", "fedpara_y2", "bias"]
    assert names["personal-prop3"] == ["fedpara_t1", "fedpara_x1", "fedpara_y1", "fedpara_local_t2",
                                       "fedpara_local_x2", "fedpara_local_y2", "bias"]
    assert names["lowrank-prop3"] == ["fedpara_t", "fedpara_x", "fedpara_y", "bias"]
    assert [n for n, _ in PersonalHadamardLinear(4, 3, 2).named_parameters()] == [
        "fedpara_x1", "fedpara_y1", "fedpara_local_x2", "fedpara_local_y2", "bias"]


# ---- same behaviour as the dense modules with the composed weight

@pytest.mark.parametrize("kind", LINEAR_KINDS)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_dense(kind, bias):
    # Prepare
    torch.manual_seed(0)
    cls, kw = LINEAR_KINDS[kind]
    layer = cls(7, 5, 3, bias=bias, dtype=F64, **kw)
    dense = nn.Linear(7, 5, bias=bias, dtype=F64)
    with torch.no_grad():
        dense.weight.copy_(layer.compose())
        if bias:
            dense.bias.copy_(layer.bias)
    x = torch.randn(2, 4, 7, dtype=F64)
    # Execute, Assert
    torch.testing.assert_close(layer(x), dense(x))
    assert (layer.in_features, layer.out_features) == (7, 5)


@pytest.mark.parametrize("kind", CONV_KINDS)
@pytest.mark.parametrize("config", CONV_CONFIGS, ids=str)
def test_conv_matches_dense(kind, config):
    # Prepare
    torch.manual_seed(0)
    cls, kw = CONV_KINDS[kind]
    layer = cls(3, 4, (3, 2), 2, **config, dtype=F64, **kw)
    dense = nn.Conv2d(3, 4, (3, 2), **config, dtype=F64)
    with torch.no_grad():
        dense.weight.copy_(layer.compose())
        if dense.bias is not None:
            dense.bias.copy_(layer.bias)
    x = torch.randn(2, 3, 9, 8, dtype=F64)
    # Execute
    out = layer(x)
    # Assert
    torch.testing.assert_close(out, dense(x))
    if config.get("padding_mode", "zeros") == "zeros":
        torch.testing.assert_close(out, F.conv2d(x, layer.compose(), layer.bias, dense.stride,
                                                 dense.padding, dense.dilation))


def test_conv_rejects_groups():
    with pytest.raises(ValueError, match="HadamardConv2d.*groups"):
        HadamardConv2d(4, 4, 3, 2, groups=2)
    with pytest.raises(ValueError, match="LowRankConv2d.*groups"):
        LowRankConv2d(4, 4, 3, 2, groups=4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="HadamardLinear.*rank 1"):
        HadamardLinear(8, 8, 1)
    with pytest.raises(ValueError, match="LowRankLinear.*rank 0"):
        LowRankLinear(8, 8, 0)
    with pytest.raises(ValueError, match="tanh"):
        LowRankLinear(8, 8, 2, tanh=True)
    with pytest.raises(ValueError, match="form"):
        HadamardConv2d(4, 4, 3, 2, form="prop2")
    with pytest.raises(ValueError, match="padding_mode"):
        HadamardConv2d(4, 4, 3, 2, padding_mode="mirror")
    with pytest.raises(ValueError, match="same"):
        HadamardConv2d(4, 4, 3, 2, padding="same", stride=2)


# ---- gradients: plain autograd through the composition, checked numerically in float64

def _gradcheck(layer: FactorizedLayer, x: torch.Tensor) -> None:
    names = [n for n, _ in layer.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in layer.parameters())

    def run(x, *params):
        return torch.func.functional_call(layer, dict(zip(names, params, strict=True)), (x,))

    assert torch.autograd.gradcheck(run, (x.requires_grad_(), *params))


@pytest.mark.parametrize("kind", LINEAR_KINDS)
def test_linear_gradcheck(kind):
    torch.manual_seed(0)
    cls, kw = LINEAR_KINDS[kind]
    _gradcheck(cls(4, 3, 2, dtype=F64, **kw), torch.randn(2, 4, dtype=F64))


@pytest.mark.parametrize("kind", CONV_KINDS)
@pytest.mark.parametrize("config", CONV_CONFIGS[:4], ids=str)
def test_conv_gradcheck(kind, config):
    torch.manual_seed(0)
    cls, kw = CONV_KINDS[kind]
    layer = cls(2, 3, (3, 2), 2, **config, dtype=F64, **kw)
    _gradcheck(layer, torch.randn(1, 2, 6, 5, dtype=F64))


# ---- init: He-like on the composed weight, no zero factor, nn-style bias

def _he_std(layer: FactorizedLayer) -> float:
    return math.sqrt(2.0 / layer.fan_in)


@pytest.mark.parametrize("kind", LINEAR_KINDS)
@pytest.mark.parametrize("rank", [4, 32])
def test_linear_init_std(kind, rank):
    torch.manual_seed(0)
    cls, kw = LINEAR_KINDS[kind]
    layer = cls(512, 256, rank, **kw)
    ratio = layer.compose().std().item() / _he_std(layer)
    assert 0.5 < ratio < 2.0
    assert all(p.std() > 0 for n, p in layer.named_parameters() if n != "bias")
    assert layer.bias.abs().max() <= 1 / math.sqrt(512)


@pytest.mark.parametrize("kind", CONV_KINDS)
@pytest.mark.parametrize("shape, rank", [((3, 64), 3), ((128, 128), 19)])
def test_conv_init_std(kind, shape, rank):
    torch.manual_seed(0)
    cls, kw = CONV_KINDS[kind]
    layer = cls(*shape, 3, rank, **kw)
    ratio = layer.compose().std().item() / _he_std(layer)
    assert 0.5 < ratio < 2.0
    assert all(p.std() > 0 for n, p in layer.named_parameters() if n != "bias")
