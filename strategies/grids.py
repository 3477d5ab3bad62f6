"""Grid wrappers: one that forwards everything, one that pulls replies often, and one that
also gives up when told to.

Flower's ``HttpGrid``, the ServerApp's grid under a SuperLink (deployment), sleeps 3 s between
pulls for replies: each send waited 1.5 s on average past its last reply (what that costs a
deployed round: docs/DEPLOY.md). ``PollingGrid`` pulls every 0.1 s, as Flower's in-memory grid
does.

Flower's simulation runs the ServerApp in a thread of its own. When the Simulation Runtime
fails to start (Ray cannot start, a ClientApp cannot be loaded), that thread would still wait
``round-timeout`` seconds for each round's replies, and the process could not exit until every
round had timed out. ``StoppableGrid`` checks an event between polls instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from flwr.app import Message
from flwr.serverapp import Grid


class ForwardingGrid(Grid):
    """``grid`` as it is; subclasses override what they change."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def set_run(self, run):
        self.grid.set_run(run)

    @property
    def run(self):
        return self.grid.run

    def create_message(self, *args, **kwargs):
        return self.grid.create_message(*args, **kwargs)

    def get_nodes(self):
        return self.grid.get_nodes()

    def push_messages(self, messages):
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids):
        return self.grid.pull_messages(message_ids)

    def send_and_receive(self, messages, *, timeout=None):
        return self.grid.send_and_receive(messages, timeout=timeout)


class PollingGrid(ForwardingGrid):
    """Waits for replies as Flower's grids do, pulling every ``poll_seconds``."""

    def __init__(self, grid: Grid, poll_seconds: float = 0.1) -> None:
        super().__init__(grid)
        self.poll_seconds = poll_seconds

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        waiting = set(self.push_messages(messages))
        end = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while waiting and (end is None or time.monotonic() < end):
            new = list(self.pull_messages(waiting))
            replies += new
            waiting -= {reply.metadata.reply_to_message_id for reply in new}
            if waiting:
                self._pause()
        return replies

    def _pause(self) -> None:
        time.sleep(self.poll_seconds)


class StoppableGrid(PollingGrid):
    """A ``PollingGrid`` that raises once ``stop`` is set."""

    def __init__(self, grid: Grid, stop: threading.Event, poll_seconds: float = 0.1) -> None:
        super().__init__(grid, poll_seconds)
        self.stop = stop

    def get_node_ids(self) -> Iterable[int]:
        self._check()  # the wait for nodes polls this
        return self.grid.get_node_ids()

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        self._check()
        return super().send_and_receive(messages, timeout=timeout)

    def _pause(self) -> None:
        self._check()
        self.stop.wait(self.poll_seconds)

    def _check(self) -> None:
        if self.stop.is_set():
            raise RuntimeError("the simulation runtime stopped before this round's replies "
                               "came (its error is reported above)")
