"""FSP progressive knowledge transfer as an entry of the method table.

Yim et al., "A Gift from Knowledge Distillation", CVPR 2017
(https://openaccess.thecvf.com/content_cvpr_2017/html/Yim_A_Gift_From_CVPR_2017_paper.html);
KR 10-2063377. Stage 1 rounds replace cross-entropy with the FSP loss against the teacher
(labels play no part, so neither does backprop skipping); stage 2 is plain training from the
stage-1 weights, with the run's learning-rate schedule restarted at its first round. The
teacher's matrices are computed once per sample and cached (``cache``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from fedlite.errors import ConfigError
from fedlite.methods import ClientRound, Method, RunSetup
from fedlite.schedule import LrSchedule
from fedlite.train.fsp.cache import teacher_matrices
from fedlite.train.fsp.matrix import fsp_loss, fsp_matrices
from fedlite.train.fsp.settings import FspConfig
from fedlite.train.fsp.teacher import load_teacher
from fedlite.train.fsp.term import FspTerm, sections_of
from fedlite.train.loop import Optimizer, TrainSettings


class Fsp(Method):
    name = "fsp"
    settings = FspConfig
    label = "FSP"

    def active(self, s: FspConfig) -> bool:
        return s.enabled

    def refuses(self, s: FspConfig, other: str, other_settings: Any) -> str | None:
        if other == "continual":
            return ("fsp.teacher and continual.enabled cannot be combined: FSP needs a "
                    "sectioned ResNet student, continual learning needs model=continual-cnn")
        if other == "fedpara" and s.optimizer != "sgd" and other_settings.local_lr_scale != 1:
            return (f"fsp.optimizer={s.optimizer} and fedpara.local-lr-scale both choose the "
                    "round's optimizer; keep one of them at its default")
        return None

    def check(self, s: FspConfig, setup: RunSetup) -> None:
        """The teacher exists and matches its architecture, there is a stage 2, and teacher
        and student FSP matrices have equal shapes (one dummy batch)."""
        if setup.num_rounds <= s.stage1_rounds:
            raise ConfigError(
                f"run config `fsp.stage1-rounds`: {s.stage1_rounds} leaves no stage-2 round in "
                f"num-rounds={setup.num_rounds}; stage 2 (the main task) needs at least one "
                "round")
        input_shape = setup.data.dataset.input_shape
        teacher = load_teacher(s.teacher, s.teacher_model, input_shape, num_classes(setup.model))
        sections_of(setup.model, "student")
        x = torch.zeros(2, *input_shape)
        with torch.no_grad():
            _, teacher_pairs = teacher.forward_sections(x)
            _, student_pairs = setup.model.forward_sections(x)
            fsp_loss(fsp_matrices(teacher_pairs), fsp_matrices(student_pairs))  # names a mismatch

    def attach(self, s: FspConfig, rnd: ClientRound) -> None:
        rnd.settings = dataclasses.replace(rnd.settings,
                                           lr=round_lr(s, rnd.lr_at, rnd.server_round))
        if s.stage(rnd.server_round) != 1:
            return
        teacher = load_teacher(s.teacher, s.teacher_model, tuple(rnd.x.shape[1:]),
                               num_classes(rnd.model), rnd.device)
        cache = teacher_matrices(teacher, rnd.client_id, rnd.x) if s.cache_teacher else None
        term = FspTerm(rnd.model, teacher, form=s.loss, cache=cache,
                       probe_head=s.probe_head)
        rnd.loss_terms.append(term)
        rnd.task_loss = False
        rnd.callbacks.append(term)
        rnd.cleanup.append(term.close)  # its hooks: the model object serves the next client
        optimizer = stage1_optimizer(s)
        if optimizer is not None:
            rnd.claim("make_optimizer", optimizer, "fsp.optimizer")

    def round_metrics(self, s: FspConfig, server_round: int) -> dict[str, Any]:
        return {"stage": s.stage(server_round)} if server_round >= 1 else {}

    def progress(self, line: dict) -> list[str]:
        if line.get("stage") is None:
            return []
        fsp = line.get("train/fsp-loss")
        return [f"stage {line['stage']}" + (f"  fsp-loss {fsp:.3f}" if fsp is not None else "")]


def round_lr(s: FspConfig, rates: LrSchedule, server_round: int) -> float:
    """Stage 1 runs ``fsp.lr-schedule`` (by default the run's schedule shape) at ``fsp.lr``
    over its own rounds (without ``lr-decay``: constant stays ``fsp.lr``, as the paper's stage 1
    steps 1e-3 -> 1e-5 on its own); stage 2 restarts the run's schedule over the remaining
    rounds. With FSP off this is exactly ``rates(round)``."""
    stage = s.stage(server_round)
    if stage == 1:
        return rates.restarted(s.stage1_rounds, lr=s.lr, decay=1.0,
                               shape=s.stage1_schedule(rates.shape))(server_round)
    if stage == 2:
        return rates.restarted(rates.rounds - s.stage1_rounds)(server_round - s.stage1_rounds)
    return rates(server_round)


def stage1_optimizer(s: FspConfig) -> Callable[[nn.Module, TrainSettings], Optimizer] | None:
    """Stage 1's optimizer factory for ``train``: None keeps the loop's SGD; ``adam`` is
    ``torch.optim.Adam`` at the round's lr (``fsp.lr``). Its first use in a process imports
    ``torch._dynamo`` (about 2 s, once per worker), which the loop's own SGD avoids."""
    if s.optimizer == "sgd":
        return None

    def adam(model: nn.Module, settings: TrainSettings) -> Optimizer:
        # foreach: one fused call per step for all parameters; on a CPU torch would otherwise
        # take Adam's per-tensor Python loop (0.17 s of a 5.1 s resnet20 client round)
        return torch.optim.Adam(model.parameters(), lr=settings.lr,
                                weight_decay=settings.weight_decay, foreach=True)

    return adam


def num_classes(model: nn.Module) -> int:
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise ValueError(f"FSP: the student ({type(model).__name__}) is not a ResNet; FSP needs "
                         "a sectioned ResNet (resnet8, resnet14, resnet20, resnet26)")
    return fc.out_features
