"""Which node hosts which clients when a simulation runs fewer SuperNodes than clients.

The layout is fixed for a run and balanced by training-set size, which is what a client's local
epochs cost: clients are taken largest first (ties: lower partition id first) and each goes to
the node with the least data so far (ties: the lower node). Two actors that each serve two nodes
then finish a full-participation round together; the modulo layout ``k, k + nodes, ...`` left
one actor training 10 % longer than the other on the default scenario's Dirichlet split, and
the round waited on it. Partitions of equal size (an IID split) get exactly that modulo layout.
Only the driver needs the layout: it packs each node's clients into that node's message. With
one node per client (a deployment) every node hosts exactly its own client.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


def balanced_layout(sizes: Sequence[int], nodes: int) -> tuple[int, ...]:
    """The node of each client (``sizes[c]``: client ``c``'s training samples)."""
    if nodes < 1:
        raise ValueError(f"a layout needs at least one node, got {nodes}")
    if nodes >= len(sizes):
        return tuple(range(len(sizes)))
    host = [0] * len(sizes)
    loads = [(0, node) for node in range(nodes)]  # a heap: least data, then lowest node
    for client in sorted(range(len(sizes)), key=lambda c: (-sizes[c], c)):
        load, node = heapq.heappop(loads)
        host[client] = node
        heapq.heappush(loads, (load + int(sizes[client]), node))
    return tuple(host)


def hosted(node: int, layout: Sequence[int]) -> list[int]:
    """The clients ``node`` hosts under ``layout``, in partition order."""
    return [client for client, host in enumerate(layout) if host == node]


def virtual_node_id(client: int) -> int:
    """The node id the strategy sees for ``client`` (never a real node's id on the wire)."""
    return client + 1


def client_of(node_id: int) -> int:
    return node_id - 1
