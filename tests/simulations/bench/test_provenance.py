"""A benchmark's JSON says where it ran: the commit, and the machine down to the vector ISA
torch's kernels were chosen for (two CPUs can train the same seed to different curves)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

from simulations.bench import provenance


def test_provenance_names_the_commit_and_the_cpu_the_kernels_were_chosen_for():
    # Execute
    record = provenance(["fedlite", "bench", "skip"], "2026-12-07T08:00:00+0000")
    # Assert
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[3], check=True).stdout.strip()
    assert record["command"] == "fedlite bench skip"
    assert record["commit"] == head
    machine = record["machine"]
    assert machine["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(machine["cpu_model"], str) and machine["cpu_model"]
    assert machine["torch"] == torch.__version__


def test_provenance_holds_where_flower_is_not_installed(monkeypatch):
    # the GPU machine runs the in-process benchmarks with torch alone
    import importlib.metadata as metadata

    real = metadata.version

    def version(name):
        if name == "flwr":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    record = provenance(["fedlite", "bench", "skip-gpu"], "2026-12-07T08:00:00+0000")
    assert record["machine"]["flwr"] is None
