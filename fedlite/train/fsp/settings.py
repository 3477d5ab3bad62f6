"""The run config's ``fsp`` section: which teacher, and how long stage 1 lasts."""

from __future__ import annotations

from dataclasses import dataclass

from fedlite.errors import require
from fedlite.fields import setting
from fedlite.schedule import SCHEDULES

STAGE1_OPTIMIZERS = ("sgd", "adam")
LOSS_FORMS = ("mean", "sum")  # fedlite.train.fsp.matrix.fsp_loss (this module stays torch-free)


@dataclass(frozen=True)
class FspConfig:
    """Run-config keys ``fsp.*``; ``teacher = ""`` turns FSP off (plain training, exactly).

    Rounds 1..stage1-rounds are stage 1 (FSP loss only); the rest are stage 2 (cross-entropy),
    so every client derives the stage from the round number alone.
    """

    teacher: str = setting("", "the teacher: a run directory or a .npz checkpoint; '' = FSP off")
    teacher_model: str = setting("resnet8", "the teacher's architecture, e.g. resnet8")
    stage1_rounds: int = setting(2, "rounds of stage 1 (FSP loss only) before cross-entropy")
    lr: float = setting(0.01, "stage-1 learning rate")
    # a stage 1 of two or three rounds under `step` spends its last round at a tenth of fsp.lr
    # (docs/experiments/fsp.md)
    lr_schedule: str = setting("", "stage 1's schedule over its own rounds: '' = the run's "
                                    "lr-schedule, or constant, step, cosine")
    # SGD leaves the FSP loss of a 20-layer GroupNorm student high, Adam brings it down
    # (docs/experiments/fsp.md)
    optimizer: str = setting("sgd", "stage-1 optimizer: sgd (the run's momentum) or adam (e.g. "
                                    "fsp.lr=0.001)")
    loss: str = setting("mean", "FSP loss per section: mean (squared distance / entries, "
                                "sections weigh equally) or sum (the patent's, equal lambda = 1)")
    # the teacher is frozen: its matrices of a sample never change (fedlite/train/fsp/cache.py)
    cache_teacher: bool = setting(True, "compute each sample's teacher FSP matrices once per "
                                        "worker and reuse them in every stage-1 epoch and round")
    # stage 2 then starts from a fitted classifier, not a random one (docs/experiments/fsp.md)
    probe_head: bool = setting(False, "stage 1 also fits the classifier by cross-entropy on the "
                                      "body's detached features (the body learns the FSP loss "
                                      "alone)")

    def __post_init__(self) -> None:
        require(self.stage1_rounds >= 1, "fsp.stage1-rounds",
                "must be >= 1 (a zero-length stage 1 transfers nothing; set fsp.teacher=\"\" "
                f"instead), got {self.stage1_rounds}")
        require(self.lr > 0, "fsp.lr", f"must be > 0, got {self.lr}")
        require(not self.lr_schedule or self.lr_schedule in SCHEDULES, "fsp.lr-schedule",
                f"choose '' (the run's lr-schedule) or one of {', '.join(SCHEDULES)}, "
                f"got {self.lr_schedule!r}")
        require(self.optimizer in STAGE1_OPTIMIZERS, "fsp.optimizer",
                f"choose one of {', '.join(STAGE1_OPTIMIZERS)}, got {self.optimizer!r}")
        require(self.loss in LOSS_FORMS, "fsp.loss",
                f"choose one of {', '.join(LOSS_FORMS)}, got {self.loss!r}")

    def stage1_schedule(self, run_schedule: str) -> str:
        """Stage 1's schedule shape: ``lr-schedule`` (the run's) unless this section names one."""
        return self.lr_schedule or run_schedule

    @property
    def enabled(self) -> bool:
        return bool(self.teacher)

    def stage(self, server_round: int) -> int:
        """1 while the student learns the teacher's flow, 2 on the main task (0 when off)."""
        if not self.enabled:
            return 0
        return 1 if server_round <= self.stage1_rounds else 2
