"""Computation: labeled-class confidence, output-gradient norm, a selection forward without
side effects, and the queue that re-batches kept samples."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from fedlite.train.skip import (KeptQueue, SelectionForward, labeled_confidence,
                                selection_logits)


def test_confidence_is_the_labeled_class_probability_so_confident_mistakes_stay_low():
    # Prepare: sample 0 predicts class 2 with ~0.99 but is labeled 0
    logits = torch.tensor([[0.0, 0.0, 6.0], [6.0, 0.0, 0.0]])
    y = torch.tensor([0, 0])
    # Execute
    confidence, grad_norm = labeled_confidence(logits, y)
    # Assert
    assert confidence[0] < 0.01 and confidence[1] > 0.99
    assert grad_norm[0] > 1.3 and grad_norm[1] < 0.02


def test_gradient_norm_equals_the_autograd_output_gradient():
    # Prepare
    torch.manual_seed(0)
    logits = torch.randn(16, 10, requires_grad=True)
    y = torch.randint(0, 10, (16,))
    # Execute: d(sum of per-sample CE)/d logits row i is p_i - e_{y_i}
    F.cross_entropy(logits, y, reduction="sum").backward()
    _, grad_norm = labeled_confidence(logits.detach(), y)
    # Assert
    torch.testing.assert_close(grad_norm, logits.grad.norm(dim=1), rtol=1e-5, atol=1e-6)


def test_selection_forward_leaves_batchnorm_stats_and_dropout_rng_untouched():
    # Prepare
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))
    model.train()
    x = torch.randn(32, 4)
    mean_before = model[1].running_mean.clone()
    torch.manual_seed(123)
    # Execute
    logits = selection_logits(model, x)
    after = torch.rand(3)
    # Assert
    assert not logits.requires_grad
    torch.testing.assert_close(model[1].running_mean, mean_before)
    assert model[1].num_batches_tracked == 0
    torch.manual_seed(123)
    torch.testing.assert_close(after, torch.rand(3))


def test_selection_forward_built_once_follows_the_models_mode_at_each_call():
    # Prepare: built while the model is in eval mode (the gate builds one per epoch)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))
    select = SelectionForward(model.eval())
    x = torch.randn(32, 4)
    model.train()
    mean_before = model[1].running_mean.clone()
    torch.manual_seed(7)
    # Execute
    train_mode = select(x)
    after = torch.rand(3)
    # Assert: still no trace in training mode; in eval mode it is the plain forward
    torch.testing.assert_close(model[1].running_mean, mean_before)
    torch.manual_seed(7)
    torch.testing.assert_close(after, torch.rand(3))
    assert not torch.allclose(train_mode, model.eval()(x))
    torch.testing.assert_close(select(x), model(x))


def test_compiled_selection_runs_full_batches_only_and_gives_the_eager_logits():
    # Prepare: the compiled module replaced by a recorder around it
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 3 * 3, 5)).train()
    select = SelectionForward(model, compiled_rows=8)
    compiled, calls = select.compiled, []
    select.compiled = lambda x: calls.append(len(x)) or compiled(x)
    full, short = torch.randn(8, 1, 8, 8), torch.randn(3, 1, 8, 8)
    # Execute
    logits_full, logits_short = select(full), select(short)
    # Assert: only the full batch went through torch.compile, both match the eager forward
    assert calls == [8]
    with torch.inference_mode():
        torch.testing.assert_close(logits_full, model(full), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(logits_short, model(short), rtol=0, atol=0)
    assert not logits_full.requires_grad


def test_a_selection_forward_that_cannot_compile_names_the_key_and_the_fix(monkeypatch):
    # Prepare: torch.compile as it fails where inductor finds no C++ compiler
    def no_compiler(model, **_kwargs):
        def fail(x):
            raise OSError("no C++ compiler found")
        return fail
    monkeypatch.setattr(torch, "compile", no_compiler)
    select = SelectionForward(nn.Linear(4, 3), compiled_rows=8)
    # Execute / Assert
    with pytest.raises(RuntimeError, match="skip.compile-selection = false"):
        select(torch.randn(8, 4))
    assert select(torch.randn(5, 4)).shape == (5, 3)  # shorter batches never needed it


def test_queue_yields_full_batches_in_arrival_order_and_flushes_the_rest():
    # Prepare
    queue = KeptQueue(batch_size=4)
    chunks = [torch.arange(0, 3), torch.arange(3, 4), torch.arange(4, 10), torch.arange(10, 11)]
    # Execute
    out = [(y, i) for chunk in chunks
           for _, y, i, scale in queue.push(chunk.float(), chunk, 100 + chunk, 4)]
    out += [(y, i) for _, y, i, _ in queue.flush()]
    # Assert: rows and their indices stay together
    assert [y.tolist() for y, _ in out] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert all(torch.equal(i, 100 + y) for y, i in out)
    assert list(queue.flush()) == []
