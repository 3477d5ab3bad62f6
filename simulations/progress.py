"""The progress line: one line per recorded round, with what each method did and what failed."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from fedlite.methods import table

STRATEGY_PREFIX = "strategy/"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def strategy_parts(line: dict[str, Any], limit: int = 3) -> list[str]:
    """A strategy's own metrics (not an average of the clients' ones), when there are few."""
    client_keys = {k.removeprefix("train/") for k in line if k.startswith("train/")}
    own = {k.removeprefix(STRATEGY_PREFIX): v for k, v in line.items()
           if k.startswith(STRATEGY_PREFIX) and "/" not in k.removeprefix(STRATEGY_PREFIX)
           and k.removeprefix(STRATEGY_PREFIX) not in client_keys}
    if not own or len(own) > limit:
        return []
    return ["  ".join(f"{k} {v:.4g}" for k, v in own.items())]


def round_parts(line: dict[str, Any], num_rounds: int) -> list[str]:
    parts = [f"round {line['round']:>3}/{num_rounds}"]
    if line.get("accuracy") is not None:
        parts.append(f"accuracy {pct(line['accuracy'])}  loss {line['loss']:.3f}")
    if line.get("client-accuracy-mean") is not None:
        parts.append(f"client accuracy {pct(line['client-accuracy-mean'])}")
    if "bytes-down" in line:
        parts.append(f"down {line['bytes-down'] / 1e6:.2f} MB  up {line['bytes-up'] / 1e6:.2f} MB"
                     f"  replies {line['replies-ok']} ok {line['replies-failed']} failed")
        if line.get("replies-rejected"):
            parts.append(f"{line['replies-rejected']} REJECTED")
        if line.get("round-skipped"):
            parts.append("SKIPPED (model unchanged)")
    for method in table.methods():
        parts += method.progress(line)
    parts += strategy_parts(line)
    return parts


def print_progress(num_rounds: int, stream: TextIO | None = None,
                   clock: Callable[[], float] = time.monotonic) -> Callable[[dict], None]:
    """``on_round`` for a run of ``num_rounds``: prints each recorded round with the time since
    the first recorded line and, from the first trained round on, the estimated time left."""
    first: list[tuple[int, float]] = []  # (round, time) of the first line seen

    def show(line: dict[str, Any]) -> None:
        now = clock()
        if not first:
            first.append((line["round"], now))
        start_round, start = first[0]
        parts = [*round_parts(line, num_rounds), f"{line['seconds']:.1f} s"]
        done = line["round"] - start_round
        if done > 0:
            left = (num_rounds - line["round"]) * (now - start) / done
            parts.append(f"elapsed {duration(now - start)}"
                         + (f"  eta {duration(left)}" if left > 0 else ""))
        print("  ".join(parts), file=stream or sys.stdout, flush=True)

    return show
