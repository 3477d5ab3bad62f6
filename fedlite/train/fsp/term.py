"""Stage 1 as a ``LossTerm``: the student's FSP matrices against the teacher's, nothing else.

Forward hooks on the student's sections capture each section's (input, output) maps during
the loop's own forward pass, so the student is not run twice per batch. The teacher's matrices
come from the client's cache when it holds the batch's samples (``on_batch`` names them), else
from a teacher forward, stored in the cache for the next epochs and rounds.

With ``probe_head`` the classifier also learns, by cross-entropy, from the last section's map
detached from the body: the body's gradients stay the FSP loss's alone (the paper's stage 1),
and stage 2 starts from a classifier fitted to the transferred features instead of a random one
(linear probing before fine-tuning, Kumar et al., arXiv:2202.10054).
"""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fedlite.train.fsp.cache import TeacherMatrices
from fedlite.train.fsp.matrix import Pair, fsp_loss, fsp_matrices


def sections_of(model: nn.Module, role: str) -> nn.ModuleList:
    sections = getattr(model, "sections", None)
    if not isinstance(sections, nn.ModuleList) or not len(sections):
        raise ValueError(f"FSP: the {role} ({type(model).__name__}) has no `sections`; FSP "
                         "needs a sectioned ResNet (resnet8, resnet14, resnet20, resnet26)")
    return sections


class FspTerm:
    """Loss term (``task_loss=False``) and callback (its metrics); a context manager that
    removes its hooks on exit, as the student model object is reused across rounds."""

    def __init__(self, student: nn.Module, teacher: nn.Module, *, form: str = "mean",
                 cache: TeacherMatrices | None = None, probe_head: bool = False) -> None:
        if probe_head and not callable(getattr(student, "head", None)):
            raise ValueError(f"FSP: fsp.probe-head needs a student with `head(map)` (the "
                             f"library's ResNets), not {type(student).__name__}")
        self.teacher, self.form, self.cache, self.probe_head = teacher, form, cache, probe_head
        self._pairs: list[Pair] = []
        self._index: Tensor | None = None
        self._hooks = [section.register_forward_hook(self._capture)
                       for section in sections_of(student, "student")]
        self.loss_sum, self.probe_sum, self.batches, self.seconds = 0.0, 0.0, 0, 0.0

    def _capture(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        if torch.is_grad_enabled():  # the training forward, not a no-grad selection pass
            self._pairs.append((inputs[0], output))

    def on_batch(self, index: Tensor | None) -> None:
        self._index = index

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        start = time.perf_counter()
        student, self._pairs = self._pairs, []
        loss = fsp_loss(self._teacher_matrices(x), fsp_matrices(student), self.form)
        self.loss_sum += float(loss.detach())
        if self.probe_head:
            probe = F.cross_entropy(model.head(student[-1][1].detach()), y)
            self.probe_sum += float(probe.detach())
            loss = loss + probe
        self.batches += 1
        self.seconds += time.perf_counter() - start  # teacher (or cache) + matrices + loss
        return loss

    def _teacher_matrices(self, x: Tensor) -> list[Tensor]:
        index, self._index = self._index, None
        cache = self.cache if index is not None else None  # a gated batch: samples unknown
        found = cache.lookup(index) if cache is not None else None
        if found is not None:
            return found
        with torch.no_grad():
            _, pairs = self.teacher.forward_sections(x)
            matrices = fsp_matrices(pairs)
        if cache is not None:
            cache.store(index, matrices)
        return matrices

    def on_epoch_end(self, epoch: int) -> None:
        pass

    def on_round_end(self) -> dict[str, float]:
        batches = max(self.batches, 1)
        metrics = {"fsp-loss": self.loss_sum / batches, "fsp-seconds": self.seconds}
        if self.probe_head:
            metrics["fsp-probe-loss"] = self.probe_sum / batches
        return metrics

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks, self._pairs = [], []

    def __enter__(self) -> FspTerm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
