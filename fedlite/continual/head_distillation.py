"""The distilled student's head, fitted to the first model's head after the student's epochs.

The student's embedding module and classifier have the first model's shapes and read the same
feature space (the student's extractor regresses the teacher's features), so the best head the
student can have is the teacher's function on the region the test features fall in. During the
student's epochs the head sees that region only through one batch of probes per step, beside
the new task's batches, and on old classes it trails the teacher's head by several points (on
the teacher's own features). This step closes that: many cheap head-only steps (no
convolution runs) on a pool of the teacher's features of the client's current data and of
probes of the old classes' feature region, with the teacher's embedding (teacher 1: relative
MSE and cosine) and logits (teacher 2: KL at the distillation temperature) as the only
targets. The targets are computed once per round: the teacher does not change while the
student trains.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from fedlite.continual.losses import kl_at, relative_mse
from fedlite.continual.model import Branch

POOL_PROBES = 4096  # probes drawn per round: 512 a class at 8 old classes
POOL_CURRENT = 1024  # at most this many of the client's current samples
BATCH = 128  # probes and current features, each, per step


def current_features(teacher: Branch, current: Tensor, generator: torch.Generator) -> Tensor:
    """The teacher's features of at most ``POOL_CURRENT`` of the client's current inputs."""
    device = next(teacher.parameters()).device
    with torch.no_grad():
        teacher.eval()
        pick = torch.randperm(len(current), generator=generator)[:POOL_CURRENT]
        return teacher.features(current[pick].to(device))


def distil_head(student: Branch, teacher: Branch, probes: Callable[[int], tuple[Tensor, Tensor]],
                current: Tensor, *, steps: int, lr: float, temperature: float,
                generator: torch.Generator) -> float:
    """``steps`` Adam steps on the student's embedding module and classifier; ``current``:
    feature vectors of the current data (``current_features``; on the server, probes of its
    classes). Returns the last step's loss."""
    device = next(student.parameters()).device
    with torch.no_grad():  # the pools: (features, teacher's embeddings, teacher's logits)
        teacher.eval()
        features = (probes(POOL_PROBES)[0].to(device), current.to(device))
        # a client holding no sample of the current task fits the head on the probes alone
        pools = [(f, *teacher.head(f)) for f in features if len(f)]
    params = [*student.embed.parameters(), *student.classifier.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    was = student.training
    student.train()
    loss = torch.zeros(())
    for _ in range(steps):
        picks = [torch.randint(len(pool[0]), (BATCH,), generator=generator).to(device)
                 for pool in pools]  # BATCH from each pool
        f, z_t, l_t = (torch.cat([pool[part][index] for pool, index
                                  in zip(pools, picks, strict=True)])
                       for part in range(3))
        z_s, l_s = student.head(f)
        loss = relative_mse(z_s, z_t) + (1 - F.cosine_similarity(z_s, z_t)).mean() \
            + kl_at(l_s, l_t, student.seen, temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    student.train(was)
    return float(loss.detach())
