"""Distillation from the old head: zero while the head is unchanged, positive and reaching the
embedding module and the old classes' classifier rows (never the extractor) once the head
moves."""

from __future__ import annotations

import torch

from fedlite.continual.client import OldClassifier, OldHead
from fedlite.continual.losses import OldHeadKD
from fedlite.continual.model import ContinualNet

torch.set_num_threads(1)


def _setup(space: str = "feature"):
    """A branch at 4 seen classes, and the KD term from its snapshot at 2 old classes: the
    old head (feature space) or the old classifier (embedding space)."""
    torch.manual_seed(0)
    net = ContinualNet((1, 8, 8), 10)
    net.teacher.set_seen([0, 1, 2, 3])
    old = OldHead(net.teacher) if space == "feature" else OldClassifier(net.teacher)
    old.seen = torch.zeros(10, dtype=torch.bool)
    old.seen[[0, 1]] = True
    dim = 128 if space == "feature" else 64
    points = lambda n: (torch.randn(n, dim).relu(), torch.zeros(n, dtype=torch.long))  # noqa: E731
    return net.teacher, OldHeadKD(old, old.seen, points, weight=1.0, temperature=2.0,
                                  space=space)


def test_zero_while_the_head_is_the_old_one():
    branch, kd = _setup()
    x = torch.randn(8, 1, 8, 8)
    loss = kd(branch, x, torch.full((8,), 2), branch(x))
    assert float(loss) < 1e-6


def test_moved_head_is_pulled_back_through_the_embedding_module():
    branch, kd = _setup()
    with torch.no_grad():
        branch.embed[0].weight.add_(0.5 * torch.randn_like(branch.embed[0].weight))
    x = torch.randn(8, 1, 8, 8)
    loss = kd(branch, x, torch.full((8,), 2), branch(x))
    assert float(loss) > 1e-4
    loss.backward()
    assert branch.embed[0].weight.grad.abs().sum() > 0
    assert branch.classifier.weight.grad[[0, 1]].abs().sum() > 0
    assert branch.classifier.weight.grad[2:].abs().sum() == 0  # old classes' logits only
    # features enter detached: a student's extractor still learns by feature matching only
    assert all(p.grad is None for p in branch.features.parameters())


def test_old_head_follows_the_training_device():
    """The snapshot is taken on the CPU; training on another device must not mix devices
    (found on a GPU: 'mat1 is on cuda:0, different from other tensors on cpu'). The meta
    device stands in for the GPU here: a CPU module given meta inputs raises the same way."""
    _, kd = _setup()
    assert kd.old_logits(torch.randn(4, 128, device="meta")).device.type == "meta"


def test_embedding_space_kd_is_zero_while_the_classifier_is_the_old_one():
    branch, kd = _setup("embedding")
    x = torch.randn(8, 1, 8, 8)
    assert float(kd(branch, x, torch.full((8,), 2), branch(x)).detach()) < 1e-6


def test_embedding_space_kd_pulls_the_moved_classifier_back_on_old_classes_only():
    branch, kd = _setup("embedding")
    with torch.no_grad():
        branch.classifier.weight.add_(0.5 * torch.randn_like(branch.classifier.weight))
    x = torch.randn(8, 1, 8, 8)
    loss = kd(branch, x, torch.full((8,), 2), branch(x))
    assert float(loss.detach()) > 1e-4
    loss.backward()
    assert branch.classifier.weight.grad[[0, 1]].abs().sum() > 0
    assert branch.classifier.weight.grad[2:].abs().sum() == 0
    assert branch.embed[0].weight.grad.abs().sum() > 0  # the embedding module adjusts with it
    assert all(p.grad is None for p in branch.features.parameters())
