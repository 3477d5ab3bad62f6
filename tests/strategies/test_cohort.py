"""The cohort grid: few SuperNodes host many clients, and every strategy still sees one node
and one reply per client; the global arrays equal those of one node per client and of the
sequential loop, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fedlite.cohorts import balanced_layout, hosted, virtual_node_id
from fedlite.config import RunConfig
from fedlite.federation import data_for, run_sequential_fedavg
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


def test_the_layout_balances_the_nodes_by_training_set_size():
    sizes = [50, 10, 40, 30, 30, 20, 60, 10]
    layout = balanced_layout(sizes, 3)
    loads = [sum(sizes[c] for c in hosted(k, layout)) for k in range(3)]
    assert layout == (1, 2, 2, 2, 1, 0, 0, 0)  # largest first, each to the lightest node
    assert loads == [90, 80, 80]
    assert sorted(c for k in range(3) for c in hosted(k, layout)) == list(range(8))


def test_the_layout_beats_the_modulo_one_on_a_dirichlet_split():
    data = data_for(RunConfig.from_mapping({**BASE, "num-clients": 20}))
    sizes = [data.train_count(c) for c in range(20)]
    assert sizes == [len(data.client(c).train_y) for c in range(20)]

    def spread(layout):
        loads = [sum(sizes[c] for c in hosted(k, layout)) for k in range(4)]
        return max(loads) - min(loads)

    assert spread(balanced_layout(sizes, 4)) <= max(sizes)
    assert spread(balanced_layout(sizes, 4)) < spread([c % 4 for c in range(20)])


def test_equal_sizes_give_the_modulo_layout_and_one_node_per_client_itself():
    assert balanced_layout([5] * 10, 4) == tuple(c % 4 for c in range(10))
    assert balanced_layout([9, 1, 5], 3) == (0, 1, 2)  # a deployment: each node is its client
    with pytest.raises(ValueError, match="at least one node"):
        balanced_layout([1, 2], 0)


class ArrivalGrid:
    """Packed replies in the order the hosts happened to finish."""

    def __init__(self, order):
        self.order = order

    def send_and_receive(self, messages, *, timeout=None):
        return [SimpleNamespace(metadata=SimpleNamespace(src_node_id=node,
                                                         reply_to_message_id=""),
                                has_error=lambda: True) for node in self.order]


def test_the_strategy_sees_one_node_per_client_in_client_order():
    grid = CohortGrid(ArrivalGrid([]), {70: 1, 10: 0}, sizes=[1] * 5, carry_state=True)
    assert list(grid.get_node_ids()) == [virtual_node_id(c) for c in range(5)]


def test_a_packed_message_carries_its_clients_training_samples_as_its_load(server_identity):
    from flwr.app import ConfigRecord, Message, RecordDict

    from clients.cohort import dispatch_load

    grid = CohortGrid(ArrivalGrid([]), {70: 1, 10: 0}, sizes=[30, 10, 20, 40, 5],
                      carry_state=True)
    group = [Message(RecordDict({"config": ConfigRecord({"lr": 0.1})}),
                     dst_node_id=virtual_node_id(c), message_type="train") for c in (0, 4)]
    packed = grid.pack(0, "train", group)
    assert packed.metadata.dst_node_id == 10
    assert dispatch_load(packed) == 35.0
    assert dispatch_load(group[0]) == 0.0  # not a packed message


def final_arrays(summary: dict) -> dict[str, np.ndarray]:
    return load_checkpoint(summary["run-dir"])[1]


@pytest.mark.parametrize("case", list(CASES))
def test_cohorts_give_the_arrays_of_one_node_per_client(case, tmp_path, in_process):
    def run(nodes: int) -> dict:
        # every reply travels: bit for bit (summed replies are allclose: test_reduction.py)
        return in_process(RunConfig.from_mapping({**BASE, **CASES[case], "simulation-nodes": nodes,
                                                  "node-reduction": False,
                                                  "results-dir": str(tmp_path / str(nodes))}))

    # simulation-nodes 0: one node per client keeping its own client's state, as deployed
    per_node, cohorts, deployed = run(6), run(2), run(0)
    expected = final_arrays(per_node)
    for got in (final_arrays(cohorts), final_arrays(deployed)):
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
