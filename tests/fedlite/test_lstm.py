"""The Shakespeare LSTM: its fused kernel against a step loop over the gate maps, with dense
and FedPara maps; FedPara's parameter counts and ranks against the paper's setting."""

from __future__ import annotations

import pytest
import torch

from fedlite.hadamard import HadamardLinear, LowRankLinear, default_exclude
from fedlite.hadamard.convert import convert
from fedlite.models import CharLSTM, build_model

torch.set_num_threads(1)


def step_forward(model: CharLSTM, x: torch.Tensor) -> torch.Tensor:
    """The LSTM written out: one time step at a time, through the two maps themselves."""
    out = model.embedding(x.long())
    for layer in model.layers:
        h = out.new_zeros(len(out), layer.hidden_size)
        c = torch.zeros_like(h)
        steps = []
        for t in range(out.shape[1]):
            gates = layer.input_to_hidden(out[:, t]) + layer.hidden_to_hidden(h)
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            steps.append(h)
        out = torch.stack(steps, dim=1)
    return model.fc(out[:, -1])


@pytest.mark.parametrize("mode", ["none", "fedpara", "lowrank", "pfedpara"])
def test_fused_kernel_equals_the_step_loop(mode):
    # Prepare: a small LSTM so the loop is quick; uint8 windows as the dataset holds them
    torch.manual_seed(0)
    model = CharLSTM(30, embedding=5, hidden=12, layers=2)
    if mode != "none":
        convert(model, mode, gamma=0.5)
    x = torch.randint(0, 30, (3, 9), dtype=torch.uint8)
    # Execute
    fused = model(x)
    loop = step_forward(model, x)
    # Assert: values and gradients
    torch.testing.assert_close(fused, loop, atol=1e-5, rtol=1e-4)
    grads = {}
    for name, out in (("fused", fused), ("loop", loop)):
        model.zero_grad()
        out.square().sum().backward()
        grads[name] = {k: p.grad.clone() for k, p in model.named_parameters()}
    for key, grad in grads["fused"].items():
        torch.testing.assert_close(grad, grads["loop"][key], atol=1e-4, rtol=1e-3, msg=key)


def test_the_paper_model_shapes_and_parameters():
    model = build_model("lstm", (80,), 80)
    assert model(torch.zeros(2, 80, dtype=torch.uint8)).shape == (2, 80)
    # embedding 80x8, 2 layers x (4H x I + 4H x H + 2 x 4H), head 256 -> 80
    expected = 640 + (1024 * 8 + 1024 * 256 + 2048) + (2 * 1024 * 256 + 2048) + 256 * 80 + 80
    assert sum(p.numel() for p in model.parameters()) == expected == 819_920
    assert not [k for k in model.state_dict() if "kernel" in k]  # the template holds nothing


def test_fedpara_at_gamma_0_is_the_papers_19_percent():
    # Prepare: the FedPara paper's Shakespeare LSTM (Sec. 3.1: FedPara at 19 % of the
    # parameters; the low-rank baseline at the same budget)
    fedpara, lowrank = build_model("lstm", (80,), 80), build_model("lstm", (80,), 80)
    # Execute
    report = convert(fedpara, "fedpara", gamma=0.0)
    low = convert(lowrank, "lowrank", gamma=0.0)
    # Assert: only the four gate maps, at the rank rule's r_min = min(ceil(sqrt(m)), ceil(sqrt(n)))
    assert [(r.name, r.shape, r.rank) for r in report.layers] == [
        ("layers.0.input_to_hidden", (1024, 8), 3),
        ("layers.0.hidden_to_hidden", (1024, 256), 16),
        ("layers.1.input_to_hidden", (1024, 256), 16),
        ("layers.1.hidden_to_hidden", (1024, 256), 16)]
    assert [r.rank for r in low.layers] == [6, 32, 32, 32]  # rank 2R: FedPara's budget
    assert report.params_after == low.params_after == 154_368
    assert report.ratio == pytest.approx(0.19, abs=0.005)
    assert isinstance(fedpara.layers[1].hidden_to_hidden, HadamardLinear)
    assert isinstance(lowrank.layers[1].hidden_to_hidden, LowRankLinear)
    assert type(fedpara.fc) is torch.nn.Linear  # the head and the embedding stay as they are
    # full rank for every map: R**2 >= min(m, n)
    assert all(r.rank ** 2 >= min(r.shape) for r in report.layers)


def test_default_exclude_keeps_only_the_head_dense():
    assert default_exclude(build_model("lstm", (80,), 80)) == ("fc",)


@pytest.mark.parametrize(("name", "shape", "message"), [
    ("lstm", (3, 32, 32), "reads windows of character ids"),
    ("cnn", (80,), "reads images.*set `model` to lstm")])
def test_a_model_for_the_other_kind_of_data_is_refused(name, shape, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, shape, 10)


def test_a_round_of_training_lowers_the_loss_on_a_repeated_text():
    # Prepare: windows of one repeated sentence: the next character is easy to learn
    from fedlite.data.shakespeare import windows
    from fedlite.train import TrainSettings, evaluate, train

    torch.manual_seed(0)
    data = windows(["to be or not to be, that is the question. " * 12])
    model = CharLSTM(data.num_classes, hidden=32)
    before = evaluate(model, data.train_x, data.train_y)[0]
    # Execute
    train(model, data.train_x, data.train_y, TrainSettings(epochs=3, batch_size=16, lr=0.5,
                                                           momentum=0.9, clip_grad_norm=5.0))
    # Assert
    assert evaluate(model, data.train_x, data.train_y)[0] < 0.8 * before
