"""FSP progressive knowledge transfer.

Implementation based on Yim et al., "A Gift from Knowledge Distillation: Fast Optimization,
Network Minimization and Transfer Learning", CVPR 2017,
https://openaccess.thecvf.com/content_cvpr_2017/html/Yim_A_Gift_From_CVPR_2017_paper.html,
and the progressive transfer of patent KR 10-2063377,
https://patents.google.com/patent/KR102063377B1.

- ``matrix``: FSP matrices of a section's first and last maps, and the Euclidean FSP loss;
- ``term``: stage 1 as a loss term that replaces cross-entropy (``task_loss=False``);
- ``teacher``: the trained teacher, loaded from a run's checkpoint once per worker process;
- ``settings``: run-config keys ``fsp.*`` (the stage is derived from the round number);
- ``chain``: the progressive chain teacher -> intermediates -> target, and how many
  intermediates a budget allows.
Stage 2 is plain training from the stage-1 weights: the federation just keeps going.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from fedlite.train.fsp.chain import check_chain, choose_intermediates, resnet_depth
from fedlite.train.fsp.matrix import fsp_loss, fsp_matrices, fsp_matrix
from fedlite.train.fsp.settings import FspConfig
from fedlite.train.fsp.teacher import checkpoint_path, load_teacher
from fedlite.train.fsp.term import FspTerm, sections_of
from fedlite.train.loop import Optimizer, TrainSettings

if TYPE_CHECKING:  # fedlite.config imports this package to declare the section
    from fedlite.config import RunConfig


def round_lr(cfg: RunConfig, server_round: int) -> float:
    """Stage 1 uses ``fsp.lr``; stage 2 restarts the run's schedule (``lr``, ``lr-decay``) at
    its own first round. With FSP off this is exactly ``cfg.lr_at(round)``."""
    stage = cfg.fsp.stage(server_round)
    if stage == 1:
        return cfg.fsp.lr
    return cfg.lr_at(server_round - (cfg.fsp.stage1_rounds if stage == 2 else 0))


def stage1_optimizer(cfg: RunConfig) -> Callable[[nn.Module, TrainSettings], Optimizer] | None:
    """Stage 1's optimizer factory for ``train``: None keeps the loop's SGD; ``adam`` is
    ``torch.optim.Adam`` at the round's lr (``fsp.lr``). Its first use in a process imports
    ``torch._dynamo`` (about 2 s, once per worker), which the loop's own SGD avoids."""
    if cfg.fsp.optimizer == "sgd":
        return None

    def adam(model: nn.Module, settings: TrainSettings) -> Optimizer:
        return torch.optim.Adam(model.parameters(), lr=settings.lr,
                                weight_decay=settings.weight_decay)

    return adam


def fsp_term(cfg: RunConfig, student: nn.Module, server_round: int, input_shape: tuple[int, ...],
             device: str | torch.device = "cpu") -> FspTerm | None:
    """The stage-1 loss term for this round, or None (FSP off, or stage 2)."""
    if cfg.fsp.stage(server_round) != 1:
        return None
    teacher = load_teacher(cfg.fsp.teacher, cfg.fsp.teacher_model, input_shape,
                           num_classes(student), device)
    return FspTerm(student, teacher)


def num_classes(model: nn.Module) -> int:
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise ValueError(f"FSP: the student ({type(model).__name__}) is not a ResNet; FSP needs "
                         "a sectioned ResNet (resnet8, resnet14, resnet20, resnet26)")
    return fc.out_features


def preflight(cfg: RunConfig, student: nn.Module, input_shape: tuple[int, ...]) -> None:
    """Before any training: the teacher exists and matches its architecture, there is a
    stage 2, and teacher and student FSP matrices have equal shapes (one dummy batch)."""
    from fedlite.config import ConfigError

    if not cfg.fsp.enabled:
        return
    if cfg.num_rounds <= cfg.fsp.stage1_rounds:
        raise ConfigError(
            f"run config `fsp.stage1-rounds`: {cfg.fsp.stage1_rounds} leaves no stage-2 round "
            f"in num-rounds={cfg.num_rounds}; stage 2 (the main task) needs at least one round")
    teacher = load_teacher(cfg.fsp.teacher, cfg.fsp.teacher_model, input_shape,
                           num_classes(student))
    sections_of(student, "student")
    x = torch.zeros(2, *input_shape)
    with torch.no_grad():
        _, teacher_pairs = teacher.forward_sections(x)
        _, student_pairs = student.forward_sections(x)
        fsp_loss(fsp_matrices(teacher_pairs), fsp_matrices(student_pairs))  # names a mismatch


__all__ = ["FspConfig", "FspTerm", "check_chain", "checkpoint_path", "choose_intermediates",
           "fsp_loss", "fsp_matrices", "fsp_matrix", "fsp_term", "load_teacher", "preflight",
           "resnet_depth", "round_lr", "stage1_optimizer"]
