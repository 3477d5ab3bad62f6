"""Experiment tracking: ``tracking = "tensorboard"`` writes every scalar of each round's
``rounds.jsonl`` line (central and client metrics, bytes, seconds) as TensorBoard events in
``results/<run-id>/tb/``, with ``torch.utils.tensorboard`` (the ``tensorboard`` package is an
optional extra). ``tensorboard --logdir results`` shows every run side by side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TB_DIR = "tb"


class TensorBoardTracker:
    """One run's event file; the step of every scalar is its round (0: the initial model)."""

    def __init__(self, log_dir: Path, config: Mapping[str, Any] | None = None,
                 purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # deferred: it imports tensorboard

        # purge_step: a resumed run hides the events of rounds it runs again
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        if config is not None:
            self.writer.add_text("config", "```\n" + json.dumps(dict(config), indent=2) + "\n```")

    def log_round(self, line: Mapping[str, Any]) -> None:
        step = int(line["round"])
        for key, value in line.items():
            if key != "round" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()  # a run followed live in TensorBoard shows each round as it ends

    def close(self) -> None:
        self.writer.close()


def tracker_for(kind: str, run_dir: Path, config: Mapping[str, Any] | None = None,
                purge_step: int | None = None) -> TensorBoardTracker | None:
    """The tracker a run's ``tracking`` key names, writing under ``run_dir``; None for none."""
    if kind == "tensorboard":
        return TensorBoardTracker(run_dir / TB_DIR, config, purge_step)
    if kind not in ("", "none"):
        raise ValueError(f"run config `tracking`: unknown tracker {kind!r}; choose none or "
                         "tensorboard")
    return None
