"""Backprop skipping as an entry of the method table: a batch gate on the client's round."""

from __future__ import annotations

import dataclasses
from typing import Any

from fedlite.methods import ClientRound, Method
from fedlite.train.skip.batching import ShrinkNormalization
from fedlite.train.skip.control import SkipControl
from fedlite.train.skip.gate import SkipGate
from fedlite.train.skip.settings import SkipConfig


class Skip(Method):
    name = "skip"
    settings = SkipConfig
    label = "backprop skipping"

    def active(self, s: SkipConfig) -> bool:
        return s.enabled

    def attach(self, s: SkipConfig, rnd: ClientRound) -> None:
        if not rnd.task_loss:  # a sample's confidence in its label means nothing without one
            return
        control = SkipControl(**dataclasses.asdict(s), batch_size=rnd.settings.batch_size)
        gate = SkipGate(control, rnd.state, rnd.server_round)
        rnd.claim("gate", gate, "skip.enabled")
        rnd.callbacks.append(gate)
        if control.scales_steps:  # the step's gradient: its samples summed over the batch's B
            rnd.loss_terms.append(ShrinkNormalization(gate))

    def progress(self, line: dict[str, Any]) -> list[str]:
        if line.get("train/skip-backprop-fraction") is None:
            return []
        return [f"backprop {100 * line['train/skip-backprop-fraction']:.2f}%"
                f"  tau {line['train/skip-threshold']:.2f}"]
