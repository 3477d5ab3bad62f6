"""One seed, one order: node ids listed, and replies returned, in partition order.

Flower's strategies sample with Python's ``random`` from ``grid.get_node_ids()``, and a
simulation draws new random node ids each run, so seeding ``random`` alone does not fix which
clients train. Replies arrive in whatever order the clients finish, and float addition is not
associative, so aggregating in arrival order makes two runs of one seed differ in the last
bits (and then in accuracy). Each node is asked once for its partition id; the grid then lists
node ids in partition order and hands every round's replies to the strategy in that order.
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
    """``grid`` with node ids listed, and replies returned, by partition id (unknown nodes
    last, by id)."""

    def __init__(self, grid: Grid, partitions: dict[int, int]) -> None:
        super().__init__(grid)
        self.partitions = partitions

    def _key(self, node: int) -> tuple[bool, int, int]:
        return node not in self.partitions, self.partitions.get(node, 0), node

    def get_node_ids(self) -> Iterable[int]:
        return sorted(self.grid.get_node_ids(), key=self._key)

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        replies = self.grid.send_and_receive(messages, timeout=timeout)
        return sorted(replies, key=lambda reply: self._key(reply.metadata.src_node_id))
