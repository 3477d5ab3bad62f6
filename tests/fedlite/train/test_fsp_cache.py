"""The teacher's matrices cached by sample: the same loss as recomputing them, the teacher run
once per sample, one cache per client and data, and recomputation when it would not fit."""

from __future__ import annotations

import copy

import pytest
import torch

from fedlite.models import build_model
from fedlite.train import TrainSettings
from fedlite.train.fsp import FspTerm
from fedlite.train.fsp import cache as fsp_cache
from fedlite.train.loop import train


class CountingTeacher(torch.nn.Module):
    """A frozen resnet8 that counts the samples it runs on."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.net = build_model("resnet8", (1, 8, 8), 10).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.samples = 0

    def forward_sections(self, x):
        self.samples += len(x)
        return self.net.forward_sections(x)


@pytest.fixture(autouse=True)
def empty_caches():
    fsp_cache.clear()
    yield
    fsp_cache.clear()


def stage1(student, teacher, x, cache, rounds=2, epochs=3):
    """``rounds`` local rounds of stage 1 (fresh term each, as a client's rounds): each
    round's mean FSP loss."""
    losses = []
    for rnd in range(rounds):
        term = FspTerm(student, teacher, cache=cache)
        with term:
            train(student, x, torch.zeros(len(x), dtype=torch.long),
                  TrainSettings(epochs=epochs, batch_size=16, lr=0.01, seed=rnd),
                  loss_terms=[term], task_loss=False, callbacks=[term])
        losses.append(term.loss_sum / term.batches)
    return losses


def test_cached_loss_equals_recomputed_loss_over_epochs_and_rounds():
    torch.manual_seed(0)
    x = torch.randn(40, 1, 8, 8)  # 40 samples, batches of 16: the last batch is short
    student = build_model("resnet14", (1, 8, 8), 10)
    twin = copy.deepcopy(student)
    plain, cached = CountingTeacher(), CountingTeacher()
    matrices = fsp_cache.teacher_matrices(cached, client_id=0, x=x)
    cached.samples = 0  # the shape probe
    expected = stage1(twin, plain, x, cache=None)
    got = stage1(student, cached, x, cache=matrices)
    assert got == pytest.approx(expected, rel=1e-5)
    for a, b in zip(student.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert plain.samples == 2 * 3 * 40  # every epoch of every round
    assert cached.samples == 40  # once per sample, in the first epoch
    assert bool(matrices.filled.all())


def test_one_cache_per_teacher_and_client_data():
    teacher = CountingTeacher()
    x = torch.randn(8, 1, 8, 8)
    first = fsp_cache.teacher_matrices(teacher, 0, x)
    assert fsp_cache.teacher_matrices(teacher, 0, x.clone()) is first  # same bytes: found again
    assert fsp_cache.teacher_matrices(teacher, 1, x) is not first  # another client
    assert fsp_cache.teacher_matrices(teacher, 0, x + 1) is not first  # other data
    assert fsp_cache.teacher_matrices(CountingTeacher(), 0, x) is not first  # other teacher


def test_memory_bound_and_fallback_to_recomputing():
    teacher = CountingTeacher()
    x = torch.randn(10, 1, 8, 8)
    # resnet8's sections: 16x16, 16x32, 32x64 values a sample, float32
    assert fsp_cache.cache_bytes([(16, 16), (16, 32), (32, 64)], 10) == 10 * 2816 * 4
    assert fsp_cache.teacher_matrices(teacher, 0, x, budget=10 * 2816 * 4 - 1) is None
    fits = fsp_cache.teacher_matrices(teacher, 0, x, budget=10 * 2816 * 4)
    assert fits is not None and fits.nbytes == 10 * 2816 * 4
    # a second client's cache evicts the least recently used one to stay within the budget
    other = fsp_cache.teacher_matrices(teacher, 1, x, budget=10 * 2816 * 4)
    assert other is not None and fsp_cache.teacher_matrices(teacher, 0, x) is not fits


def test_a_gated_batch_is_recomputed_not_cached():
    teacher = CountingTeacher()
    x = torch.randn(4, 1, 8, 8)
    student = build_model("resnet14", (1, 8, 8), 10)
    matrices = fsp_cache.teacher_matrices(teacher, 0, x)
    with FspTerm(student, teacher, cache=matrices) as term:
        term.on_batch(None)  # a gate rewrote the stream: the batch's samples are unknown
        logits = student(x)
        term(student, x, None, logits)
    assert not bool(matrices.filled.any())
