"""Dropouts and stragglers: no round waits forever, and too few replies leave the model unchanged.

Flower's FedAvg samples with ``sample_nodes``, which sleeps until ``min_available_nodes`` nodes
are connected, with no timeout: one SuperNode lost for good hangs the run (flwrlabs/flower
#1172, FLIP PR #992). This wrapper waits at most ``node_wait`` seconds per round for
``min_replies`` nodes, then lets the inner strategy sample from exactly the nodes connected at
that moment (its minimums capped to that count). ``Strategy.start`` already bounds each round's
``send_and_receive`` with ``round-timeout``; replies that arrive later are dropped by Flower.
If fewer than ``min_replies`` good replies came back, the round is skipped: ``aggregate_train``
returns no arrays, which ``Strategy.start`` reads as "keep the global model".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from strategies.reduction import reduced_count

MINIMUMS = ("min_available_nodes", "min_train_nodes", "min_evaluate_nodes")

log = logging.getLogger("flwr")


class FixedNodes:
    """A Grid whose node list is frozen: a node that leaves between the count and the sample
    cannot make ``sample_nodes`` wait (its message then fails or times out instead)."""

    def __init__(self, grid: Grid, node_ids: list[int]) -> None:
        self._grid, self._node_ids = grid, list(node_ids)

    def get_node_ids(self) -> list[int]:
        return list(self._node_ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


class Reliability(Strategy):
    """Delegates to ``inner``; bounds the wait for nodes and enforces ``min_replies``."""

    def __init__(self, inner: Strategy, min_replies: int = 1, node_wait: float = 120.0,
                 poll: float = 0.5) -> None:
        self.inner, self.min_replies = inner, min_replies
        self.node_wait, self.poll = node_wait, poll
        self.skipped: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _connected(self, grid: Grid, server_round: int) -> list[int]:
        """The connected nodes once there are ``min_replies`` of them, or after ``node_wait``."""
        deadline = time.monotonic() + self.node_wait
        while len(nodes := list(grid.get_node_ids())) < self.min_replies:
            if time.monotonic() >= deadline:
                break
            time.sleep(self.poll)
        if len(nodes) < self.min_replies:
            log.warning("fedlite: round %d: only %d node(s) connected after %gs, fewer than "
                "min-replies=%d", server_round, len(nodes), self.node_wait, self.min_replies)
        return nodes

    @contextmanager
    def _capped(self, count: int) -> Iterator[None]:
        """The inner strategy's minimums, lowered to ``count`` for one call (then restored)."""
        saved = {name: getattr(self.inner, name) for name in MINIMUMS
                 if isinstance(getattr(self.inner, name, None), int)}
        for name, value in saved.items():
            setattr(self.inner, name, min(value, max(count, 1)))
        try:
            yield
        finally:
            for name, value in saved.items():
                setattr(self.inner, name, value)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        nodes = self._connected(grid, server_round)
        if len(nodes) < self.min_replies:
            return []  # aggregate_train sees no replies and skips the round
        with self._capped(len(nodes)):
            return list(self.inner.configure_train(server_round, arrays, config,
                                                   FixedNodes(grid, nodes)))

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        good = sum(reduced_count(msg)[0] for msg in replies if not msg.has_error())
        if good < self.min_replies:
            self.skipped.add(server_round)
            log.warning("fedlite: round %d skipped: %d usable repl%s within round-timeout, "
                "min-replies=%d; the global model is unchanged", server_round, good,
                "y" if good == 1 else "ies", self.min_replies)
            return None, None
        if good < len(replies):
            log.info("fedlite: round %d aggregates %d of %d replies", server_round, good,
                len(replies))
        return self.inner.aggregate_train(server_round, replies)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        nodes = list(grid.get_node_ids())  # evaluation never waits: it is optional
        if not nodes:
            return []
        with self._capped(len(nodes)):
            return list(self.inner.configure_evaluate(server_round, arrays, config,
                                                      FixedNodes(grid, nodes)))

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]
                           ) -> MetricRecord | None:
        replies = list(replies)
        if not any(not msg.has_error() for msg in replies):
            return None
        return self.inner.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        self.inner.summary()


def unwrap(strategy: Strategy) -> Strategy:
    """The user's strategy inside the wrappers (each keeps it as ``inner``)."""
    while "inner" in vars(strategy):
        strategy = vars(strategy)["inner"]
    return strategy
