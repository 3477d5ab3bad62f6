"""FSP matrices (Yim et al., CVPR 2017): the flow between a section's first and last maps.

G_{i,j} = sum_{s,t} F1_{s,t,i} * F2_{s,t,j} / (h*w) is a Gram matrix *across* two layers; the
FSP loss is the squared Euclidean distance between teacher and student matrices, summed over
sections and averaged over the batch.

Two forms (run-config key ``fsp.loss``):
- ``mean`` (the default): each section's squared distance is divided by its number of entries
  (m*n), i.e. lambda_i = 1 / (m_i * n_i), as RepDistiller and KD-Zoo do: with the raw sum the
  64x64 section outweighs the 16x16 one 16 times and the loss is in the thousands, so SGD either
  diverges or (at lr 1e-3) stalls and leaves a student that stage 2 cannot train (measured on
  digits, resnet8 -> resnet14). Per entry, the sections weigh equally.
- ``sum``: the patent's and the paper's loss with equal lambda_i = 1 (KR 10-2063377; Yim et al.,
  CVPR 2017): the plain squared Euclidean distance of each section's matrices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

from fedlite.train.fsp.settings import LOSS_FORMS

Pair = tuple[Tensor, Tensor]


def fsp_matrix(first: Tensor, last: Tensor) -> Tensor:
    """Per-sample FSP matrices (N, m, n) of maps (N, m, h, w) and (N, n, h', w').

    The larger map is max-pooled to the smaller spatial size (a section's first map is the
    previous section's output, twice as large when the section starts with a stride of 2).
    """
    if first.shape[-2:] != last.shape[-2:]:
        size = (min(first.shape[-2], last.shape[-2]), min(first.shape[-1], last.shape[-1]))
        first, last = pooled_to(first, size), pooled_to(last, size)
    h, w = first.shape[-2:]
    return torch.bmm(first.flatten(2), last.flatten(2).transpose(1, 2)) / (h * w)


def pooled_to(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """``maps`` max-pooled to ``size``. Where the size divides the map's (a stride-2 section:
    twice as large) a plain max pool with that ratio as kernel and stride gives the adaptive
    pool's windows, values and gradients, and runs about a fifth faster on a CPU."""
    h, w = maps.shape[-2:]
    if (h, w) == size:
        return maps
    if h % size[0] == 0 and w % size[1] == 0:
        ratio = (h // size[0], w // size[1])
        return F.max_pool2d(maps, ratio, ratio)
    return F.adaptive_max_pool2d(maps, size)


def fsp_matrices(pairs: Sequence[Pair]) -> list[Tensor]:
    return [fsp_matrix(first, last) for first, last in pairs]


def fsp_loss(teacher: Sequence[Tensor], student: Sequence[Tensor], form: str = "mean") -> Tensor:
    """(1/N) sum_x sum_sections lambda_i ||G_T(x) - G_S(x)||^2, lambda_i = 1 / (m*n) for
    ``form="mean"`` (sections weigh equally per entry), 1 for ``form="sum"`` (the patent's)."""
    if form not in LOSS_FORMS:
        raise ValueError(f"fsp.loss: choose one of {', '.join(LOSS_FORMS)}, got {form!r}")
    if len(teacher) != len(student):
        raise ValueError(f"FSP: the teacher has {len(teacher)} sections, the student "
                         f"{len(student)}; both need the same number of sections")
    total = student[0].new_zeros(())
    for index, (g_t, g_s) in enumerate(zip(teacher, student, strict=True)):
        if g_t.shape[1:] != g_s.shape[1:]:
            raise ValueError(
                f"FSP: section {index + 1} matrices differ: teacher {tuple(g_t.shape[1:])}, "
                f"student {tuple(g_s.shape[1:])} (channels of its first x last map); grow "
                "networks in depth with equal section widths (resnet8 -> 14 -> 20 -> 26)")
        squared = (g_t - g_s).pow(2).flatten(1)
        total = total + (squared.mean(1) if form == "mean" else squared.sum(1)).mean()
    return total
