"""What strategy tests share: the ServerApp's process identity and a Grid with fixed nodes."""

from __future__ import annotations

import pytest
from flwr.supercore.task_identity import TaskIdentity


class NodesGrid:
    """What strategies ask of a Grid when sampling: the registered node ids (mutable)."""

    def __init__(self, nodes):
        self.nodes = list(nodes)

    def get_node_ids(self):
        return list(self.nodes)


@pytest.fixture
def server_identity(monkeypatch):
    """Messages read the run and task ids of the process, as inside a ServerApp."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)


@pytest.fixture
def grid():
    """``grid(nodes)``: a Grid that reports these node ids."""
    return NodesGrid
