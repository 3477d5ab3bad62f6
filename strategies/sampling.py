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

from strategies.grids import ForwardingGrid

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


class PartitionOrderedGrid(ForwardingGrid):
    """``grid`` with node ids listed by partition id (unknown nodes last, by id)."""

    def __init__(self, grid: Grid, partitions: dict[int, int]) -> None:
        super().__init__(grid)
        self.partitions = partitions

    def get_node_ids(self) -> Iterable[int]:
        return sorted(self.grid.get_node_ids(), key=lambda node: (
            node not in self.partitions, self.partitions.get(node, 0), node))
