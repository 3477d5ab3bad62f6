"""The run config's ``continual`` section: class-incremental learning over federated rounds."""

from __future__ import annotations

from dataclasses import dataclass

from fedlite.continual.tasks import parse_tasks
from fedlite.errors import require
from fedlite.fields import setting

METHODS = ("finetune", "pass", "adaptive")
SPACES = ("embedding", "feature")
CENTRES = ("class-mean", "prototype")
STUDENT_HEADS = ("distilled", "copied")


@dataclass(frozen=True)
class ContinualConfig:
    """Run-config keys ``continual.*``; ``enabled = false`` leaves training untouched.

    ``method``: ``finetune`` (no protection), ``pass`` (class-mean prototypes + Gaussian noise
    through the current head, PASS-style) or ``adaptive`` (nearest-real prototypes, learnable
    bounded vectors in the embedding space fitted through the old classifier, joint
    supervised-contrastive embedding, LwF-style distillation from the old classifier on the old
    classes' logits, and a smaller student distilled from the first model's two teachers).
    ``augment-space = feature`` and ``student-head = copied`` are the ablations' departures.
    """

    enabled: bool = setting(False, "classes arrive in tasks of federated rounds")
    tasks: str = setting("", "the task plan, e.g. 0-1,2-3; '' = num-tasks equal groups")
    num_tasks: int = setting(5, "tasks when continual.tasks is empty")
    rounds_per_task: int = setting(2, "rounds per task; num-rounds = tasks x this")
    method: str = setting("adaptive", "finetune, pass or adaptive (prototype augmentation + "
                                      "distillation)")
    freeze_extractor: bool = setting(True, "after task 0 only the embedding and classifier learn "
                                           "(fedlite's choice; the claims adjust the embedding)")
    augment_space: str = setting("embedding", "adaptive: where prototypes are augmented: "
                                              "embedding (as claimed) or feature (ablation)")
    augment_centre: str = setting("class-mean", "adaptive: what the augmented points surround: "
                                                "class-mean (the class centre the prototype "
                                                "stands for: its mean features, embedded by the "
                                                "current module) or prototype (the selected "
                                                "sample itself, claim 4 read literally)")
    radius_scale: float = setting(0.25, "augmentation range, in units of the PASS radius")
    vectors_per_class: int = setting(16, "learnable augmentation vectors per old prototype")
    augment_steps: int = setting(300, "step budget for fitting the vectors at a task boundary")
    augment_keep: float = setting(0.95, "fit the vectors until this share of augmented points "
                                        "keeps its class under the old classifier")
    augment_lr: float = setting(0.05, "learning rate of the augmentation vectors")
    proto_weight: float = setting(2.0, "weight of cross-entropy on augmented old-class points")
    contrast_weight: float = setting(0.5, "weight of the supervised contrastive loss")
    contrast_temperature: float = setting(0.1, "temperature of the contrastive loss")
    old_kd_weight: float = setting(1.0, "adaptive: KL to the old head on old-class logits; 0 = "
                                        "off")
    student: bool = setting(True, "also distil a smaller student from two teachers")
    student_head: str = setting("distilled", "adaptive: the student's embedding and classifier "
                                             "learn by distillation (distilled) or start each "
                                             "round as the teacher's (copied, ablation)")
    kd_temperature: float = setting(2.0, "distillation temperature")
    student_lr: float = setting(0.003, "the student's Adam learning rate")
    student_epochs_scale: int = setting(3, "the student's local epochs = local-epochs x this")
    student_head_steps: int = setting(1000, "distilled student: head-only distillation steps "
                                            "after its epochs, on feature probes and the "
                                            "current data; 0 = off")
    student_head_step_lr: float = setting(0.001, "the Adam learning rate of those steps")
    server_head_steps: int = setting(1000, "adaptive, distilled student: head-only steps the "
                                           "server takes after aggregation, from the aggregated "
                                           "first model's head to the student's, on the "
                                           "clients' per-class feature statistics; 0 = off")
    student_head_lr_scale: float = setting(0.1, "student-head = copied: the copied head learns "
                                                "at this share")
    student_anchor_weight: float = setting(1.0, "adaptive: student matches the teacher on "
                                                "prototypes")
    student_anchor_mix: float = setting(0.3, "adaptive: weight of both teachers' distillation "
                                             "(features, and logits through the student's own "
                                             "extractor) on blends of stored prototype samples "
                                             "and batch inputs; 0 = off")
    student_prox: float = setting(100.0, "adaptive: pull of the student's extractor to its round "
                                         "start")
    max_samples_per_class: int = setting(0, "cap on training samples per client and class; 0 = "
                                            "all")

    def __post_init__(self) -> None:
        def check(ok: bool, key: str, message: str) -> None:
            require(ok, f"continual.{key}", message)

        check(self.method in METHODS, "method", f"choose one of {', '.join(METHODS)}")
        check(self.augment_space in SPACES, "augment-space", f"choose one of {', '.join(SPACES)}")
        check(self.augment_centre in CENTRES, "augment-centre",
              f"choose one of {', '.join(CENTRES)}")
        check(self.student_head in STUDENT_HEADS, "student-head",
              f"choose one of {', '.join(STUDENT_HEADS)}")
        check(0 < self.augment_keep <= 1, "augment-keep", "must be in (0, 1]")
        check(self.num_tasks >= 1, "num-tasks", "must be a positive integer")
        check(self.rounds_per_task >= 1, "rounds-per-task", "must be a positive integer")
        check(self.radius_scale > 0, "radius-scale", "must be > 0")
        check(self.vectors_per_class >= 1, "vectors-per-class", "must be >= 1")
        check(self.augment_steps >= 0, "augment-steps", "must be >= 0")
        check(self.augment_lr > 0, "augment-lr", "must be > 0")
        check(self.proto_weight >= 0, "proto-weight", "must be >= 0")
        check(self.contrast_weight >= 0, "contrast-weight", "must be >= 0")
        check(self.contrast_temperature > 0, "contrast-temperature", "must be > 0")
        check(self.old_kd_weight >= 0, "old-kd-weight", "must be >= 0")
        check(self.kd_temperature > 0, "kd-temperature", "must be > 0")
        check(self.student_lr > 0, "student-lr", "must be > 0")
        check(self.student_epochs_scale >= 1, "student-epochs-scale",
              "must be a positive integer (1 = the run's local-epochs)")
        check(self.student_head_steps >= 0, "student-head-steps", "must be >= 0 (0 = off)")
        check(self.student_head_step_lr > 0, "student-head-step-lr", "must be > 0")
        check(self.server_head_steps >= 0, "server-head-steps", "must be >= 0 (0 = off)")
        check(self.student_head_lr_scale >= 0, "student-head-lr-scale", "must be >= 0")
        check(self.student_anchor_weight >= 0, "student-anchor-weight", "must be >= 0 (0 = off)")
        check(self.student_anchor_mix >= 0, "student-anchor-mix", "must be >= 0 (0 = off)")
        check(self.student_prox >= 0, "student-prox", "must be >= 0 (0 = off)")
        check(self.max_samples_per_class >= 0, "max-samples-per-class", "must be >= 0 (0 = all)")
        if self.tasks:
            parse_tasks(self.tasks)  # syntax and overlap; coverage needs the dataset
