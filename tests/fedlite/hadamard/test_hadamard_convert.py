"""convert(): selection, errors, device/dtype, report, and a converted CNN that trains."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from fedlite.hadamard import (FactorizedLayer, HadamardConv2d, HadamardLinear, LowRankConv2d,
                              PersonalHadamardLinear, default_exclude)
from fedlite.hadamard.convert import convert
from fedlite.models import build_model

torch.set_num_threads(1)


def test_default_exclude_keeps_the_head_dense():
    assert default_exclude(build_model("vgg-small", (1, 28, 28), 10)) == ("classifier.2",
                                                                          "classifier.4")
    assert default_exclude(build_model("resnet8", (3, 32, 32), 10)) == ("fc",)
    assert default_exclude(build_model("mlp", (1, 28, 28), 10)) == ()


def test_convert_mlp_pfedpara():
    # Prepare
    model = build_model("mlp", (1, 28, 28), 10)
    # Execute
    report = convert(model, mode="pfedpara", gamma=0.5)
    # Assert: both layers converted (no conv, so no dense head), ranks by the gamma rule
    assert isinstance(model.fc1, PersonalHadamardLinear)
    assert isinstance(model.fc2, PersonalHadamardLinear)
    assert [(r.name, r.kind, r.shape, r.rank) for r in report.layers] == [
        ("fc1", "linear", (256, 784), math.ceil(0.5 * 16 + 0.5 * 96)),
        ("fc2", "linear", (10, 256), math.ceil(0.5 * 4 + 0.5 * 4))]
    assert report.local_params == sum(r.new_params for r in report.layers) // 2
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_convert_resnet_include_exclude_and_ranks():
    # Prepare
    model = build_model("resnet8", (3, 32, 32), 10)
    # Execute
    report = convert(model, include=("sections",), exclude=("sections.1.0.shortcut",),
                     ranks={"sections.0.0.conv1": 5}, conv_form="prop1")
    # Assert
    names = [r.name for r in report.layers]
    assert all(n.startswith("sections.") for n in names)
    assert "sections.1.0.shortcut.0" not in names and "sections.2.0.shortcut.0" in names
    assert type(model.stem[0]) is nn.Conv2d and type(model.fc) is nn.Linear
    assert isinstance(model.sections[0][0].conv1, HadamardConv2d)
    assert model.sections[0][0].conv1.rank == 5 and model.sections[0][0].conv1.form == "prop1"
    conv = model.sections[1][0].conv1  # stride 2, padding 1, no bias are kept
    assert conv.stride == (2, 2) and conv.padding == (1, 1) and conv.bias is None
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_report_table():
    model = build_model("cnn", (1, 28, 28), 10)
    text = str(convert(model, gamma=0.2))
    assert "features.0" in text and "features.3" in text and "conv-prop3" in text
    assert "classifier.1" not in text  # dense head
    assert "model:" in text and "params" in text


@pytest.mark.parametrize("kwargs, match", [
    ({"include": ("featurez",)}, "include.*featurez.*available: features.0, features.3"),
    ({"exclude": ("classifier.9",)}, "exclude.*classifier.9"),
    ({"exclude": ("features.1",)}, "features.1"),  # a ReLU: no Linear/Conv2d under it
    ({"ranks": {"classifier.1": 4}}, "ranks.*classifier.1"),  # in the dense head
    ({"ranks": {"features.3": 1}}, "'features.3'.*rank 1"),
    ({"gamma": 1.5}, "gamma"),
    ({"mode": "fedprox"}, "mode"),
    ({"mode": "lowrank", "tanh": True}, "tanh"),
    ({"conv_form": "prop2"}, "conv_form"),
])
def test_bad_arguments_leave_the_model_unchanged(kwargs, match):
    model = build_model("cnn", (1, 28, 28), 10)
    before = [type(m) for m in model.modules()]
    with pytest.raises(ValueError, match=match):
        convert(model, **kwargs)
    assert [type(m) for m in model.modules()] == before


def test_grouped_conv_is_named():
    model = nn.Sequential(nn.Conv2d(4, 8, 3), nn.Conv2d(8, 8, 3, groups=2))
    with pytest.raises(ValueError, match="'1'.*groups=2"):
        convert(model, exclude=())
    assert type(model[0]) is nn.Conv2d
    report = convert(model, exclude=("1",), mode="lowrank")
    assert isinstance(model[0], LowRankConv2d) and [r.name for r in report.layers] == ["0"]


def test_keeps_dtype_device_and_mode():
    model = build_model("cnn", (1, 8, 8), 10).double().eval()
    convert(model, exclude=())
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert not any(m.training for m in model.modules())
    with torch.device("meta"):
        meta = build_model("mlp", (1, 28, 28), 10)
    convert(meta)
    assert isinstance(meta.fc1, HadamardLinear) and meta.fc1.fedpara_x1.is_meta


# ---- a converted CNN trains: sklearn digits (8x8), a few full-batch Adam steps

def _digits(n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    data = load_digits()
    x = torch.tensor(data.images[:n] / 16.0, dtype=torch.float32).unsqueeze(1)
    return x, torch.tensor(data.target[:n])


@pytest.mark.parametrize("mode, tanh", [("fedpara", False), ("fedpara", True),
                                        ("pfedpara", False), ("lowrank", False)])
def test_converted_cnn_trains_on_digits(mode, tanh):
    # Prepare
    torch.manual_seed(0)
    x, y = _digits()
    model = build_model("cnn", (1, 8, 8), 10)
    convert(model, mode=mode, gamma=0.1, tanh=tanh, exclude=())
    assert sum(isinstance(m, FactorizedLayer) for m in model.modules()) == 4
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    # Execute
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # Assert
    assert np.isfinite(losses).all()
    assert losses[0] < 2 * math.log(10)  # He-like init: no exploding logits at step 1
    assert losses[-1] < 0.6 * losses[0]
