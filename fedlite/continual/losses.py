"""Loss terms the training loop adds (``LossTerm``: ``(model, x, y, logits) -> Tensor``).

``PrototypeReplay`` (first model): augmented old-class points (embeddings; feature vectors in the
ablation, which then go through the CURRENT embedding module) meet the (grown) classifier next
to the new-class batch; cross-entropy keeps old classes classifiable, and a supervised
contrastive loss over the joint embedding pulls each class together and pushes classes apart
(KR 10-2024-0141487, claim 7; the supervised contrastive loss of Khosla et al.,
https://arxiv.org/abs/2004.11362).

``TwoTeacherKD`` (second model): teacher 1 = the first model's feature extractor/embedding
(feature MSE + embedding cosine), teacher 2 = its classifier (KL at temperature T), on the
current batch and on the augmented old-class points. Two more terms keep the student's
extractor on the old classes, whose data it never sees again: ``PrototypeAnchor`` matches the
teacher on the stored prototype samples (features, and logits through the student's head),
``fedlite.train.proximal.ProximalTerm`` holds the extractor near the weights it started the
round with.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fedlite.continual.model import Branch

PointSource = Callable[[int], tuple[Tensor, Tensor]]  # batch size -> (points, labels)


def supervised_contrastive(z: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """SupCon (Khosla et al. 2020) on L2-normalised embeddings; anchors without a positive
    are left out."""
    z = F.normalize(z, dim=1)
    similarity = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    similarity = similarity.masked_fill(self_mask, -1e9)
    log_prob = similarity - torch.logsumexp(similarity, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    count = positive.sum(1)
    has = count > 0
    if not has.any():
        return z.new_zeros(())
    mean_log_prob = (log_prob.masked_fill(~positive, 0).sum(1)[has]) / count[has]
    return -mean_log_prob.mean()


def embed_points(model: Branch, points: Tensor, space: str) -> tuple[Tensor, Tensor]:
    """(embedding, masked logits) of augmented points given in ``space``."""
    if space == "embedding":
        return points, model.mask(model.classifier(points))
    return model.head(points)


class PrototypeReplay:
    def __init__(self, points: PointSource | None, *, proto_weight: float, contrast_weight: float,
                 temperature: float, space: str = "feature") -> None:
        self.points, self.proto_weight = points, proto_weight
        self.contrast_weight, self.temperature = contrast_weight, temperature
        self.space = space

    def __call__(self, model: Branch, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        _, z = model.cache
        loss = logits.new_zeros(())
        labels = y
        if self.points is not None:
            points, point_labels = self.points(len(y))
            z_aug, logits_aug = embed_points(model, points.to(z.device), self.space)
            point_labels = point_labels.to(y.device)
            loss = loss + self.proto_weight * F.cross_entropy(logits_aug, point_labels)
            z, labels = torch.cat([z, z_aug]), torch.cat([y, point_labels])
        if self.contrast_weight:
            loss = loss + self.contrast_weight * supervised_contrastive(z, labels, self.temperature)
        return loss


def kl_at(student_logits: Tensor, teacher_logits: Tensor, seen: Tensor | None,
          temperature: float) -> Tensor:
    """Hinton KD on the seen classes' logits: KL(teacher || student) * T^2."""
    if seen is not None:
        seen = seen.to(student_logits.device)
        student_logits, teacher_logits = student_logits[:, seen], teacher_logits[:, seen]
    return F.kl_div(F.log_softmax(student_logits / temperature, 1),
                    F.softmax(teacher_logits / temperature, 1),
                    reduction="batchmean") * temperature ** 2


class OldHeadKD:
    """LwF-style distillation from the old classifier (frozen snapshot at the task start) on the
    old classes' logits, for the new batch and for augmented old points: the embedding module
    may adjust to the new task, but the old classes' decision regions move only as far as the
    new classes need. In the embedding space the old classifier reads the current embeddings
    (of the new batch's features and of the prototypes); in the feature-space ablation the old
    head (old embedding module + classifier) reads the features. The copied student head gets
    the same term; it never reaches the student's extractor."""

    def __init__(self, old_head: nn.Module, old: Tensor, points: PointSource | None, *,
                 weight: float, temperature: float, space: str = "feature") -> None:
        self.old_head, self.old, self.points = old_head, old, points
        self.weight, self.temperature, self.space = weight, temperature, space

    def __call__(self, model: Branch, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        f, _ = model.cache
        f = f.detach()  # the head's term: a student's extractor learns by feature matching only
        inputs = model.embed(f) if self.space == "embedding" else f
        if self.points is not None:
            inputs = torch.cat([inputs, self.points(len(y))[0].to(f.device)])
        current = embed_points(model, inputs, self.space)[1]
        return self.weight * kl_at(current, self.old_logits(inputs.detach()), self.old,
                                   self.temperature)

    @torch.no_grad()
    def old_logits(self, inputs: Tensor) -> Tensor:
        # The snapshot is taken on the CPU; it follows the inputs to the training device.
        return self.old_head.to(inputs.device)(inputs)


def relative_mse(student: Tensor, teacher: Tensor) -> Tensor:
    """Feature MSE over the teacher's mean square: scale-free, so one weight fits every layer."""
    return F.mse_loss(student, teacher) / teacher.pow(2).mean().clamp_min(1e-8)


class TwoTeacherKD:
    """``points``: augmented old-class points in ``space``; ``probes``: feature vectors around
    the stored prototypes (embedding-space points skip the student's embedding module, so the
    probes are what shows it the old classes' feature region, with the teacher's embedding and
    logits there as targets)."""

    def __init__(self, teacher: Branch, points: PointSource | None, temperature: float,
                 space: str = "feature", probes: PointSource | None = None) -> None:
        self.teacher, self.points, self.temperature = teacher, points, temperature
        self.space, self.probes = space, probes

    def __call__(self, model: Branch, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        f_s, _ = model.cache
        with torch.no_grad():
            self.teacher.eval()
            t_logits = self.teacher(x)
            f_t, z_t = self.teacher.cache
        # Teacher 1 trains the student's extractor alone: it learns to map inputs into the
        # teacher's feature space (relative error, scale-free), so the teacher's prototype
        # points are valid student features and the head terms cannot drag it to the new task.
        loss = relative_mse(f_s, f_t)
        z_s, l_s = model.head(f_s.detach())
        loss = loss + (1 - F.cosine_similarity(z_s, z_t)).mean() \
            + kl_at(l_s, t_logits, model.seen, self.temperature)
        if self.points is not None:
            with torch.no_grad():  # the teacher's points: no gradient reaches the teacher
                points = self.points(len(y))[0].to(x.device)
                z_tp, l_tp = embed_points(self.teacher, points, self.space)
            z_sp, l_sp = embed_points(model, points, self.space)
            if self.space == "feature":  # embedding-space points are shared by both heads
                loss = loss + (1 - F.cosine_similarity(z_sp, z_tp)).mean()
            loss = loss + kl_at(l_sp, l_tp, model.seen, self.temperature)
        if self.probes is not None:
            probes = self.probes(len(y))[0].to(x.device)
            with torch.no_grad():
                z_tp, l_tp = self.teacher.head(probes)
            z_sp, l_sp = model.head(probes)
            loss = loss + (1 - F.cosine_similarity(z_sp, z_tp)).mean() \
                + kl_at(l_sp, l_tp, model.seen, self.temperature)
        return loss


class PrototypeAnchor:
    """The student matches the teacher on the stored prototype samples (one real sample per old
    class), the only old-class inputs a client still has: its extractor by the teacher's
    features, its head by the teacher's seen-class logits (KL at ``temperature``) on the
    student's own detached features, so the head learns where the student's features of the
    old classes actually fall."""

    def __init__(self, teacher: Branch, samples: Tensor, weight: float,
                 temperature: float, mix_weight: float = 0.0,
                 generator: torch.Generator | None = None) -> None:
        self.teacher, self.samples, self.weight = teacher, samples, weight
        self.temperature = temperature
        self.mix_weight, self.generator = mix_weight, generator
        self.target: tuple[Tensor, Tensor] | None = None

    def __call__(self, model: Branch, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        if self.target is None:  # once: the teacher does not change while the student trains
            self.samples = self.samples.to(x.device)
            with torch.no_grad():
                self.teacher.eval()
                features = self.teacher.features(self.samples)
                self.target = features, self.teacher.head(features)[1]
        f_t, l_t = self.target
        f_s = model.features(self.samples)
        _, l_s = model.head(f_s.detach())
        kd = kl_at(l_s, l_t, model.seen, self.temperature)
        loss = self.weight * (relative_mse(f_s, f_t) + kd)
        if self.mix_weight > 0:
            loss = loss + self.mix_weight * self.mixed(model, x)
        return loss

    def mixed(self, model: Branch, x: Tensor) -> Tensor:
        """Both teachers on inputs between the stored samples and the batch: each batch input
        blended with a random stored sample, at least half of it the sample; the student's
        features regress the teacher's, and its logits, computed through its own extractor,
        match the teacher's (KL on the seen classes). One sample a class is a single point of
        an old class's input region. Trained on the current task's inputs alone, the student's
        extractor can move each old class's features as a whole towards the new classes (on
        the teacher's head, that per-class shift alone reproduces the student's old-class
        accuracy); the logits' gradient on the blends holds the old classes' side of the
        boundary. At full weight it costs some seeds' new classes as much; at the default 0.3
        it narrowed the gap on most tuning seeds (docs/experiments/continual.md)."""
        n = len(x)
        pick = torch.randint(len(self.samples), (n,), generator=self.generator)
        share = 0.5 + 0.5 * torch.rand(n, generator=self.generator)
        share = share.to(x.device).view(-1, *([1] * (x.dim() - 1)))
        blend = share * self.samples[pick.to(x.device)] + (1 - share) * x
        with torch.no_grad():
            self.teacher.eval()
            target = self.teacher.features(blend)
            t_logits = self.teacher.head(target)[1]
        f_s = model.features(blend)
        return relative_mse(f_s, target) \
            + kl_at(model.head(f_s)[1], t_logits, model.seen, self.temperature)


def freeze(module: nn.Module, frozen: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(not frozen)
