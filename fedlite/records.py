"""Run records: ``results/<run-id>/`` with config, one JSON line per round, summary, checkpoint.

A run writes into ``<run-id>.partial/`` and is renamed to ``<run-id>/`` only when it completes,
so ``results/`` never holds a half-written run under a final name. With ``tracking`` set in
the config, every round line also goes to that tracker (``fedlite.tracking``).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedlite.tracking import tracker_for

CHECKPOINT = "checkpoint.npz"


class RunRecorder:
    def __init__(self, results_dir: str | os.PathLike, run_name: str, config: Mapping[str, Any],
                 meta: Mapping[str, Any] | None = None) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.run_id = f"{run_name}-{stamp}-{secrets.token_hex(2)}"
        self.final_dir = Path(results_dir) / self.run_id
        self.dir = self.final_dir.with_name(self.run_id + ".partial")
        self.dir.mkdir(parents=True)
        _write_json(self.dir / "config.json", {"config": dict(config), **(meta or {})})
        self.rounds: list[dict[str, Any]] = []
        self.cumulative_down = self.cumulative_up = 0
        self.tracker = tracker_for(str(config.get("tracking", "none")), self.dir, config)
        self._last = time.perf_counter()

    def log_round(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append one round (bytes are cumulated here); returns the line as written."""
        now = time.perf_counter()
        self.cumulative_down += int(record.get("bytes-down", 0))
        self.cumulative_up += int(record.get("bytes-up", 0))
        line = {**record, "cumulative-bytes-down": self.cumulative_down,
                "cumulative-bytes-up": self.cumulative_up,
                "cumulative-bytes": self.cumulative_down + self.cumulative_up,
                "seconds": round(now - self._last, 4)}
        self._last = now
        self.rounds.append(line)
        with open(self.dir / "rounds.jsonl", "a") as handle:
            handle.write(json.dumps(line) + "\n")
        if self.tracker is not None:
            self.tracker.log_round(line)
        return line

    def save_checkpoint(self, arrays: Mapping[str, np.ndarray], server_round: int,
                        extra: Mapping[str, np.ndarray] | None = None) -> None:
        """Global arrays and round; ``extra`` keys (strategy and RNG state) start with ``__``."""
        partial = self.dir / f".{CHECKPOINT}.tmp.npz"
        np.savez(partial, __round__=np.asarray(server_round), **dict(extra or {}), **dict(arrays))
        os.replace(partial, self.dir / CHECKPOINT)

    @classmethod
    def reopen(cls, run_dir: str | os.PathLike) -> RunRecorder:
        """Continue a killed run in its ``<run-id>.partial/``; a round recorded after the last
        checkpoint is dropped (it is run again)."""
        run_dir = Path(run_dir)
        if not run_dir.name.endswith(".partial") or not (run_dir / CHECKPOINT).is_file():
            raise FileNotFoundError(f"{run_dir}: give the <run-id>.partial directory of a "
                                    f"killed run (it holds {CHECKPOINT})")
        done, _ = load_checkpoint(run_dir)
        self = cls.__new__(cls)
        self.dir, self.run_id = run_dir, run_dir.name.removesuffix(".partial")
        self.final_dir = run_dir.with_name(self.run_id)
        self.rounds = [r for r in read_rounds(run_dir) if r["round"] <= done]
        (run_dir / "rounds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in self.rounds))
        last = self.rounds[-1] if self.rounds else {}
        self.cumulative_down = int(last.get("cumulative-bytes-down", 0))
        self.cumulative_up = int(last.get("cumulative-bytes-up", 0))
        config = json.loads((run_dir / "config.json").read_text())["config"]
        self.tracker = tracker_for(str(config.get("tracking", "none")), run_dir,
                                   purge_step=done + 1)
        self._last = time.perf_counter()
        return self

    def finish(self, summary: Mapping[str, Any]) -> Path:
        """Write the summary, then give the run its final name."""
        _write_json(self.dir / "summary.json", {"run-id": self.run_id, **summary})
        if self.tracker is not None:
            self.tracker.close()  # before the rename: the event file is complete under its name
        os.replace(self.dir, self.final_dir)
        self.dir = self.final_dir
        return self.final_dir


def read_rounds(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(run_dir) / "rounds.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: give a run directory under results/")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_checkpoint(run_dir: str | os.PathLike) -> tuple[int, dict[str, np.ndarray]]:
    with np.load(Path(run_dir) / CHECKPOINT) as stored:
        arrays = {k: stored[k] for k in stored.files if not k.startswith("__")}
        return int(stored["__round__"]), arrays


def load_checkpoint_state(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """The ``extra`` entries of ``save_checkpoint``: strategy and RNG state."""
    with np.load(Path(run_dir) / CHECKPOINT) as stored:
        return {k: stored[k] for k in stored.files if k.startswith("__") and k != "__round__"}


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
