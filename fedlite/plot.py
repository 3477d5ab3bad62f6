"""The run plot: central accuracy against round and against cumulative bytes on the wire."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fedlite.records import read_rounds  # noqa: E402


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> Path:
    """Lay out, write (creating its directory) and close a figure."""
    target = Path(path)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return target


def plot_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write ``accuracy.png`` (or ``out``) for one run directory and return its path."""
    rounds = [r for r in read_rounds(run_dir) if r.get("accuracy") is not None]
    target = Path(out) if out else Path(run_dir) / "accuracy.png"
    fig, (by_round, by_bytes) = plt.subplots(1, 2, figsize=(10, 4))
    if rounds:
        xs = [r["round"] for r in rounds]
        ys = [100 * r["accuracy"] for r in rounds]
        by_round.plot(xs, ys, marker="o")
        by_bytes.plot([r["cumulative-bytes"] / 1e6 for r in rounds], ys, marker="o")
    by_round.set(xlabel="round", ylabel="central test accuracy (%)", title=Path(run_dir).name)
    by_bytes.set(xlabel="cumulative bytes down + up (MB)", ylabel="central test accuracy (%)")
    for axis in (by_round, by_bytes):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
