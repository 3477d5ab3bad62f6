"""The loop's SGD: torch.optim.SGD's weights bit for bit, without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from fedlite.models import build_model
from fedlite.train import TrainSettings, train
from fedlite.train.loop import scaled_lr_groups
from fedlite.train.sgd import SGD


def _run(make, model: torch.nn.Module, steps: int = 6) -> list[torch.Tensor]:
    optimizer = make(model)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randn(16, 1, 8, 8, generator=generator)
        y = torch.randint(0, 10, (16,), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def _model() -> torch.nn.Module:
    torch.manual_seed(3)
    return build_model("cnn", (1, 8, 8), 10)


@pytest.mark.parametrize("momentum, weight_decay",
                         [(0.0, 0.0), (0.9, 0.0), (0.9, 5e-4), (0.0, 1e-3)])
def test_matches_torch_sgd_bit_for_bit(momentum, weight_decay):
    kwargs = dict(lr=0.05, momentum=momentum, weight_decay=weight_decay)
    ours = _run(lambda m: SGD(m.parameters(), **kwargs), _model())
    torch_ = _run(lambda m: torch.optim.SGD(m.parameters(), **kwargs), _model())
    for a, b in zip(ours, torch_, strict=True):
        assert torch.equal(a, b)


def test_parameter_groups_keep_their_own_lr():
    def groups(model):
        return scaled_lr_groups(model, lambda name: name.startswith("classifier"), 0.05, 10.0)
    ours = _run(lambda m: SGD(groups(m), lr=0.05, momentum=0.9), _model())
    torch_ = _run(lambda m: torch.optim.SGD(groups(m), lr=0.05, momentum=0.9), _model())
    for a, b in zip(ours, torch_, strict=True):
        assert torch.equal(a, b)


def test_frozen_parameters_do_not_move():
    model = _model()
    frozen = model.features[0].weight
    frozen.requires_grad_(False)
    before = frozen.detach().clone()
    _run(lambda m: SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3), model)
    assert torch.equal(frozen, before)


def test_empty_parameter_list_is_an_error():
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)


def test_loop_trains_like_torch_sgd(digits):
    x, y = digits.train_x[:256], digits.train_y[:256]
    settings = TrainSettings(epochs=2, batch_size=32, lr=0.05, momentum=0.9, weight_decay=1e-4)
    ours, torch_ = _model(), _model()
    train(ours, x, y, settings)
    train(torch_, x, y, settings, make_optimizer=lambda m, s: torch.optim.SGD(
        m.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay))
    for a, b in zip(ours.parameters(), torch_.parameters(), strict=True):
        assert torch.equal(a, b)


def test_training_does_not_import_torch_dynamo():
    """The import it avoids costs 2 s in every fresh process (each Ray actor's round 1)."""
    code = ("import sys, torch\n"
            "from fedlite.models import build_model\n"
            "from fedlite.train import TrainSettings, train, evaluate\n"
            "m = build_model('cnn', (1, 8, 8), 10)\n"
            "x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))\n"
            "train(m, x, y, TrainSettings(momentum=0.9, weight_decay=1e-4))\n"
            "evaluate(m, x, y)\n"
            "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
