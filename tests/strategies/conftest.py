"""What strategy tests share: a Grid with fixed nodes."""

from __future__ import annotations

import pytest


class NodesGrid:
    """What strategies ask of a Grid when sampling: the registered node ids (mutable)."""

    def __init__(self, nodes):
        self.nodes = list(nodes)

    def get_node_ids(self):
        return list(self.nodes)


@pytest.fixture
def grid():
    """``grid(nodes)``: a Grid that reports these node ids."""
    return NodesGrid
