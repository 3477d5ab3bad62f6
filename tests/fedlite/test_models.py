"""The model registry: every model builds and forwards; ResNet depths and sections."""

from __future__ import annotations

import pytest
import torch

from fedlite.models import MODELS, SEQUENCE_MODELS, ResNet, build_model

torch.set_num_threads(1)

SHAPES = {"mnist": (1, 28, 28), "digits": (1, 8, 8), "cifar": (3, 32, 32)}
# vgg16 has 15M parameters: built once, on the input it was designed for. The sequence
# models (lstm) have their own tests (test_lstm.py).
CASES = [(name, shape) for name in MODELS if name not in ("vgg16", *SEQUENCE_MODELS)
         for shape in SHAPES] + [("vgg16", "cifar")]


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_every_model_builds_and_forwards(name, shape):
    # Prepare
    torch.manual_seed(0)
    model = build_model(name, SHAPES[shape], 7)
    # Execute
    with torch.no_grad():
        logits = model(torch.randn(2, *SHAPES[shape]))
    # Assert
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


def test_models_train_one_step():
    # Prepare
    torch.manual_seed(0)
    model = build_model("cnn", SHAPES["digits"], 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # Execute
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 1, 8, 8)),
                                             torch.tensor([0, 1, 2, 3]))
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    # Assert: every parameter got a gradient and moved
    assert all(p.grad is not None for p in model.parameters())
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_build_is_deterministic_under_a_seed():
    torch.manual_seed(3)
    a = build_model("resnet8", (3, 32, 32), 10).state_dict()
    torch.manual_seed(3)
    b = build_model("resnet8", (3, 32, 32), 10).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("depth", [8, 14, 20, 26, 32])
def test_resnet_valid_depths(depth):
    model = ResNet(depth, in_channels=3, num_classes=10)
    blocks = (depth - 2) // 6
    assert [len(section) for section in model.sections] == [blocks] * 3
    convs = sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) for m in model.modules())
    assert convs + 1 == depth  # 3x3 convolutions plus the classifier


def test_resnet_blocks_start_as_their_shortcut():
    # Prepare: a block whose shortcut is the identity (same width, stride 1)
    torch.manual_seed(0)
    zeroed = ResNet(14, in_channels=1, num_classes=10)
    torch.manual_seed(0)
    standard = ResNet(14, in_channels=1, num_classes=10, zero_init_residual=False)
    x = torch.randn(2, 16, 8, 8)
    # Execute
    with torch.no_grad():
        zeroed_out, standard_out = zeroed.sections[0][1](x), standard.sections[0][1](x)
    # Assert: the zero-scaled residual branch adds nothing, so the block passes relu(x) on
    assert torch.equal(zeroed_out, torch.relu(x))
    assert not torch.allclose(standard_out, torch.relu(x))


@pytest.mark.parametrize("depth", [10, 0, 2, 7, 21])
def test_resnet_invalid_depth_is_a_clear_error(depth):
    with pytest.raises(ValueError, match=rf"6n\+2 .*8, 14, 20, 26.*got {depth}"):
        ResNet(depth)


def test_forward_sections_shapes_equal_across_depths():
    x = torch.randn(2, 3, 32, 32)
    shapes = {}
    for depth in (8, 14, 20, 26):
        torch.manual_seed(0)
        model = build_model(f"resnet{depth}", (3, 32, 32), 10)
        with torch.no_grad():
            logits, pairs = model.forward_sections(x)
            np_logits = model(x)
        assert torch.allclose(logits, np_logits)
        assert len(pairs) == 3
        shapes[depth] = [(tuple(first.shape), tuple(last.shape)) for first, last in pairs]
    assert shapes[8] == [((2, 16, 32, 32), (2, 16, 32, 32)), ((2, 16, 32, 32), (2, 32, 16, 16)),
                         ((2, 32, 16, 16), (2, 64, 8, 8))]
    assert shapes[8] == shapes[14] == shapes[20] == shapes[26]


def test_unknown_model_lists_the_names():
    with pytest.raises(ValueError, match="unknown model 'resnet10'") as info:
        build_model("resnet10", (1, 28, 28), 10)
    for name in MODELS:
        assert name in str(info.value)
