"""The run config's ``fsp`` section: which teacher, and how long stage 1 lasts."""

from __future__ import annotations

from dataclasses import dataclass

STAGE1_OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class FspConfig:
    """Run-config keys ``fsp.*``; ``teacher = ""`` turns FSP off (plain training, exactly).

    Rounds 1..stage1-rounds are stage 1 (FSP loss only); the rest are stage 2 (cross-entropy),
    so every client derives the stage from the round number alone.
    """

    teacher: str = ""  # a run directory (its checkpoint.npz) or a .npz path; "" = off
    teacher_model: str = "resnet8"  # the teacher's architecture (model registry name)
    stage1_rounds: int = 2
    lr: float = 0.01  # stage-1 learning rate (the FSP loss is larger than cross-entropy)
    # stage-1 optimizer: "sgd" (the run's momentum and weight decay) or "adam"; SGD leaves the
    # FSP loss of a 20-layer GroupNorm student high, Adam brings it down (docs/experiments/fsp.md)
    optimizer: str = "sgd"

    def __post_init__(self) -> None:
        from fedlite.config import ConfigError  # deferred: fedlite.config imports this module

        if self.stage1_rounds < 1:
            raise ConfigError("run config `fsp.stage1-rounds`: must be >= 1 (a zero-length "
                              f"stage 1 transfers nothing; set fsp.teacher=\"\" instead), "
                              f"got {self.stage1_rounds}")
        if not self.lr > 0:
            raise ConfigError(f"run config `fsp.lr`: must be > 0, got {self.lr}")
        if self.optimizer not in STAGE1_OPTIMIZERS:
            raise ConfigError(f"run config `fsp.optimizer`: choose one of "
                              f"{', '.join(STAGE1_OPTIMIZERS)}, got {self.optimizer!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.teacher)

    def stage(self, server_round: int) -> int:
        """1 while the student learns the teacher's flow, 2 on the main task (0 when off)."""
        if not self.enabled:
            return 0
        return 1 if server_round <= self.stage1_rounds else 2
