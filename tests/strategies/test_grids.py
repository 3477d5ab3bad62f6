"""The stoppable grid: replies come through as from Flower's grids, and a failed runtime ends
the wait at once instead of after ``round-timeout``."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from strategies.grids import StoppableGrid


class SlowGrid:
    """Push returns ids; each pull hands over at most one reply, or none when ``silent``."""

    def __init__(self, silent: bool = False) -> None:
        self.silent, self.pending = silent, []

    def push_messages(self, messages):
        self.pending = [f"id-{i}" for i, _ in enumerate(messages)]
        return list(self.pending)

    def pull_messages(self, message_ids):
        if self.silent or not self.pending:
            return []
        return [SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=self.pending.pop()))]

    def get_node_ids(self):
        return [1, 2]


def test_replies_come_through_until_all_are_in():
    grid = StoppableGrid(SlowGrid(), threading.Event(), poll_seconds=0.001)
    replies = grid.send_and_receive(["a", "b", "c"], timeout=10)
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["id-0", "id-1", "id-2"]


def test_timeout_returns_what_came():
    grid = StoppableGrid(SlowGrid(silent=True), threading.Event(), poll_seconds=0.01)
    assert grid.send_and_receive(["a"], timeout=0.05) == []


def test_a_stopped_runtime_ends_the_wait_at_once():
    # Prepare: no reply will ever come; the runtime "fails" 0.2 s into an hour-long wait
    stop = threading.Event()
    grid = StoppableGrid(SlowGrid(silent=True), stop, poll_seconds=0.01)
    threading.Timer(0.2, stop.set).start()
    start = time.monotonic()
    # Execute / Assert
    with pytest.raises(RuntimeError, match="simulation runtime stopped"):
        grid.send_and_receive(["a"], timeout=3600)
    assert time.monotonic() - start < 5
    with pytest.raises(RuntimeError, match="simulation runtime stopped"):
        grid.get_node_ids()  # the wait for nodes polls this
