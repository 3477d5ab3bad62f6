"""Which node hosts which clients when a simulation runs fewer SuperNodes than clients.

Node ``k`` of ``nodes`` hosts the clients ``k, k + nodes, k + 2 * nodes, ...`` (partition ids
below ``num_clients``): a fixed layout that both sides derive from the node's partition id and
the run config alone, and that spreads large and small partitions evenly. With one node per
client (``nodes == num_clients``, a deployment) every node hosts exactly its own client.
"""

from __future__ import annotations


def host_of(client: int, nodes: int) -> int:
    return client % nodes


def hosted(node: int, nodes: int, num_clients: int) -> list[int]:
    return list(range(node, num_clients, nodes))


def virtual_node_id(client: int) -> int:
    """The node id the strategy sees for ``client`` (never a real node's id on the wire)."""
    return client + 1


def client_of(node_id: int) -> int:
    return node_id - 1
