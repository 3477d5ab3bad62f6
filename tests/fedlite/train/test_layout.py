import torch
from torch.nn import functional as F

from fedlite.models import build_model
from fedlite.train import TrainSettings, train
from fedlite.train.layout import channels_last, prefers_channels_last


def _grads(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_channels_last_changes_speed_not_the_gradient():
    torch.manual_seed(0)
    model = build_model("cnn", (1, 28, 28), 10)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    plain = _grads(model, x, y)
    with channels_last(model, True):
        assert model.features[3].weight.is_contiguous(memory_format=torch.channels_last)
        fast = _grads(model, x, y)
    for name, grad in plain.items():
        torch.testing.assert_close(fast[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_train_hands_the_model_back_in_the_default_layout():
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 10)
    ids = {id(p) for p in model.parameters()}
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    train(model, x, y, TrainSettings(epochs=1, batch_size=16))
    assert {id(p) for p in model.parameters()} == ids  # same Parameter objects
    assert all(p.is_contiguous() for p in model.parameters())


def test_only_cpu_image_batches_go_channels_last():
    assert prefers_channels_last(torch.zeros(2, 1, 8, 8), "cpu")
    assert not prefers_channels_last(torch.zeros(2, 64), "cpu")
    assert not prefers_channels_last(torch.zeros(2, 1, 8, 8), "cuda")
