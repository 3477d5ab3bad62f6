"""The local training loop: learning, determinism, metrics, batch gates and loss terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedlite.models import build_model
from fedlite.train import TrainSettings, evaluate, train

torch.set_num_threads(1)

SETTINGS = TrainSettings(epochs=2, batch_size=32, lr=0.05, momentum=0.9, seed=0)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", (1, 8, 8), 10)


def _weights(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def subset(digits):
    return digits.train_x[:400], digits.train_y[:400]


class HalfGate:
    """Keeps the first half of every batch."""

    def __init__(self) -> None:
        self.kept = 0

    def filter(self, model, batches, order):
        for xb, yb in batches:
            keep = max(len(yb) // 2, 1)
            self.kept += keep
            yield xb[:keep], yb[:keep]

    def observe(self, y, logits):
        pass

    def metrics(self):
        return {"gate/kept": float(self.kept)}


class ZeroTerm:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, model, x, y, logits):
        self.calls += 1
        return 0.0 * logits.sum()


class PullToZero:
    """An L2 pull of the logits towards zero: a loss that ignores the labels."""

    def __call__(self, model, x, y, logits):
        return (logits ** 2).mean()


class EpochCounter:
    def __init__(self) -> None:
        self.epochs = []

    def on_epoch_end(self, epoch):
        self.epochs.append(epoch)

    def on_round_end(self):
        return {"counter/epochs": float(len(self.epochs))}


def test_training_lowers_the_loss(digits, subset):
    # Prepare
    model = _model()
    x, y = subset
    before, _ = evaluate(model, x, y)
    # Execute
    train(model, x, y, SETTINGS)
    # Assert
    after, accuracy = evaluate(model, x, y)
    assert after < 0.5 * before
    assert accuracy > 0.8
    _, test_accuracy = evaluate(model, digits.test_x, digits.test_y)
    assert test_accuracy > 0.7


def test_same_seed_gives_identical_weights(subset):
    a, b, c = _model(), _model(), _model()
    train(a, *subset, SETTINGS)
    train(b, *subset, SETTINGS)
    train(c, *subset, TrainSettings(epochs=2, batch_size=32, lr=0.05, seed=1))
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)
    assert any(not np.array_equal(wa[k], wc[k]) for k in wa), "the shuffle seed had no effect"


def test_metrics_without_gate(subset):
    # Execute
    result = train(_model(), *subset, SETTINGS)
    metrics = result.metrics()
    # Assert
    assert list(metrics)[0] == "num-examples"
    assert metrics["num-examples"] == 400
    assert metrics["samples-seen"] == metrics["samples-backprop"] == SETTINGS.epochs * 400
    assert 0.0 <= metrics["train-accuracy"] <= 1.0 and metrics["train-loss"] > 0
    assert metrics["train-seconds"] > 0
    assert result.method_metrics == {}


def test_gate_dropping_half_the_samples(subset):
    # Prepare
    gate = HalfGate()
    # Execute
    result = train(_model(), *subset, SETTINGS, gate=gate)
    # Assert: 400 = 12 batches of 32 + one of 16, each halved
    assert result.samples_seen == 2 * 400
    assert result.samples_backprop == gate.kept == 2 * (12 * 16 + 8)
    assert result.num_examples == 400
    assert result.metrics()["gate/kept"] == gate.kept


def test_zero_loss_term_changes_nothing(subset):
    # Prepare
    plain, with_term = _model(), _model()
    term = ZeroTerm()
    # Execute
    train(plain, *subset, SETTINGS)
    train(with_term, *subset, SETTINGS, loss_terms=[term])
    # Assert
    assert term.calls == 2 * 13
    wp, wt = _weights(plain), _weights(with_term)
    for key in wp:
        np.testing.assert_allclose(wt[key], wp[key], rtol=0, atol=1e-7, err_msg=key)


def test_loss_term_is_added(subset):
    plain, with_term = _model(), _model()
    train(plain, *subset, SETTINGS)
    result = train(with_term, *subset, SETTINGS, loss_terms=[PullToZero()])
    assert any(not np.allclose(a, b) for a, b in zip(_weights(plain).values(),
                                                      _weights(with_term).values(), strict=True))
    assert result.loss > 0


def test_task_loss_false_trains_only_on_the_term(subset):
    # Prepare
    x, y = subset
    model = _model()
    with torch.no_grad():
        before = float((model(torch.as_tensor(x)) ** 2).mean())
    shuffled_labels = np.random.default_rng(0).permutation(y)
    # Execute: labels are noise, and must not matter
    a = train(model, x, y, SETTINGS, loss_terms=[PullToZero()], task_loss=False)
    other = _model()
    train(other, x, shuffled_labels, SETTINGS, loss_terms=[PullToZero()], task_loss=False)
    # Assert
    with torch.no_grad():
        after = float((model(torch.as_tensor(x)) ** 2).mean())
    assert after < 0.5 * before
    for key, value in _weights(model).items():
        np.testing.assert_array_equal(value, _weights(other)[key], err_msg=key)
    assert a.loss <= before  # the reported loss is the term's, not cross-entropy (about 2.3)


def test_callbacks_see_every_epoch_and_report(subset):
    counter = EpochCounter()
    result = train(_model(), *subset, SETTINGS, callbacks=[counter])
    assert counter.epochs == [0, 1]
    assert result.method_metrics == {"counter/epochs": 2.0}


def test_custom_optimizer_is_used(subset):
    model = _model()
    before = _weights(model)
    train(model, *subset, SETTINGS,
          make_optimizer=lambda m, s: torch.optim.SGD(m.parameters(), lr=0.0))
    for key, value in _weights(model).items():
        np.testing.assert_array_equal(value, before[key])


def test_evaluate_returns_loss_and_accuracy_in_range(digits):
    # Execute
    loss, accuracy = evaluate(_model(), digits.test_x, digits.test_y, batch_size=100)
    # Assert: an untrained 10-class model is near chance
    assert 0.0 <= accuracy <= 1.0
    assert loss > 0 and np.isfinite(loss)
    np.testing.assert_allclose(loss, np.log(10), rtol=0.3)


def test_evaluate_batch_size_does_not_change_the_result(digits):
    model = _model()
    small = evaluate(model, digits.test_x, digits.test_y, batch_size=7)
    large = evaluate(model, digits.test_x, digits.test_y, batch_size=1024)
    np.testing.assert_allclose(small, large, rtol=1e-5)


def test_clip_grad_norm_bounds_every_step(subset):
    # Prepare: plain SGD, so each step moves the weights by exactly lr * (clipped) gradient
    settings = TrainSettings(epochs=1, batch_size=32, lr=0.05, momentum=0.0, clip_grad_norm=1e-3)
    plain, clipped = _model(), _model()
    start = torch.cat([p.detach().flatten() for p in clipped.parameters()])
    # Execute
    train(plain, *subset, TrainSettings(epochs=1, batch_size=32, lr=0.05, momentum=0.0))
    train(clipped, *subset, settings)

    def moved(m):
        return float((torch.cat([p.detach().flatten() for p in m.parameters()]) - start).norm())

    # Assert: 13 steps of at most lr * 1e-3 each, far less than the unclipped walk
    assert moved(clipped) <= 13 * 0.05 * 1e-3 * (1 + 1e-5)
    assert moved(plain) > 100 * moved(clipped)
