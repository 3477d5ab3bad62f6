"""The gate in THE training loop: neutral at bound 0, fewer rows in the backward, all-skipped
batches counted, per-client state under ``skip/``, wiring through ``local_round``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedlite.config import RunConfig
from fedlite.federation import local_round
from fedlite.models import build_model
from fedlite.train import TrainSettings, train
from fedlite.train.skip import SkipConfig, SkipControl, SkipGate

SETTINGS = TrainSettings(epochs=2, batch_size=32, lr=0.05, seed=3)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("cnn", (1, 8, 8), 10)


def _train(digits, gate=None, model=None, settings=SETTINGS):
    model = model or _model()
    result = train(model, digits.train_x[:600], digits.train_y[:600], settings, gate=gate,
                   callbacks=() if gate is None else [gate])
    return model, result


def _rows_in_grad_forwards(model: torch.nn.Module) -> list[int]:
    rows: list[int] = []
    model.classifier[-1].register_forward_hook(
        lambda _m, inputs, _o: rows.append(len(inputs[0])) if torch.is_grad_enabled() else None)
    return rows


def test_error_bound_zero_trains_exactly_like_the_plain_loop(digits):
    # Execute
    plain, plain_result = _train(digits)
    gated, gated_result = _train(digits, SkipGate(SkipControl(error_bound=0.0, period="epoch")))
    # Assert
    for (name, a), (_, b) in zip(plain.state_dict().items(), gated.state_dict().items(),
                                 strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert gated_result.samples_backprop == gated_result.samples_seen == 1200
    assert gated_result.loss == plain_result.loss
    assert gated_result.method_metrics["skip-backprop-fraction"] == 1.0


def test_kept_samples_backward_runs_on_fewer_rows(digits):
    # Prepare: a trained-ish model, then a gate whose threshold skips confident samples
    model, _ = _train(digits, settings=TrainSettings(epochs=5, batch_size=32, lr=0.05))
    rows = _rows_in_grad_forwards(model)
    gate = SkipGate(SkipControl(error_bound=0.2), {"skip/threshold": np.array([0.9])})
    # Execute
    _, result = _train(digits, gate, model=model, settings=TrainSettings(epochs=1, batch_size=32))
    # Assert: the grad-enabled forwards saw only the kept rows, in full batches but the last
    assert sum(rows) == result.samples_backprop < 0.6 * result.samples_seen
    assert result.samples_seen == 600
    assert all(n == 32 for n in rows[:-1]) and 0 < rows[-1] <= 32
    assert result.method_metrics["skip-backprop-fraction"] == pytest.approx(sum(rows) / 600)


def test_confidently_wrong_samples_are_never_skipped(digits):
    # Prepare: a model that is confident on its training data, labels flipped for 50 samples
    model, _ = _train(digits, settings=TrainSettings(epochs=8, batch_size=32, lr=0.05))
    x, y = digits.train_x[:600], digits.train_y[:600].copy()
    with torch.no_grad():
        predicted = model(torch.as_tensor(x)).argmax(1).numpy()
    wrong = np.arange(50)
    y[wrong] = (predicted[wrong] + 1) % 10
    seen_labels: list[np.ndarray] = []
    gate = SkipGate(SkipControl(error_bound=0.5), {"skip/threshold": np.array([0.5])})
    # Execute: collect what the gate lets through (it is the loop's only batch source)
    stream = gate.filter(model, [(torch.as_tensor(x[i:i + 50]), torch.as_tensor(y[i:i + 50]))
                                 for i in range(0, 600, 50)], torch.arange(600))
    for xb, yb in stream:
        seen_labels.append(xb.numpy().reshape(len(yb), -1))
    kept_rows = np.concatenate(seen_labels)
    # Assert: every flipped (confidently wrong) sample is among the kept rows, many others not
    flat = x.reshape(600, -1)
    for i in wrong:
        assert (kept_rows == flat[i]).all(axis=1).any(), i
    assert len(kept_rows) < 400


def test_all_skipped_batches_are_counted_not_an_error(digits):
    # Prepare: remembered confidences say every sample is certain (p_y = 1, zero gradient), so
    # the guard has no mass to protect and every sample is skipped
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = {"skip/threshold": np.array([0.5]), "skip/epochs": np.array([1]),
             "skip/confidence": np.ones(600, np.float32),
             "skip/grad-norm": np.zeros(600, np.float32)}
    gate = SkipGate(SkipControl(error_bound=0.1, selection_every=2), state)
    # Execute: one epoch on the remembered confidences
    _, result = _train(digits, gate, model=model, settings=TrainSettings(epochs=1, seed=3))
    # Assert: nothing backpropagated, no update, every sample seen and counted
    assert result.samples_seen == 600 and result.samples_backprop == 0
    assert result.method_metrics["skip-backprop-fraction"] == 0.0
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])


def test_state_persists_threshold_and_period_statistics(digits):
    # Prepare
    state: dict[str, np.ndarray] = {}
    model, _ = _train(digits, settings=TrainSettings(epochs=5, batch_size=32, lr=0.05))
    # Execute: two "rounds" sharing the state dict
    _, first = _train(digits, SkipGate(SkipControl(error_bound=0.3, bins=10), state), model=model)
    tau = float(state["skip/threshold"][0])
    _, second = _train(digits, SkipGate(SkipControl(error_bound=0.3, bins=10), state),
                       model=model)
    # Assert: round 1 kept everything (no statistics yet) and chose tau for round 2
    assert set(state) == {"skip/threshold", "skip/counts", "skip/grad-sums"}
    assert state["skip/counts"].shape == (10,) and state["skip/counts"].sum() == 1200
    assert first.samples_backprop == 1200 and first.method_metrics["skip-threshold"] == 1.0
    assert tau < 1.0
    assert second.method_metrics["skip-threshold"] == tau
    assert second.samples_backprop < second.samples_seen
    assert 0 < second.method_metrics["skip-estimated-error"] <= 0.5


def test_warmup_rounds_skip_nothing_but_still_choose_the_next_threshold(digits):
    # Prepare: a trained model and a threshold in force that would skip most samples
    model, _ = _train(digits, settings=TrainSettings(epochs=5, batch_size=32, lr=0.05))
    control = SkipControl(error_bound=0.3, bins=10, warmup_rounds=2)
    state = {"skip/threshold": np.array([0.5])}
    # Execute: round 2 is still a warm-up round, round 3 is not
    _, warm = _train(digits, SkipGate(control, state, server_round=2), model=model)
    tau = float(state["skip/threshold"][0])
    _, after = _train(digits, SkipGate(control, state, server_round=3), model=model)
    # Assert: nothing skipped while warming up, yet its histogram chose the next tau
    assert warm.samples_backprop == warm.samples_seen == 1200
    assert warm.method_metrics["skip-threshold"] == 1.0
    assert state["skip/counts"].sum() > 0 and tau < 1.0
    assert after.method_metrics["skip-threshold"] == tau
    assert after.samples_backprop < after.samples_seen


def test_local_round_attaches_the_gate_only_when_enabled(digits):
    # Prepare
    from fedlite.data import ClientData

    client = ClientData(digits.train_x[:300], digits.train_y[:300], digits.test_x[:10],
                        digits.test_y[:10])
    on = RunConfig(dataset="digits").replace(skip=SkipConfig(enabled=True, error_bound=0.1))
    state: dict[str, np.ndarray] = {}
    # Execute
    plain = local_round(_model(), client, RunConfig(dataset="digits"), 1, 0, state=state)
    skipping = local_round(_model(), client, on, 1, 0, state=state)
    # Assert
    assert not any(k.startswith("skip-") for k in plain.metrics())
    assert {"skip-threshold", "skip-backprop-fraction", "skip-estimated-error"} <= \
        set(skipping.metrics())
    assert all(k.startswith("skip/") for k in state) and "skip/threshold" in state


def _forward_rows(model: torch.nn.Module) -> dict[str, list[int]]:
    """Rows seen by the last layer, split into selection (no autograd) and training forwards."""
    rows: dict[str, list[int]] = {"selection": [], "training": []}
    model.classifier[-1].register_forward_hook(lambda _m, inputs, _o: rows[
        "training" if torch.is_grad_enabled() else "selection"].append(len(inputs[0])))
    return rows


def test_no_selection_forward_while_nothing_can_be_skipped(digits):
    # Prepare: a fresh client (tau = 1 until its first histogram)
    model, state = _model(), {}
    rows = _forward_rows(model)
    # Execute
    _, result = _train(digits, SkipGate(SkipControl(error_bound=0.3), state), model=model)
    # Assert: only training forwards ran, yet every sample entered the histogram
    assert rows["selection"] == [] and sum(rows["training"]) == 1200
    assert result.samples_backprop == 1200
    assert state["skip/counts"].sum() == 1200 and float(state["skip/threshold"][0]) < 1.0


def test_stale_selection_runs_a_selection_forward_only_every_nth_epoch(digits):
    # Prepare: a trained-ish model and a client that already has a threshold
    model, _ = _train(digits, settings=TrainSettings(epochs=5, batch_size=32, lr=0.05))
    rows = _forward_rows(model)
    state = {"skip/threshold": np.array([0.9])}
    control = SkipControl(error_bound=0.2, selection_every=2)
    per_epoch = TrainSettings(epochs=1, batch_size=32, lr=0.05)
    selection_rows = []
    # Execute: three one-epoch rounds sharing the client state
    for _ in range(3):
        state["skip/threshold"] = np.array([0.9])  # pinned: only the selection is under test
        before = sum(rows["selection"])
        _, result = _train(digits, SkipGate(control, state), model=model, settings=per_epoch)
        selection_rows.append(sum(rows["selection"]) - before)
        assert result.samples_backprop < result.samples_seen
    # Assert: fresh confidences in epochs 0 and 2, remembered ones in epoch 1
    assert selection_rows == [600, 0, 600]
    assert state["skip/confidence"].shape == (600,) and not np.isnan(state["skip/confidence"]).any()
    assert int(state["skip/epochs"][0]) == 3


def test_stale_selection_still_keeps_every_confidently_wrong_sample(digits):
    # Prepare: remembered confidences say samples 0-49 are confidently wrong
    model = _model()
    state = {"skip/threshold": np.array([0.5]), "skip/epochs": np.array([1]),
             "skip/confidence": np.full(600, 0.99, np.float32),
             "skip/grad-norm": np.full(600, 0.01, np.float32)}
    state["skip/confidence"][:50], state["skip/grad-norm"][:50] = 0.01, 1.4
    x, y = torch.as_tensor(digits.train_x[:600]), torch.as_tensor(digits.train_y[:600])
    gate = SkipGate(SkipControl(error_bound=0.5, selection_every=2), state)
    # Execute
    kept = [xb for xb, _ in gate.filter(model, [(x[i:i + 50], y[i:i + 50])
                                               for i in range(0, 600, 50)], torch.arange(600))]
    # Assert: exactly the remembered low-confidence rows come through, without a forward
    torch.testing.assert_close(torch.cat(kept), x[:50])


def test_the_stale_audit_measures_fresh_gradient_mass_and_changes_no_weight(digits):
    # Prepare: a trained-ish model, and a client whose remembered confidences are all old
    base, _ = _train(digits, settings=TrainSettings(epochs=3, batch_size=32, lr=0.05))
    per_epoch = TrainSettings(epochs=1, batch_size=32, lr=0.05, seed=1)
    runs = {}
    for audit in (False, True):
        state = {"skip/threshold": np.array([0.6]), "skip/epochs": np.array([1]),
                 "skip/confidence": np.full(600, 0.99, np.float32),  # "all easy", long ago
                 "skip/grad-norm": np.full(600, 0.01, np.float32)}
        model = _model()
        model.load_state_dict(base.state_dict())
        gate = SkipGate(SkipControl(error_bound=0.2, selection_every=2, audit_stale=audit),
                        state)
        _, result = _train(digits, gate, model=model, settings=per_epoch)
        runs[audit] = (model, gate.metrics(), result)
    # Execute / Assert: the same weights either way; only the audit reports the fresh share
    for key, value in runs[False][0].state_dict().items():
        torch.testing.assert_close(runs[True][0].state_dict()[key], value)
    plain_metrics, audited = runs[False][1], runs[True][1]
    assert "skip-dropped-gradient-fresh" not in plain_metrics
    # the guard, on remembered values (all equal), skipped a fifth of the gradient mass it saw;
    # the fresh mass of those samples is another figure
    assert audited["skip-dropped-gradient"] == pytest.approx(0.2, abs=0.01)
    assert 0.0 < audited["skip-dropped-gradient-fresh"] <= 1.0
    assert audited["skip-dropped-gradient-fresh"] != pytest.approx(
        audited["skip-dropped-gradient"], abs=1e-3)


def test_in_a_fresh_epoch_the_audit_is_the_guards_own_figure(digits):
    model, _ = _train(digits, settings=TrainSettings(epochs=3, batch_size=32, lr=0.05))
    gate = SkipGate(SkipControl(error_bound=0.2, audit_stale=True),
                    {"skip/threshold": np.array([0.6])})
    _train(digits, gate, model=model, settings=TrainSettings(epochs=1, batch_size=32, lr=0.05))
    metrics = gate.metrics()
    assert metrics["skip-dropped-gradient-fresh"] == pytest.approx(
        metrics["skip-dropped-gradient"], rel=1e-6)


def test_a_compiled_selection_forward_makes_the_same_decisions_and_weights(digits):
    # Prepare: a trained-ish model that skips a good share, twice
    base, _ = _train(digits, settings=TrainSettings(epochs=3, batch_size=32, lr=0.05))
    runs = {}
    for compiled in (False, True):
        model = _model()
        model.load_state_dict(base.state_dict())
        gate = SkipGate(SkipControl(error_bound=0.2, compile_selection=compiled),
                        {"skip/threshold": np.array([0.8])})
        # Execute: 600 rows, so each epoch ends on a batch of 24 (the eager path)
        _, result = _train(digits, gate, model=model)
        runs[compiled] = (model, result)
    # Assert: the compiled forward's logits choose the same samples, so the same weights
    (eager, eager_result), (compiled, compiled_result) = runs[False], runs[True]
    assert compiled_result.samples_backprop == eager_result.samples_backprop < 1000
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(compiled.state_dict()[key], value, rtol=1e-6, atol=1e-7)
