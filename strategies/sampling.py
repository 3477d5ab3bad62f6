"""Seeded client sampling: one seed picks the same clients each round in every run.

Flower's strategies sample with Python's ``random`` from ``grid.get_node_ids()``, and a
simulation draws new random node ids each run, so seeding ``random`` alone does not fix which
clients train. Each node is asked once for its partition id, and the grid lists node ids in
partition order.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

QUERY = "query.partition"


def partition_ids(grid: Grid, timeout: float) -> dict[int, int]:
    """Node id -> partition id, from one query message per node."""
    messages = [Message(RecordDict(), dst_node_id=node, message_type=QUERY)
                for node in grid.get_node_ids()]
    order = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_error():
            raise RuntimeError(f"node {reply.metadata.src_node_id} did not say its partition id "
                               f"({reply.error.reason}); its ClientApp must answer {QUERY!r}")
        order[reply.metadata.src_node_id] = int(reply.content["metrics"]["partition-id"])
    return order


class PartitionOrderedGrid(Grid):
    """``grid`` with node ids listed by partition id (unknown nodes last, by id)."""

    def __init__(self, grid: Grid, partitions: dict[int, int]) -> None:
        self.grid, self.partitions = grid, partitions

    def get_node_ids(self) -> Iterable[int]:
        return sorted(self.grid.get_node_ids(), key=lambda node: (
            node not in self.partitions, self.partitions.get(node, 0), node))

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
