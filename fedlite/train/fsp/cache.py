"""The teacher's FSP matrices cached by sample: the teacher is frozen, so they never change.

Yim et al. (CVPR 2017) cache the teacher's matrices; stage 1 then costs the student's forward
and backward only. A client's cache holds, for each of its training samples, one float32 matrix
per section, on the training device; it is filled during the first stage-1 epoch (the teacher
runs on the batches as they come) and read from then on, in every epoch and round. Entries are
kept by sample index into the round's training set, because batches are reshuffled each epoch.

Memory bound: N samples x sum over sections of m_i * n_i values x 4 bytes. For resnet8 (sections
16x16, 16x32, 32x64) that is 2,816 values, 11 KiB a sample: 11 MiB for a client of 1,000
samples, 660 MiB for one holding all 60,000 Fashion-MNIST images. All clients' caches in a worker
process share ``BUDGET_BYTES`` (1 GiB): the least recently used clients' caches are dropped to
make room, and a client whose cache alone would exceed the budget gets none; its rounds recompute
the teacher's matrices, as with ``fsp.cache-teacher = false``.

A cache is found again by the teacher object (one per checkpoint, mtime, architecture and
device: ``fedlite.train.fsp.teacher``) and the client's training set (client id, sample count
and a hash of its bytes), so it never serves another run's data. The indices are into the
training set as FSP attaches to the round: a method of one's own that narrows ``x`` must come
before FSP in the method table (fedlite's own that do, continual learning, refuse FSP).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fedlite.train.fsp.matrix import fsp_matrices

BUDGET_BYTES = 1 << 30  # every client's cache in one worker process, together

_caches: OrderedDict[tuple, TeacherMatrices] = OrderedDict()  # least recently used first


class TeacherMatrices:
    """One client's teacher matrices by sample index: ``lookup`` a batch once ``store`` has
    seen every one of its samples."""

    def __init__(self, shapes: Sequence[tuple[int, ...]], samples: int,
                 device: torch.device | str, dtype: torch.dtype = torch.float32) -> None:
        self.matrices = [torch.empty((samples, *shape), device=device, dtype=dtype)
                         for shape in shapes]
        self.filled = torch.zeros(samples, dtype=torch.bool)  # on the CPU, as the indices are

    @property
    def nbytes(self) -> int:
        return sum(m.numel() * m.element_size() for m in self.matrices)

    def lookup(self, index: Tensor) -> list[Tensor] | None:
        if not bool(self.filled[index].all()):
            return None
        index = index.to(self.matrices[0].device)
        return [m[index] for m in self.matrices]

    def store(self, index: Tensor, matrices: Sequence[Tensor]) -> None:
        at = index.to(self.matrices[0].device)
        for stored, computed in zip(self.matrices, matrices, strict=True):
            stored[at] = computed
        self.filled[index] = True


def cache_bytes(shapes: Sequence[tuple[int, ...]], samples: int, itemsize: int = 4) -> int:
    """The memory bound of one client's cache."""
    return samples * sum(int(np.prod(shape)) for shape in shapes) * itemsize


def teacher_matrices(teacher: nn.Module, client_id: int, x: Any,
                     budget: int = BUDGET_BYTES) -> TeacherMatrices | None:
    """This client's cache (a new, empty one the first time), or None when it cannot fit
    ``budget``: the caller then recomputes the teacher's matrices for every batch."""
    data = np.ascontiguousarray(x.detach().cpu().numpy() if isinstance(x, Tensor) else x)
    key = (teacher, client_id, len(data), hashlib.blake2b(data.view(np.uint8)).hexdigest())
    if key in _caches:
        _caches.move_to_end(key)
        return _caches[key]
    device = next(teacher.parameters()).device
    with torch.no_grad():  # one sample: the sections' matrix shapes
        _, pairs = teacher.forward_sections(torch.as_tensor(data[:1]).to(device))
    shapes = [tuple(g.shape[1:]) for g in fsp_matrices(pairs)]
    need = cache_bytes(shapes, len(data))
    if need > budget:
        return None
    while _caches and need + sum(c.nbytes for c in _caches.values()) > budget:
        _caches.popitem(last=False)
    _caches[key] = TeacherMatrices(shapes, len(data), device)
    return _caches[key]


def clear() -> None:
    """Drop every cached matrix (tests; a worker keeps its caches for its lifetime)."""
    _caches.clear()
