"""The cohort grid: few SuperNodes host many clients, and every strategy still sees one node
and one reply per client; the global arrays equal those of one node per client and of the
sequential loop, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fedlite.cohorts import hosted, virtual_node_id
from fedlite.config import RunConfig
from fedlite.federation import run_sequential_fedavg
from fedlite.records import load_checkpoint
from strategies.cohort import CohortGrid

BASE = {"dataset": "digits", "num-clients": 6, "num-rounds": 3, "partitioner": "dirichlet",
        "dirichlet-alpha": 0.5, "model": "mlp", "central-eval-size": 50, "seed": 2}
CASES = {  # what must follow its client from round to round, and a strategy that needs them all
    "dense": {},
    "fedpara": {"fedpara.mode": "fedpara", "fedpara.gamma": 0.5},
    "pfedpara": {"fedpara.mode": "pfedpara", "fedpara.gamma": 0.5},  # W2 stays per client
    "skip": {"skip.enabled": True, "skip.period": "epoch", "local-epochs": 2},  # tau, histogram
    "fedmedian": {"strategy": "flwr.serverapp.strategy:FedMedian"},  # individual updates
}


def test_a_fixed_layout_every_client_on_one_node():
    layout = [hosted(k, 4, 10) for k in range(4)]
    assert layout == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]
    assert sorted(c for clients in layout for c in clients) == list(range(10))
    assert [hosted(k, 3, 3) for k in range(3)] == [[0], [1], [2]]  # a deployment: one each


class ArrivalGrid:
    """Packed replies in the order the hosts happened to finish."""

    def __init__(self, order):
        self.order = order

    def send_and_receive(self, messages, *, timeout=None):
        return [SimpleNamespace(metadata=SimpleNamespace(src_node_id=node,
                                                         reply_to_message_id=""),
                                has_error=lambda: True) for node in self.order]


def test_the_strategy_sees_one_node_per_client_in_client_order():
    grid = CohortGrid(ArrivalGrid([]), {70: 1, 10: 0}, num_clients=5, carry_state=True)
    assert list(grid.get_node_ids()) == [virtual_node_id(c) for c in range(5)]


def final_arrays(summary: dict) -> dict[str, np.ndarray]:
    return load_checkpoint(summary["run-dir"])[1]


@pytest.mark.parametrize("case", list(CASES))
def test_cohorts_give_the_arrays_of_one_node_per_client(case, tmp_path, in_process):
    def run(nodes: int) -> dict:
        # every reply travels: bit for bit (summed replies are allclose: test_reduction.py)
        return in_process(RunConfig.from_mapping({**BASE, **CASES[case], "simulation-nodes": nodes,
                                                  "node-reduction": False,
                                                  "results-dir": str(tmp_path / str(nodes))}))

    per_node, cohorts = run(6), run(2)
    expected, got = final_arrays(per_node), final_arrays(cohorts)
    assert expected.keys() == got.keys()
    for key in expected:
        assert expected[key].tobytes() == got[key].tobytes(), key
    if case != "fedmedian":  # the sequential loop is FedAvg's
        cfg = RunConfig.from_mapping({**BASE, **CASES[case], "results-dir": str(tmp_path)})
        loop = run_sequential_fedavg(cfg).arrays
        for key in expected:
            assert loop[key].tobytes() == expected[key].tobytes(), key
    lines = [json.loads(line) for line in
             (Path(cohorts["run-dir"]) / "rounds.jsonl").read_text().splitlines()]
    # bytes are what each client would send and receive; the transport is beside them
    first = lines[1]
    assert first["replies-ok"] == 6 and first["transport-messages"] == 2
    assert first["transport-bytes-down"] < first["bytes-down"]  # the global arrays once a host


def test_a_failed_host_fails_each_of_its_clients_and_the_run_goes_on(tmp_path, in_process,
                                                                     in_process_grid):
    cfg = RunConfig.from_mapping({**BASE, "simulation-nodes": 3, "results-dir": str(tmp_path)})
    summary = in_process(cfg, grid=in_process_grid(cfg, fail_host=101))  # hosts clients 1, 4
    lines = [json.loads(line) for line in
             (Path(summary["run-dir"]) / "rounds.jsonl").read_text().splitlines()]
    assert [(line["replies-ok"], line["replies-failed"]) for line in lines[1:]] == [(4, 2)] * 3
    assert summary["failure"] is None and lines[-1]["accuracy"] > lines[0]["accuracy"]
