"""The rank rule: bounds, gamma interpolation, low-rank budget, VGG16 counts of the paper."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fedlite.hadamard import (MIN_RANK, factorized_params, lowrank_rank, rank_bounds,
                              rank_for_gamma)
from fedlite.hadamard.convert import convert
from fedlite.models.vgg import VGG

torch.set_num_threads(1)

VGG16_PARAMS = 15_253_578
# paper Table 5 (10 classes), millions of parameters per gamma
TABLE5 = {0.1: 1.55, 0.2: 2.33, 0.3: 3.31, 0.4: 4.45, 0.5: 5.79, 0.6: 7.33, 0.7: 9.01,
          0.8: 10.90, 0.9: 12.92}


def test_param_formulas():
    assert factorized_params((256, 256), 16) == 2 * 16 * (256 + 256)
    assert factorized_params((256, 256, 3, 3), 16, "prop1") == 2 * 16 * (256 + 256 * 9)
    assert factorized_params((256, 256, 3, 3), 16, "prop3") == 2 * 16 * (256 + 256 + 16 * 9)
    assert factorized_params((256, 256), 32, mode="lowrank") == 32 * (256 + 256)
    assert factorized_params((256, 256), 16, mode="pfedpara") == factorized_params((256, 256), 16)


def test_rank_bounds_fc():
    # r_min = ceil(sqrt(256)); r_max = floor(mn / (2(m+n)))
    assert rank_bounds((256, 256)) == (16, 64)
    assert rank_bounds((256, 784)) == (16, math.floor(256 * 784 / (2 * 1040)))
    assert rank_bounds((10, 256)) == (4, 4)


@pytest.mark.parametrize("out, in_, k", [(64, 3, 3), (64, 64, 3), (512, 256, 3), (32, 16, 5),
                                         (128, 64, 1)])
def test_rank_bounds_prop3_match_baseline_quadratic(out, in_, k):
    # Flower baseline: r_max = floor(root of k^2 r^2 + (O+I) r - O I k^2 / 2 = 0)
    a, b, c = k * k, out + in_, -out * in_ * k * k / 2
    r_max = math.floor((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a))
    r_min = min(math.ceil(math.sqrt(out)), math.ceil(math.sqrt(in_)))
    assert rank_bounds((out, in_, k, k), "prop3") == (r_min, r_max)
    dense = out * in_ * k * k
    assert factorized_params((out, in_, k, k), r_max, "prop3") <= dense
    assert factorized_params((out, in_, k, k), r_max + 1, "prop3") > dense


def test_rank_for_gamma_interpolates():
    shape = (256, 256)
    assert rank_for_gamma(shape, 0.0) == 16
    assert rank_for_gamma(shape, 1.0) == 64
    assert rank_for_gamma(shape, 0.5) == 40
    assert rank_for_gamma(shape, 0.1) == math.ceil(0.9 * 16 + 0.1 * 64)
    assert rank_for_gamma((2, 3), 0.0) == MIN_RANK["fedpara"]  # floor for tiny layers


def test_lowrank_same_budget():
    for shape, form in [((256, 256), "prop1"), ((300, 70), "prop1"), ((64, 32, 3, 3), "prop1")]:
        assert lowrank_rank(shape, 16, form) == 32
        assert rank_for_gamma(shape, 0.3, form, "lowrank") == 2 * rank_for_gamma(shape, 0.3, form)
    # Tucker: the smallest rank reaching FedPara's budget, a little below 2R
    shape, rank = (256, 256, 3, 3), 16
    low = lowrank_rank(shape, rank, "prop3")
    budget = factorized_params(shape, rank, "prop3")
    assert factorized_params(shape, low - 1, "prop3", "lowrank") < budget
    assert factorized_params(shape, low, "prop3", "lowrank") >= budget
    assert low < 2 * rank


@pytest.mark.parametrize("gamma", [1.5, -0.1, float("nan")])
def test_gamma_out_of_range(gamma):
    with pytest.raises(ValueError, match="gamma"):
        rank_for_gamma((256, 256), gamma)


def test_unknown_mode_and_form():
    with pytest.raises(ValueError, match="mode"):
        rank_for_gamma((8, 8), 0.1, mode="fedpro")
    with pytest.raises(ValueError, match="prop3"):
        rank_bounds((8, 8), "prop3")


# ---- VGG16 (3x32x32, 10 classes), classifier dense: paper Table 5 and the baseline's ranks

def test_vgg16_gamma_01():
    # Prepare
    model = VGG("vgg16", in_channels=3, num_classes=10, image_size=32)
    assert sum(p.numel() for p in model.parameters()) == VGG16_PARAMS
    # Execute
    report = convert(model, gamma=0.1)
    # Assert
    assert [r.rank for r in report.layers] == [3, 11, 13, 19, 22, 30, 30, 36] + [52] * 5
    assert report.params_after == sum(p.numel() for p in model.parameters())
    assert abs(report.params_after - 1.55e6) / 1.55e6 < 0.02
    assert all(type(m) is nn.Linear for m in model.classifier if isinstance(m, nn.Linear))


@pytest.mark.parametrize("gamma", [0.3, 0.5, 0.9])
def test_vgg16_table5(gamma):
    report = convert(VGG("vgg16"), gamma=gamma)
    assert abs(report.params_after / 1e6 - TABLE5[gamma]) / TABLE5[gamma] < 0.02


def test_vgg16_lowrank_budget_matches_paper_table2():
    # paper Table 2: the low-rank VGG16 uses 10.25 % of the parameters, FedPara 10.15 %
    report = convert(VGG("vgg16"), mode="lowrank", gamma=0.1)
    assert report.ratio == pytest.approx(0.1025, abs=5e-4)
