"""Wait for the federation's nodes before round 1, never forever."""

from __future__ import annotations

import logging
import time

from flwr.serverapp import Grid

log = logging.getLogger("flwr")


def wait_for_nodes(grid: Grid, expected: int, timeout: float, poll: float = 0.2) -> int:
    """Block until ``expected`` nodes are registered; raise after ``timeout`` seconds.

    Flower 1.41's FedAvg samples from the nodes registered when round 1 starts, which in a
    fresh simulation is too few; its own wait for nodes has no timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        count = len(list(grid.get_node_ids()))
        if count >= expected:
            log.info("%d of %d nodes registered", count, expected)
            return count
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"only {count} of {expected} nodes registered within node-wait-timeout="
                f"{timeout:g}s: start more SuperNodes, lower num-clients, or raise "
                "node-wait-timeout")
        time.sleep(poll)
