"""Class-incremental learning as an entry of the method table.

Prototype augmentation with two-teacher distillation (US 2026/0111797 A1, KR 10-2024-0141487,
"Method and apparatus for knowledge distillation using teacher models"; the PASS-style
baseline follows Zhu et al., CVPR 2021). On a client's round it

1. at the first round of a new task, stores one prototype per finished class and snapshots
   the old head (``client.cross_boundary``);
2. narrows the round to the current task's data and the first model (``teacher``), and adds
   the prototype-replay and old-head distillation loss terms;
3. after the loop has trained the first model, trains the smaller second model by
   distillation from it (an ``after`` step; with ``continual.student``).

Everything else a method attaches (a skipping gate, FedProx's term, pFedPara's optimizer)
applies to the first model's training, as it would to any model's.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import torch

from fedlite.continual import augment, class_stats, memory as mem
from fedlite.continual.client import (adam, bound, cross_boundary, old_head, reuse_head,
                                      space_dim, student_probes, task_data)
from fedlite.continual.evaluation import ContinualTracker
from fedlite.continual.head_distillation import POOL_CURRENT, current_features, distil_head
from fedlite.continual.losses import (OldHeadKD, PrototypeAnchor, PrototypeReplay, TwoTeacherKD,
                                      freeze)
from fedlite.continual.model import ContinualNet
from fedlite.continual.settings import ContinualConfig
from fedlite.continual.tasks import check_holders, task_plan
from fedlite.errors import ConfigError
from fedlite.methods import ClientRound, Method, RunSetup
from fedlite.seeding import Stream, derive_seed
from fedlite.train.loop import train
from fedlite.train.proximal import ProximalTerm

log = logging.getLogger(__name__)
P = mem.PREFIX


class Continual(Method):
    name = "continual"
    settings = ContinualConfig
    label = "continual learning"
    server_report_keys = (class_stats.KEY,)

    def active(self, s: ContinualConfig) -> bool:
        return s.enabled

    def refuses(self, s: ContinualConfig, other: str, other_settings: Any) -> str | None:
        if other == "" and not other_settings.federated:
            return ("continual.enabled and federated = false cannot be combined: continual "
                    "learning is judged on the global model, which Local training never builds")
        return None

    def check(self, s: ContinualConfig, setup: RunSetup) -> None:
        """The model kind, the task plan, and that some client holds every task class."""
        if not isinstance(setup.model, ContinualNet):
            raise ConfigError("run config `model`: continual.enabled needs model = "
                              f"\"continual-cnn\", got {setup.model_name!r}")
        plan = task_plan(s, setup.num_rounds, setup.data.dataset.num_classes)
        check_holders(plan, [setup.data.client(i).train_y for i in range(setup.num_clients)])

    def evaluator(self, s: ContinualConfig, setup: RunSetup) -> ContinualTracker:
        return ContinualTracker(s, setup)

    def progress(self, line: dict[str, Any]) -> list[str]:
        if line.get("continual/task") is None:
            return []
        part = f"task {line['continual/task']}"
        if line.get("continual/student-accuracy") is not None:
            part += f"  student {100 * line['continual/student-accuracy']:.2f}%"
        return [part]

    def has_server_step(self, s: ContinualConfig) -> bool:
        return takes_server_step(s)

    def server_step(self, s: ContinualConfig, model: ContinualNet, server_round: int,
                    setup: RunSetup, replies) -> dict[str, float]:
        """The student's head, fitted once more after aggregation, towards the aggregated first
        model's head, on probes from the classes' pooled feature statistics (``class_stats``):
        the average of heads each fitted to a client's own first model is not the head that
        fits the averaged first model."""
        teacher, student = model.teacher, model.student
        stats = class_stats.pooled(replies, teacher.num_classes, space_dim(teacher, "feature"))
        if stats is None:
            return {}
        centres, spreads, labels = stats
        plan = task_plan(s, setup.num_rounds, teacher.num_classes)
        model.set_seen(plan.seen_classes(plan.task_of_round(server_round)))
        generator = torch.Generator().manual_seed(
            derive_seed(setup.seed, server_round, Stream.SERVER_HEAD))

        def probes(n: int):
            return augment.diagonal_points(centres, spreads, labels, n, generator)

        loss = distil_head(student, teacher, probes, probes(POOL_CURRENT)[0],
                           steps=s.server_head_steps, lr=s.student_head_step_lr,
                           temperature=s.kd_temperature, generator=generator)
        return {"continual-server-head-loss": loss,
                "continual-server-head-classes": float(len(labels))}

    def attach(self, s: ContinualConfig, rnd: ClientRound) -> None:
        model = rnd.model
        if not isinstance(model, ContinualNet):
            raise TypeError("continual.enabled needs model = \"continual-cnn\" (feature "
                            "extractor + embedding + classifier, and a student); got "
                            f"{type(model).__name__}")
        state, teacher, student = rnd.state, model.teacher, model.student
        plan = task_plan(s, rnd.num_rounds, teacher.num_classes)
        task = plan.task_of_round(rnd.server_round)
        metrics: dict[str, float] = {"continual-task": float(task)}
        last = int(mem.scalar(state[P + "task"])) if P + "task" in state else -1
        if s.method != "finetune" and task > 0 and last < task:
            metrics |= cross_boundary(model, rnd.client.train_x, rnd.client.train_y, s, plan,
                                      task, rnd.seed, rnd.server_round, rnd.client_id,
                                      rnd.device, state)
        generator = round_generator(rnd, Stream.AUGMENT)
        points, kd_head = None, None
        # PASS-style noise lives in the feature space; the adaptive method's points where
        # augment-space puts them (the embedding space, as claimed)
        space = s.augment_space if s.method == "adaptive" else "feature"
        memory = mem.load(state)
        if s.method != "finetune" and task > 0:
            radius = augment_range(s, state, space_dim(teacher, space), space)
            if memory is None or len(memory) == 0 or radius <= 0:
                log.warning("fedlite.continual: client %d has an empty prototype memory in task "
                            "%d: it trains without replay (counted in continual-empty-memory)",
                            rnd.client_id, task)
                metrics["continual-empty-memory"] = 1.0
            elif s.method == "pass":
                def points(n: int, m=memory, r=radius):
                    return augment.gaussian_points(m, r, n, generator)
            else:
                kd_head = old_head(teacher, state, plan.seen_classes(task - 1), space)
                points = adaptive_source(teacher, memory, torch.as_tensor(state[P + "vectors"]),
                                         radius, space, generator)
            metrics["continual-memory-classes"] = float(0 if memory is None else len(memory))
        x, y = task_data(rnd.client.train_x, rnd.client.train_y, plan.tasks[task],
                         s.max_samples_per_class)
        if len(y) == 0:
            log.warning("fedlite.continual: client %d holds no sample of task %d: its reply "
                        "weighs 0, so the server leaves it out of the aggregate",
                        rnd.client_id, task)
            metrics["continual-empty-client"] = 1.0
        model.set_seen(plan.seen_classes(task))
        terms = []
        if s.method == "adaptive" or (s.method == "pass" and points is not None):
            terms.append(PrototypeReplay(points, proto_weight=s.proto_weight,
                                         contrast_weight=s.contrast_weight
                                         if s.method == "adaptive" else 0.0,
                                         temperature=s.contrast_temperature, space=space))
        if s.method == "adaptive" and kd_head is not None and s.old_kd_weight > 0:
            terms.append(OldHeadKD(kd_head, kd_head.seen, points, weight=s.old_kd_weight,
                                   temperature=s.kd_temperature, space=space))
        freeze(teacher.features, s.freeze_extractor and s.method != "finetune" and task > 0)
        rnd.cleanup.append(lambda: (freeze(teacher.features, False),
                                    freeze(student.features, False)))
        rnd.model, rnd.x, rnd.y = teacher, x, y
        rnd.loss_terms.extend(terms)
        rnd.metrics |= metrics
        if s.student:
            rnd.after.append(lambda _: distil(s, rnd, model, points, terms, memory, space))

        def mark_task(_: Any) -> dict[str, float]:
            state[P + "task"] = np.asarray([task])
            return {}

        rnd.after.append(mark_task)


def round_seed(rnd: ClientRound, stream: Stream) -> int:
    """The seed of one random use in this client's round (see ``fedlite.seeding``)."""
    return derive_seed(rnd.seed, rnd.server_round, rnd.client_id, stream)


def round_generator(rnd: ClientRound, stream: Stream) -> torch.Generator:
    """A CPU generator seeded with ``round_seed``: one independent stream per random use."""
    return torch.Generator().manual_seed(round_seed(rnd, stream))


def takes_server_step(s: ContinualConfig) -> bool:
    """``continual.server-head-steps`` acts on the adaptive method's distilled student only:
    the baselines' students copy their head, and with feature-space points no feature
    statistics are kept to pool."""
    return s.server_head_steps > 0 and student_probes(s)


def augment_range(s: ContinualConfig, state, dim: int, space: str) -> float:
    """PASS: the noise's standard deviation per dimension (radius-scale x the first task's
    radius); adaptive: the offsets' largest norm (``client.bound``)."""
    if s.method == "pass":
        return bound(state, s, dim, space) / float(np.sqrt(dim))
    return bound(state, s, dim, space)


def adaptive_source(teacher, memory: mem.Prototypes, vectors: torch.Tensor, radius: float,
                    space: str, generator: torch.Generator):
    """Batch size -> augmented old-class points and labels. In the embedding space a point is
    the CURRENT embedding of its centre (the prototype's features, or the class's mean features
    with augment-centre = class-mean; the embedding module adjusts during the task, claim 7, and the
    gradient of the replay loss reaches it through the centres) plus a fitted offset; in the
    feature space (ablation) the centre's features plus an offset."""
    features = mem.centres_of(teacher, memory).to(next(teacher.parameters()).device)

    def points(n: int):
        base = teacher.embed(features) if space == "embedding" else features
        return augment.adaptive_points(base, memory.labels, vectors, radius, n, generator)

    return points


def feature_probes(s: ContinualConfig, rnd: ClientRound, teacher, memory,
                   stream: Stream = Stream.PROBES):
    """The distilled student's view of the old classes' feature region (embedding-space
    augmentation only): the augmentation's centres in the feature space (the prototypes', or
    the class means) plus Gaussian noise with each class's stored per-dimension spread (at the
    PASS radius where a memory holds no spreads), with the teacher's outputs there as the
    targets; no label is claimed for them."""
    if not student_probes(s) or memory is None or len(memory) == 0:
        return None
    generator = round_generator(rnd, stream)
    centres = mem.centres_of(teacher, memory)
    if memory.spreads is not None:
        return lambda n: augment.diagonal_points(centres, memory.spreads, memory.labels, n,
                                                 generator)
    dim = space_dim(teacher, "feature")
    radius = bound(rnd.state, s, dim, "feature") / float(np.sqrt(dim))
    if radius <= 0:
        return None
    probes = mem.Prototypes(centres, memory.embeddings, memory.labels)
    return lambda n: augment.gaussian_points(probes, radius, n, generator)


def distil(s: ContinualConfig, rnd: ClientRound, model: ContinualNet, points, terms,
           memory, space: str) -> dict[str, float]:
    """The second model's round: distillation alone from the first model's two teachers (its
    feature extractor/embedding and its classifier)."""
    teacher, student = model.teacher, model.student
    adaptive = s.method == "adaptive"
    copied = not adaptive or s.student_head == "copied"
    if copied:  # the baselines' students keep the recipe they were measured with
        reuse_head(student, teacher)
    kd = TwoTeacherKD(teacher, points if s.method != "finetune" else None, s.kd_temperature,
                      space=space, probes=feature_probes(s, rnd, teacher, memory))
    student_terms = [kd]
    if copied:  # the copied head keeps the teacher's anchor to the old head
        student_terms += [t for t in terms if isinstance(t, OldHeadKD)]
    if adaptive and memory is not None and memory.samples is not None \
            and s.student_anchor_weight > 0:
        student_terms.append(PrototypeAnchor(
            teacher, memory.samples, s.student_anchor_weight, s.kd_temperature,
            mix_weight=s.student_anchor_mix, generator=round_generator(rnd, Stream.ANCHOR_MIX)))
    if adaptive and s.student_prox > 0:
        student_terms.append(ProximalTerm(list(student.features.parameters()), s.student_prox,
                                          mean=True))
    head_scale = s.student_head_lr_scale if adaptive and copied else 1.0
    # More epochs than the teacher: after the teacher's epochs the student's feature
    # regression is still underfit, and old-class inputs near the head's boundaries flip.
    settings = dataclasses.replace(
        rnd.settings, epochs=rnd.settings.epochs * s.student_epochs_scale,
        seed=round_seed(rnd, Stream.STUDENT_SHUFFLE))
    distilled = train(student, rnd.x, rnd.y, settings, device=rnd.device, task_loss=False,
                      loss_terms=student_terms, make_optimizer=adam(s.student_lr, head_scale))
    metrics = {"continual-student-loss": distilled.loss,
               "continual-student-train-accuracy": distilled.accuracy}
    probes = feature_probes(s, rnd, teacher, memory, Stream.HEAD_PROBES) \
        if s.student_head_steps > 0 else None
    if probes is not None:
        generator = round_generator(rnd, Stream.HEAD_STEPS)
        metrics["continual-student-head-loss"] = distil_head(
            student, teacher, probes, current_features(teacher, torch.as_tensor(rnd.x),
                                                       generator),
            steps=s.student_head_steps, lr=s.student_head_step_lr,
            temperature=s.kd_temperature, generator=generator)
    if takes_server_step(s):
        metrics[class_stats.KEY] = class_stats.report(reported_stats(rnd, teacher, memory),
                                                      len(rnd.y))
    return metrics


def reported_stats(rnd: ClientRound, teacher, memory: mem.Prototypes | None) -> np.ndarray:
    """The client's per-class feature statistics for the server's head step: the current
    classes from its data, the old ones from its memory (the centres and spreads its own
    probes use)."""
    dim = space_dim(teacher, "feature")
    table = np.zeros((teacher.num_classes, 1 + 2 * dim))
    current: list[int] = []
    if len(rnd.y):
        features, _ = mem.represent(teacher, rnd.x, device=next(teacher.parameters()).device)
        centres, spreads, current = class_stats.current_class_stats(features,
                                                                    torch.as_tensor(rnd.y))
        table += class_stats.client_stats(teacher.num_classes, dim, centres, spreads, current)
    if memory is not None and len(memory) and memory.spreads is not None:
        old = [i for i, label in enumerate(memory.labels.tolist()) if label not in current]
        if old:
            centres = mem.centres_of(teacher, memory)[old].cpu()
            table += class_stats.client_stats(teacher.num_classes, dim, centres,
                                              memory.spreads[old], memory.labels[old].tolist())
    return table
