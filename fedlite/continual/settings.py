"""The run config's ``continual`` section: class-incremental learning over federated rounds."""

from __future__ import annotations

from dataclasses import dataclass

METHODS = ("finetune", "pass", "adaptive")


@dataclass(frozen=True)
class ContinualConfig:
    """Run-config keys ``continual.*``; ``enabled = false`` leaves training untouched.

    ``method``: ``finetune`` (no protection), ``pass`` (class-mean prototypes + Gaussian noise
    through the current head, PASS-style) or ``adaptive`` (nearest-real prototypes, learnable
    bounded vectors fitted through the old classifier, joint supervised-contrastive embedding,
    LwF-style distillation from the old head on the old classes' logits).
    """

    enabled: bool = False
    tasks: str = ""  # "0-1,2-3,4-5"; "" = the classes split into num-tasks equal groups
    num_tasks: int = 5
    rounds_per_task: int = 2  # num-rounds must equal num-tasks x rounds-per-task
    method: str = "adaptive"
    freeze_extractor: bool = True  # pass/adaptive: after task 0 only embedding + classifier learn
    radius_scale: float = 0.25  # augmentation range, in units of the PASS radius (x sqrt(dim))
    vectors_per_class: int = 16  # learnable augmentation vectors per old prototype
    augment_steps: int = 20  # Adam steps on the vectors per round, through the old classifier
    augment_lr: float = 0.05
    proto_weight: float = 2.0  # CE on augmented old-class points
    contrast_weight: float = 0.5  # supervised contrastive loss in the joint embedding space
    contrast_temperature: float = 0.1
    old_kd_weight: float = 1.0  # adaptive: KL to the old head on old-class logits (0 = off)
    student: bool = True  # train the smaller second model by two-teacher distillation
    kd_temperature: float = 2.0
    student_lr: float = 0.003  # Adam, the student only
    student_epochs_scale: int = 2  # the student's local epochs = local-epochs x this
    student_head_lr_scale: float = 0.1  # adaptive: the student's head (the teacher's) learns slower
    student_anchor_weight: float = 1.0  # adaptive: student matches the teacher on prototype samples
    student_prox: float = 100.0  # adaptive: pull of the student's extractor to its round start
    max_samples_per_class: int = 0  # per client and class; 0 = all (sizes a benchmark)

    def __post_init__(self) -> None:
        # Deferred: fedlite.config imports this module to declare the section.
        from fedlite.config import ConfigError

        def require(ok: bool, key: str, message: str) -> None:
            if not ok:
                raise ConfigError(f"run config `continual.{key}`: {message}")

        require(self.method in METHODS, "method", f"choose one of {', '.join(METHODS)}")
        require(self.num_tasks >= 1, "num-tasks", "must be a positive integer")
        require(self.rounds_per_task >= 1, "rounds-per-task", "must be a positive integer")
        require(self.radius_scale > 0, "radius-scale", "must be > 0")
        require(self.vectors_per_class >= 1, "vectors-per-class", "must be >= 1")
        require(self.augment_steps >= 0, "augment-steps", "must be >= 0")
        require(self.augment_lr > 0, "augment-lr", "must be > 0")
        require(self.proto_weight >= 0, "proto-weight", "must be >= 0")
        require(self.contrast_weight >= 0, "contrast-weight", "must be >= 0")
        require(self.contrast_temperature > 0, "contrast-temperature", "must be > 0")
        require(self.old_kd_weight >= 0, "old-kd-weight", "must be >= 0")
        require(self.kd_temperature > 0, "kd-temperature", "must be > 0")
        require(self.student_lr > 0, "student-lr", "must be > 0")
        require(self.student_epochs_scale >= 1, "student-epochs-scale",
                "must be a positive integer (1 = the run's local-epochs)")
        require(self.student_head_lr_scale >= 0, "student-head-lr-scale", "must be >= 0")
        require(self.student_anchor_weight >= 0, "student-anchor-weight", "must be >= 0 (0 = off)")
        require(self.student_prox >= 0, "student-prox", "must be >= 0 (0 = off)")
        require(self.max_samples_per_class >= 0, "max-samples-per-class", "must be >= 0 (0 = all)")
        if self.tasks:
            from fedlite.continual.tasks import parse_tasks

            parse_tasks(self.tasks)  # syntax and overlap; coverage needs the dataset
