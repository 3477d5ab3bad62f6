"""Prototype augmentation in feature space: learnable bounded vectors (this method) and
Gaussian noise (the PASS-style baseline).

Adaptive: each old prototype p_c owns M learnable vectors v; an augmented point is
p_c + delta(v) with delta(v) = R * tanh(|v|) * v / |v|, so |delta| <= R always (the configured
range). The vectors are fitted through the OLD task's head (embedding + classifier as they were
when the task started): cross-entropy keeps every point in its class, and a spread term pushes
points outward, so direction and size are learned (KR 10-2024-0141487, claims 4 and 5).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fedlite.continual.memory import Prototypes


def bounded(vectors: Tensor, radius: float) -> Tensor:
    """Offsets of norm at most ``radius``, in the direction of ``vectors``."""
    norm = vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return radius * torch.tanh(norm) * vectors / norm


def keep_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Hinge on the old classifier's margin: only points about to leave their class pull
    back; points well inside it are free to spread (a plain CE would reward moving them
    to over-confident extremes, away from the decision boundaries replay must hold)."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.scatter(1, labels[:, None], float("-inf")).max(1).values
    return F.relu(1.0 - (true - other)).mean()


def init_vectors(count: int, per_class: int, dim: int, generator: torch.Generator) -> Tensor:
    """Random directions at tanh(|v|) = 0.5: points start half-way to the edge of the range."""
    v = torch.randn(count, per_class, dim, generator=generator)
    return v / v.norm(dim=-1, keepdim=True) * float(torch.atanh(torch.tensor(0.5)))


def fit_vectors(vectors: Tensor, memory: Prototypes, old_head: nn.Module, radius: float, *,
                steps: int, lr: float, spread: float = 0.1) -> tuple[Tensor, dict[str, float]]:
    """Adam on the vectors only; ``old_head(features) -> logits`` is frozen."""
    v = vectors.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([v], lr=lr)
    labels = memory.labels.repeat_interleave(v.shape[1])
    for p in old_head.parameters():
        p.requires_grad_(False)
    for _ in range(steps):
        delta = bounded(v, radius)
        points = (memory.features[:, None, :] + delta).reshape(-1, v.shape[-1])
        loss = keep_loss(old_head(points), labels) \
            - spread * (delta.norm(dim=-1) / radius).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        delta = bounded(v, radius)
        points = (memory.features[:, None, :] + delta).reshape(-1, v.shape[-1])
        kept = float((old_head(points).argmax(1) == labels).float().mean())
        reach = float((delta.norm(dim=-1) / radius).mean())
    return v.detach(), {"continual-aug-label-kept": kept, "continual-aug-reach": reach}


def adaptive_points(memory: Prototypes, vectors: Tensor, radius: float, count: int,
                    generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``count`` augmented points: a random prototype plus a random convex mix of two of its
    learned offsets. A convex mix of points inside the ball stays inside it, and the mixing
    gives a continuum of points instead of M fixed ones (a head fitted on a few fixed points
    overfits them). Detached: the vectors learn only through the old classifier."""
    delta = bounded(vectors, radius).detach()
    k = torch.randint(len(memory), (count,), generator=generator)
    i = torch.randint(vectors.shape[1], (count,), generator=generator)
    j = torch.randint(vectors.shape[1], (count,), generator=generator)
    a = torch.rand(count, 1, generator=generator)
    offsets = a * delta[k, i] + (1 - a) * delta[k, j]
    return memory.features[k] + offsets, memory.labels[k]


def gaussian_points(memory: Prototypes, radius: float, count: int,
                    generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """PASS protoAug: ``count`` prototypes drawn at random, plus N(0, I) * r."""
    index = torch.randint(len(memory), (count,), generator=generator)
    noise = torch.randn(count, memory.features.shape[1], generator=generator) * radius
    return memory.features[index] + noise, memory.labels[index]
