"""The client's continual round: task boundary bookkeeping, then the one training loop twice
(first model with prototype replay, second model by two-teacher distillation).

At the first round a client trains in task t > 0, the arrays it receives are the global model
that ended task t-1. With them it (1) selects one prototype per class of the finished tasks from
its own data, the last use of that data, (2) snapshots the old head (embedding module +
classifier, ~13k floats) that the augmentation vectors are fitted through for the rest of
task t, and (3) draws the new classes' vectors. Everything persists in ``state`` (context.state).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import MutableMapping

import numpy as np
import torch
from torch import Tensor, nn

from fedlite.config import RunConfig
from fedlite.continual import augment, memory as mem
from fedlite.continual.losses import (OldHeadKD, PrototypeAnchor, PrototypeReplay, ProximalTerm,
                                      TwoTeacherKD, freeze)
from fedlite.continual.model import Branch, ContinualNet
from fedlite.continual.tasks import TaskPlan, task_plan
from fedlite.data import ClientData
from fedlite.federation import derive_seed
from fedlite.train import TrainResult, TrainSettings, train
from fedlite.train.loop import scaled_lr_groups

log = logging.getLogger(__name__)
P = mem.PREFIX


def _scalar(value) -> float:
    # Scalars are stored as shape-(1,) arrays: a 0-d array does not survive Flower's
    # ArrayRecord round trip through context.state as 0-d.
    return float(np.asarray(value).reshape(-1)[0])


def task_data(x: np.ndarray, y: np.ndarray, classes, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """The samples of ``classes``, at most ``cap`` per class (first ones; 0 = all)."""
    index = [np.flatnonzero(y == c)[:cap or None] for c in classes]
    keep = np.sort(np.concatenate(index)) if index else np.zeros(0, dtype=np.int64)
    return x[keep], y[keep]


class OldHead(nn.Module):
    """The old task's embedding module + classifier, frozen, masked to the old classes."""

    def __init__(self, teacher: Branch) -> None:
        super().__init__()
        self.embed = copy.deepcopy(teacher.embed)
        self.classifier = copy.deepcopy(teacher.classifier)
        self.seen = teacher.seen
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, features: Tensor) -> Tensor:
        return Branch.mask(self, self.classifier(self.embed(features)))  # the teacher's rule


def _head_arrays(teacher: Branch) -> dict[str, np.ndarray]:
    modules = {"embed": teacher.embed, "classifier": teacher.classifier}
    return {f"{P}old-head/{name}.{k}": v.detach().cpu().numpy().copy()
            for name, module in modules.items() for k, v in module.state_dict().items()}


def old_head(teacher: Branch, state: MutableMapping[str, np.ndarray], classes) -> OldHead:
    head = OldHead(teacher)
    for name in ("embed", "classifier"):
        module = getattr(head, name)
        module.load_state_dict({k: torch.as_tensor(state[f"{P}old-head/{name}.{k}"])
                                for k in module.state_dict()})
    mask = torch.zeros(teacher.num_classes, dtype=torch.bool)
    mask[list(classes)] = True
    head.seen = mask
    return head.cpu()


def adam(lr: float, head_scale: float = 1.0):
    """The student's optimizer: feature regression converges several times faster with Adam
    than with the run's SGD (relative error 0.08 vs 0.33 after four epochs on Fashion-MNIST).
    The head (embedding module + classifier, copied from the teacher each round) learns at
    ``lr * head_scale``: distillation only fine-tunes it, and at the full rate it drifts from
    the teacher's old-class boundaries (seed 1: 5.3 points below the teacher vs 3.9 at 0.1)."""
    def make(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
        in_head = lambda name: name.split(".")[0] in ("embed", "classifier")
        return torch.optim.Adam(scaled_lr_groups(model, in_head, lr, head_scale), lr=lr)
    return make


def reuse_head(student: Branch, teacher: Branch) -> None:
    """The student starts each round from the teacher's embedding module and classifier (same
    shapes; SimKD, Chen et al. CVPR 2022): its extractor maps inputs into the teacher's feature
    space, and the distillation then fine-tunes the head to the student's own features."""
    student.embed.load_state_dict(teacher.embed.state_dict())
    student.classifier.load_state_dict(teacher.classifier.state_dict())


def cross_boundary(model: ContinualNet, x: np.ndarray, y: np.ndarray, cfg: RunConfig,
                   plan: TaskPlan, task: int, server_round: int, client_id: int,
                   device, state: MutableMapping[str, np.ndarray]) -> dict[str, float]:
    """Prototypes for every finished class not yet in memory, the old head, new vectors."""
    c = cfg.continual
    teacher = model.teacher
    old_classes = plan.seen_classes(task - 1)
    teacher.set_seen(old_classes)
    memory = mem.load(state)
    have = set(memory.labels.tolist()) if memory is not None else set()
    todo = [k for k in old_classes if k not in have]
    cap_x, cap_y = task_data(x, y, todo, c.max_samples_per_class)
    new, missing, radius = mem.select(teacher, cap_x, cap_y, todo,
                                      class_mean=c.method == "pass", device=device)
    if missing:
        log.warning("fedlite.continual: client %d holds no sample of old classes %s: no "
                    "prototype for them (counted in continual-missing-prototypes)",
                    client_id, missing)
    if P + "radius" not in state and radius > 0:  # PASS: the radius of the first task only
        state[P + "radius"] = np.asarray([radius], dtype=np.float32)
    if len(new):
        mem.store(state, mem.merge(memory, new))
        if c.method == "adaptive":
            generator = torch.Generator().manual_seed(derive_seed(cfg.seed, server_round,
                                                                  client_id, 4))
            fresh = augment.init_vectors(len(new), c.vectors_per_class, new.features.shape[1],
                                         generator)
            old = state.get(P + "vectors")
            state[P + "vectors"] = (fresh if old is None else
                                    torch.cat([torch.as_tensor(old), fresh])).numpy()
    state.update(_head_arrays(teacher))
    return {"continual-missing-prototypes": float(len(missing))}


def continual_round(model: ContinualNet, client: ClientData, cfg: RunConfig, server_round: int,
                    client_id: int, settings: TrainSettings, device,
                    state: MutableMapping[str, np.ndarray] | None) -> TrainResult:
    if not isinstance(model, ContinualNet):
        raise TypeError("continual.enabled needs model = \"continual-cnn\" (feature extractor + "
                        f"embedding + classifier, and a student); got {type(model).__name__}")
    state = {} if state is None else state
    c = cfg.continual
    plan = task_plan(cfg, model.teacher.num_classes)
    task = plan.task_of_round(server_round)
    teacher, student = model.teacher, model.student
    metrics: dict[str, float] = {"continual-task": float(task)}
    last = int(_scalar(state[P + "task"])) if P + "task" in state else -1
    if c.method != "finetune" and task > 0 and last < task:
        metrics |= cross_boundary(model, client.train_x, client.train_y, cfg, plan, task,
                                  server_round, client_id, device, state)
    points, generator = None, torch.Generator().manual_seed(settings.seed ^ 0x5EED)
    kd_head = None
    memory = mem.load(state)
    radius = _scalar(state.get(P + "radius", 0.0)) * c.radius_scale
    if c.method != "finetune" and task > 0:
        if memory is None or len(memory) == 0 or radius <= 0:
            log.warning("fedlite.continual: client %d has an empty prototype memory in task %d: "
                        "it trains without replay (counted in continual-empty-memory)",
                        client_id, task)
            metrics["continual-empty-memory"] = 1.0
        elif c.method == "pass":
            def points(n: int, m=memory, r=radius):
                return augment.gaussian_points(m, r, n, generator)
        else:
            bound = radius * float(np.sqrt(memory.features.shape[1]))
            head = old_head(teacher, state, plan.seen_classes(task - 1))
            kd_head = head  # the old head also anchors the old classes' logits (OldHeadKD)
            vectors, fit = augment.fit_vectors(torch.as_tensor(state[P + "vectors"]), memory,
                                               head, bound, steps=c.augment_steps,
                                               lr=c.augment_lr)
            state[P + "vectors"] = vectors.numpy()
            metrics |= fit

            def points(n: int, m=memory, v=vectors, r=bound):
                return augment.adaptive_points(m, v, r, n, generator)
        metrics["continual-memory-classes"] = float(0 if memory is None else len(memory))
    x, y = task_data(client.train_x, client.train_y, plan.tasks[task], c.max_samples_per_class)
    if len(y) == 0:
        log.warning("fedlite.continual: client %d holds no sample of task %d: it sends its "
                    "arrays with weight 0 (counted in continual-empty-client)", client_id, task)
        metrics["continual-empty-client"] = 1.0
    seen = plan.seen_classes(task)
    model.set_seen(seen)
    terms = []
    if c.method == "adaptive" or (c.method == "pass" and points is not None):
        terms.append(PrototypeReplay(points, proto_weight=c.proto_weight,
                                     contrast_weight=c.contrast_weight if c.method == "adaptive"
                                     else 0.0, temperature=c.contrast_temperature))
    if c.method == "adaptive" and kd_head is not None and c.old_kd_weight > 0:
        terms.append(OldHeadKD(kd_head, kd_head.seen, points, weight=c.old_kd_weight,
                               temperature=c.kd_temperature))
    frozen = c.freeze_extractor and c.method != "finetune" and task > 0
    freeze(teacher.features, frozen)
    try:
        result = train(teacher, x, y, settings, device=device, loss_terms=terms)
        if c.student:
            reuse_head(student, teacher)
            kd = TwoTeacherKD(teacher, points if c.method != "finetune" else None,
                              c.kd_temperature)
            # The student's head (the teacher's, fine-tuned) keeps the same anchor to the old head.
            student_terms = [kd, *(t for t in terms if isinstance(t, OldHeadKD))]
            # Adaptive only: the baselines' students keep the recipe they were measured with.
            adaptive = c.method == "adaptive"
            if adaptive and memory is not None and memory.samples is not None \
                    and c.student_anchor_weight > 0:
                student_terms.append(PrototypeAnchor(teacher, memory.samples,
                                                     c.student_anchor_weight, c.kd_temperature))
            if adaptive and c.student_prox > 0:
                student_terms.append(ProximalTerm(student.features, c.student_prox))
            head_scale = c.student_head_lr_scale if adaptive else 1.0
            # More epochs than the teacher: after the teacher's epochs the student's feature
            # regression is still underfit, and old-class inputs near the head's boundaries flip.
            student_settings = dataclasses.replace(
                settings, seed=settings.seed ^ 1, epochs=settings.epochs * c.student_epochs_scale)
            distilled = train(student, x, y, student_settings, device=device, task_loss=False,
                              loss_terms=student_terms,
                              make_optimizer=adam(c.student_lr, head_scale))
            metrics |= {"continual-student-loss": distilled.loss,
                        "continual-student-train-accuracy": distilled.accuracy}
    finally:  # the model object is reused by the next client in this worker
        freeze(teacher.features, False)
        freeze(student.features, False)
    state[P + "task"] = np.asarray([task])
    result.method_metrics.update(metrics)
    return result
