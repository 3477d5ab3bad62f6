"""The grid wrappers: replies come through as from Flower's grids, pulled by the wrapper itself
(never by the wrapped grid's own, slower, wait), and a failed runtime ends the wait at once
instead of after ``round-timeout``."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from strategies import server_app
from strategies.grids import PollingGrid, StoppableGrid


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

    def send_and_receive(self, messages, *, timeout=None):
        raise AssertionError("the wrapper must pull replies itself (HttpGrid sleeps 3 s here)")


# Both wrappers pull replies themselves; StoppableGrid only adds the stop check.
WRAPPERS = {"polling": lambda grid, poll: PollingGrid(grid, poll),
            "stoppable": lambda grid, poll: StoppableGrid(grid, threading.Event(), poll)}


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_replies_come_through_until_all_are_in(wrap):
    grid = wrap(SlowGrid(), 0.001)
    replies = grid.send_and_receive(["a", "b", "c"], timeout=10)
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["id-0", "id-1", "id-2"]


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_timeout_returns_what_came(wrap):
    assert wrap(SlowGrid(silent=True), 0.01).send_and_receive(["a"], timeout=0.05) == []


def test_the_server_app_runs_the_federation_on_a_polling_grid(monkeypatch):
    # Under a SuperLink the ServerApp gets Flower's HttpGrid, which waits 3 s between pulls.
    seen = []
    monkeypatch.setattr(server_app, "preflight", lambda cfg: cfg)
    monkeypatch.setattr(server_app, "run_federation", lambda grid, cfg: seen.append(grid) or {})
    flower_grid = SlowGrid()
    server_app.main(flower_grid, SimpleNamespace(run_config={}))
    assert isinstance(seen[0], PollingGrid) and seen[0].grid is flower_grid


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
