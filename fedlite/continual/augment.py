"""Prototype augmentation: learnable bounded vectors (this method) and Gaussian noise (the
PASS-style baseline).

Adaptive: each old prototype owns M learnable vectors v; an augmented point is
b_c + delta(v) with delta(v) = R * tanh(|v|) * v / |v|, so |delta| <= R always (the configured
range). As claimed (KR 10-2024-0141487, claims 4 and 5), b_c is the prototype's representation in
the EMBEDDING space and the vectors are fitted through the OLD task's classifier: a hinge keeps
every point in its class, and a spread term pushes points outward, so direction and size are
learned. The classifier is linear, so each class's region of the embedding space is convex: a
convex mix of a prototype's kept points is kept too. The feature-space variant (b_c = the
embedding module's input, fitted through the old embedding module + classifier) is kept for the
ablation only: there the old head is not linear and mixes may leave their class.

Fitting runs once, at the task boundary (the old classifier does not change during a task),
until ``keep`` of the points keep their class or the step budget runs out.
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


def label_kept(vectors: Tensor, base: Tensor, labels: Tensor, old_classifier: nn.Module,
               radius: float) -> float:
    """Share of the points base_c + delta(v) that the old classifier assigns to class c."""
    with torch.no_grad():
        points = (base[:, None, :] + bounded(vectors, radius)).reshape(-1, vectors.shape[-1])
        expected = labels.repeat_interleave(vectors.shape[1])
        return float((old_classifier(points).argmax(1) == expected).float().mean())


def fit_vectors(vectors: Tensor, base: Tensor, labels: Tensor, old_classifier: nn.Module,
                radius: float, *, steps: int, lr: float, keep: float, spread: float = 0.1,
                min_steps: int = 20, check_every: int = 10) -> tuple[Tensor, dict[str, float]]:
    """Adam on the vectors only (``old_classifier(points) -> logits`` is frozen): at least
    ``min_steps`` steps (so direction and size are learned even where the random start already
    keeps its class), then until ``keep`` of the points keep their label (checked every
    ``check_every`` steps) or ``steps`` steps are spent."""
    v = vectors.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([v], lr=lr)
    expected = labels.repeat_interleave(v.shape[1])
    for p in old_classifier.parameters():
        p.requires_grad_(False)
    taken = 0
    while taken < steps:
        if taken >= min_steps and taken % check_every == 0 and \
                label_kept(v.detach(), base, labels, old_classifier, radius) >= keep:
            break
        delta = bounded(v, radius)
        points = (base[:, None, :] + delta).reshape(-1, v.shape[-1])
        loss = keep_loss(old_classifier(points), expected) \
            - spread * (delta.norm(dim=-1) / radius).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        taken += 1
    v = v.detach()
    reach = float((bounded(v, radius).norm(dim=-1) / radius).mean())
    return v, {"continual-aug-label-kept": label_kept(v, base, labels, old_classifier, radius),
               "continual-aug-reach": reach, "continual-aug-steps": float(taken)}


def adaptive_points(base: Tensor, labels: Tensor, vectors: Tensor, radius: float, count: int,
                    generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``count`` augmented points: a random prototype's ``base`` plus a random convex mix of
    two of its learned offsets. A convex mix of points inside the ball stays inside it, and the
    mixing gives a continuum of points instead of M fixed ones (a head fitted on a few fixed
    points overfits them). The offsets are detached (the vectors learn only through the old
    classifier); ``base`` may carry gradient (the current embedding of the prototypes)."""
    delta = bounded(vectors, radius).detach()
    k = torch.randint(len(labels), (count,), generator=generator)
    i = torch.randint(vectors.shape[1], (count,), generator=generator)
    j = torch.randint(vectors.shape[1], (count,), generator=generator)
    a = torch.rand(count, 1, generator=generator)
    offsets = a * delta[k, i] + (1 - a) * delta[k, j]
    return base[k] + offsets.to(base.device), labels[k]


def gaussian_points(memory: Prototypes, radius: float, count: int,
                    generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """PASS protoAug: ``count`` prototypes drawn at random, plus N(0, I) * r."""
    index = torch.randint(len(memory), (count,), generator=generator)
    noise = torch.randn(count, memory.features.shape[1], generator=generator) * radius
    return memory.features[index] + noise, memory.labels[index]


def diagonal_points(centres: Tensor, spreads: Tensor, labels: Tensor, count: int,
                    generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``count`` feature vectors around random classes' centres, with each class's own
    per-dimension spread, clipped at 0 (the features are ReLU outputs): the shape of the class's
    feature region that one isotropic radius misses."""
    index = torch.randint(len(labels), (count,), generator=generator)
    noise = torch.randn(count, centres.shape[1], generator=generator) * spreads[index]
    return (centres[index] + noise).clamp_min(0), labels[index]
