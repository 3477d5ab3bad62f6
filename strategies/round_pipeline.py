"""Round r's central evaluation, record line and checkpoint, run while round r+1 trains.

The central evaluation of round r's global model feeds nothing the next round needs: the
strategy has aggregated, and round r+1's messages carry only the arrays. So the ServerApp hands
the evaluation (and the line and checkpoint that wait for its figures) to one worker thread and
returns to Flower at once, which sends round r+1 while the server evaluates. Where the server
has cores of its own (a deployment) the evaluation's time leaves the round; in a simulation on
two cores it takes its CPU from the actors instead, and a round at 10,000 clients was a few per
cent shorter (docs/experiments/scale.md).

One round is in flight at a time: the next round's end, and the run's end, wait for it. So the
lines are written in round order, each with the same figures as in line, each round's
checkpoint after its line (a resumed run reruns a round whose line is missing, as before), and
an evaluation that raises fails the run at the next wait. What the round's record needs from
the strategy and the grid (traffic, transport, the checkpoint's strategy and client state) is
taken before handing over, so the next round cannot change it underneath.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class RoundPipeline:
    """``submit(work)``: wait for the round in flight, then run ``work`` in the background
    (``overlap``) or here; ``wait()`` before anything reads what ``work`` writes. Used as a
    context manager around the run, it records the last round when the run ends."""

    def __init__(self, overlap: bool) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="fedlite-round-end") if overlap \
            else None
        self.pending: Future | None = None

    @property
    def overlaps(self) -> bool:
        return self.pool is not None

    def submit(self, work: Callable[[], Any]) -> Any:
        """``work()``'s result when run in line; None when it runs in the background."""
        self.wait()
        if self.pool is None:
            return work()
        self.pending = self.pool.submit(work)
        return None

    def wait(self) -> None:
        """Block until the round in flight is recorded; re-raise what it raised."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> RoundPipeline:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        """Leaving the run: the last round is recorded, then the worker stops. When the run
        itself raised, that error is the one reported (the round in flight still finishes)."""
        try:
            self.wait()
        except Exception:
            if error is None:
                raise
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)
