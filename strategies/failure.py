"""A run that trains nothing useful fails loudly: what went wrong, and what to do about it.

A round is skipped (the model kept) when fewer than ``min-replies`` usable replies came; every
reply may have been rejected (a strategy returning float64 arrays, a client sending NaN),
failed (an exception in the ClientApp), or not come at all (a timeout). If no round after the
first aggregated anything, the run's records are kept, but it ends with an error that names the
first cause seen and its fix.
"""

from __future__ import annotations

from typing import Any

from fedlite.config import RunConfig
from fedlite.errors import RunFailed

__all__ = ["RunFailed", "cause", "failure_of"]


def failure_of(cfg: RunConfig, skipped: list[int], strategy: Any) -> str | None:
    """Why the run failed, or None: every round skipped, or every round after the first."""
    rounds = range(1, cfg.num_rounds + 1)
    counted = [r for r in rounds if r >= 2] or list(rounds)
    if any(r not in skipped for r in counted):
        return None
    everything = all(r in skipped for r in rounds)
    which = "every round" if everything else "every round after round 1"
    return (f"{which} was skipped, the model never changed: "
            f"{cause(strategy, list(rounds) if everything else counted)}")


def cause(strategy: Any, rounds: list[int]) -> str:
    for server_round in rounds:
        rejected = strategy.rejected.get(server_round)
        if rejected:
            node, reason = rejected[0]
            return (f"round {server_round}: the reply of node {node} was rejected ({reason}); a "
                    "reply must carry exactly the arrays the server sent, with their shapes "
                    "and dtypes, finite values and a num-examples of 0 or more. A strategy that "
                    "changes them (or a client that does) is the place to look")
    for server_round in rounds:
        traffic = strategy.rounds.get(server_round)
        if traffic is not None and traffic.first_error:
            return (f"round {server_round}: a client failed ({traffic.first_error}); rerun "
                    "with --verbose to see its traceback")
    return ("no client replied within round-timeout (or fewer than min-replies did): raise "
            "round-timeout or lower min-replies, and check that the clients are up")
