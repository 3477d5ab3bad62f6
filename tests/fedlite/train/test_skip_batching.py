"""Both batch forms of ``skip.batching``: ``refill`` queues kept samples into full batches,
``shrink`` makes each mini-batch's kept samples that step's batch, with the gradient of the
kept samples over the mini-batch's size. Neutral settings reproduce plain training exactly in
both forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fedlite.config import RunConfig
from fedlite.data import ClientData
from fedlite.federation import local_round
from fedlite.models import build_model
from fedlite.train import TrainSettings, train
from fedlite.train.skip import ShrinkNormalization, SkipControl, SkipGate

torch.set_num_threads(1)
SETTINGS = TrainSettings(epochs=2, batch_size=32, lr=0.05, seed=3)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("cnn", (1, 8, 8), 10)


def _train(digits, gate=None, model=None, settings=SETTINGS, n=600):
    model = model or _model()
    terms = [ShrinkNormalization(gate)] if gate is not None and gate.control.scales_steps \
        else []
    result = train(model, digits.train_x[:n], digits.train_y[:n], settings, gate=gate,
                   callbacks=() if gate is None else [gate], loss_terms=terms)
    return model, result


def _steps(model: torch.nn.Module) -> list[int]:
    """Rows of every grad-enabled forward, i.e. of every optimizer step."""
    rows: list[int] = []
    model.classifier[-1].register_forward_hook(
        lambda _m, inputs, _o: rows.append(len(inputs[0])) if torch.is_grad_enabled() else None)
    return rows


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


@pytest.fixture(scope="module")
def trained(digits):
    """A model that is confident on much of its training data."""
    model, _ = _train(digits, settings=TrainSettings(epochs=5, batch_size=32, lr=0.05))
    return model.state_dict()


@pytest.mark.parametrize("batching,refill_size,compensate",
                         [("refill", 0, False), ("refill", 16, False), ("shrink", 0, False),
                          ("refill", 0, True), ("shrink", 0, True)])
def test_neutral_settings_train_exactly_like_the_plain_loop(digits, batching, refill_size,
                                                            compensate):
    # Execute: bound 0 (tau stays 1), and a fresh client (no tau yet) with a positive bound
    plain, plain_result = _train(digits)
    for control in (SkipControl(error_bound=0.0, period="epoch", batching=batching,
                                refill_size=refill_size, compensate=compensate),
                    SkipControl(error_bound=0.3, period="round", batching=batching,
                                refill_size=refill_size, compensate=compensate)):
        gated, result = _train(digits, SkipGate(control))
        # Assert: bit for bit, and the same loss reported
        _same(plain, gated)
        assert result.samples_backprop == result.samples_seen == 1200
        assert result.loss == plain_result.loss


def test_neutral_skip_section_through_local_round_is_plain_training(digits):
    # Prepare: the run config's way in, shrink form, bound 0
    client = ClientData(digits.train_x[:300], digits.train_y[:300], digits.test_x[:10],
                        digits.test_y[:10])
    plain_cfg = RunConfig(dataset="digits", local_epochs=2)
    skip_cfg = plain_cfg.with_keys({"skip.enabled": True, "skip.error-bound": 0.0,
                                    "skip.batching": "shrink", "skip.period": "epoch"})
    plain, skipping = _model(), _model()
    # Execute: two rounds each, the client state carried like the ClientApp does
    state: dict[str, np.ndarray] = {}
    for server_round in (1, 2):
        local_round(plain, client, plain_cfg, server_round, 0)
        local_round(skipping, client, skip_cfg, server_round, 0, state=state)
    # Assert
    _same(plain, skipping)


def test_shrink_takes_one_step_per_mini_batch_on_its_kept_rows(digits, trained):
    # Prepare
    model = _model()
    model.load_state_dict(trained)
    rows = _steps(model)
    gate = SkipGate(SkipControl(error_bound=0.3, batching="shrink"),
                    {"skip/threshold": np.array([0.9])})
    one_epoch = TrainSettings(epochs=1, batch_size=32, lr=0.05, seed=1)
    # Execute
    _, result = _train(digits, gate, model=model, settings=one_epoch)
    # Assert: 19 mini-batches (600 = 18 x 32 + 24); one step for each that kept a sample,
    # and the steps together hold exactly the kept rows
    assert len(rows) <= 19 and len(rows) >= 17
    assert sum(rows) == result.samples_backprop < 0.8 * result.samples_seen
    assert any(n < 32 for n in rows[:-1])


def test_refill_takes_full_batches_so_fewer_steps_than_shrink(digits, trained):
    # Prepare: the same model and pinned tau, in both forms
    steps = {}
    for batching in ("refill", "shrink"):
        model = _model()
        model.load_state_dict(trained)
        rows = _steps(model)
        gate = SkipGate(SkipControl(error_bound=0.3, batching=batching),
                        {"skip/threshold": np.array([0.9])})
        # Execute
        _train(digits, gate, model=model, settings=TrainSettings(epochs=1, batch_size=32))
        steps[batching] = rows
    # Assert: refill's steps are full but the last; shrink keeps one per mini-batch
    assert all(n == 32 for n in steps["refill"][:-1])
    assert len(steps["refill"]) < len(steps["shrink"])


def test_shrinks_gradient_is_the_kept_samples_summed_over_the_mini_batch_size(digits, trained):
    # Prepare: one mini-batch of 32, plain SGD (no momentum), tau pinned so some rows skip
    x, y = torch.as_tensor(digits.train_x[:32]), torch.as_tensor(digits.train_y[:32])
    settings = TrainSettings(epochs=1, batch_size=32, lr=0.1, momentum=0.0, seed=0)
    model = _model()
    model.load_state_dict(trained)
    with torch.no_grad():
        p_y = torch.softmax(model(x), 1)[torch.arange(32), y]
    kept = p_y <= 0.9
    assert 0 < int(kept.sum()) < 32
    # what the seed's form computes: sum over kept rows of the CE, divided by B = 32
    reference = _model()
    reference.load_state_dict(trained)
    reference.train()
    loss = F.cross_entropy(reference(x[kept]), y[kept], reduction="sum") / 32
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    expected = [p.detach() - 0.1 * g for p, g in zip(reference.parameters(), grads, strict=True)]
    gate = SkipGate(SkipControl(error_bound=0.99, batching="shrink"),
                    {"skip/threshold": np.array([0.9])})
    # Execute
    _, result = _train(digits, gate, model=model, settings=settings, n=32)
    # Assert: the kept rows are those above, the update is the reference step, the loss
    # reported is the kept rows' mean
    assert result.samples_backprop == int(kept.sum())
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.detach(), e, rtol=1e-4, atol=1e-6)
    mean = F.cross_entropy(reference(x[kept]), y[kept]).item()
    assert result.loss == pytest.approx(mean, rel=1e-5)


ONE_STEP = TrainSettings(epochs=1, batch_size=32, lr=0.1, momentum=0.0, seed=0)


def _one_shuffled_batch(digits, trained):
    """The trained model and the first 32 digits in the order the loop draws them under
    ``ONE_STEP`` (one mini-batch, plain SGD without momentum), with its softmax outputs."""
    order = torch.randperm(32, generator=torch.Generator().manual_seed(0))  # the loop's
    x, y = torch.as_tensor(digits.train_x[:32])[order], torch.as_tensor(digits.train_y[:32])[order]
    model = _model()
    model.load_state_dict(trained)
    with torch.no_grad():
        p = torch.softmax(model(x), 1)
    return model, x, y, p


def test_a_smaller_refill_steps_on_batches_of_its_size_each_sample_weighed_as_in_plain(
        digits, trained):
    # Prepare: one mini-batch of 32, plain SGD (no momentum), tau pinned so some rows skip
    model, x, y, p = _one_shuffled_batch(digits, trained)
    p_y = p[torch.arange(32), y]
    kept = torch.nonzero(p_y <= 0.999).flatten()
    assert 8 < len(kept) < 32
    # the reference: the kept rows in their order, 8 at a time, each step's gradient its rows'
    # CE summed over 32, as plain training weighs them (the epoch's remainder too)
    assert len(kept) % 8, "the epoch must end on a remainder batch"
    reference = _model()
    reference.load_state_dict(trained)
    for chunk in kept.split(8):
        loss = F.cross_entropy(reference(x[chunk]), y[chunk]) * len(chunk) / 32
        grads = torch.autograd.grad(loss, list(reference.parameters()))
        with torch.no_grad():
            for p, g in zip(reference.parameters(), grads, strict=True):
                p -= 0.1 * g
    rows = _steps(model)
    gate = SkipGate(SkipControl(error_bound=0.99, refill_size=8),
                    {"skip/threshold": np.array([0.999])})
    # Execute
    _, result = _train(digits, gate, model=model, settings=ONE_STEP, n=32)
    # Assert: batches of 8 but the last, and the weights the reference steps reach
    assert rows == [len(chunk) for chunk in kept.split(8)]
    assert result.samples_backprop == len(kept)
    for p, e in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), e.detach(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("compensate", [False, True])
def test_compensation_scales_the_kept_samples_step_by_the_dropped_gradient_mass(
        digits, trained, compensate):
    # Prepare: one mini-batch of 32, plain SGD (no momentum), tau pinned so some rows skip
    model, x, y, p = _one_shuffled_batch(digits, trained)
    p_y = p[torch.arange(32), y]
    grad_norm = (p - F.one_hot(y, 10)).norm(dim=1).double()
    kept = p_y <= 0.9
    assert 0 < int(kept.sum()) < 32
    gate = SkipGate(SkipControl(error_bound=0.99, compensate=compensate),
                    {"skip/threshold": np.array([0.9])})
    # Execute
    _, result = _train(digits, gate, model=model, settings=ONE_STEP, n=32)
    # Assert: the same rows kept; the factor is 1 / (1 - d), d the skipped rows' share of the
    # summed ||p - e_y|| (the gate's own selection forward measured it; here it is recomputed
    # to float tolerance)
    assert result.samples_backprop == int(kept.sum())
    dropped = gate.metrics()["skip-dropped-gradient"]
    assert dropped == pytest.approx(float(grad_norm[~kept].sum() / grad_norm.sum()), rel=1e-2)
    factor = 1 / (1 - dropped) if compensate else 1.0
    # the reference: the kept rows' mean CE (a full refill's remainder batch), times the factor
    reference = _model()
    reference.load_state_dict(trained)
    loss = F.cross_entropy(reference(x[kept]), y[kept]) * factor
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    for param, g, before in zip(model.parameters(), grads, reference.parameters(), strict=True):
        torch.testing.assert_close(param.detach(), before.detach() - 0.1 * g, rtol=1e-4,
                                   atol=1e-6)
