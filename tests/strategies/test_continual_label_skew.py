"""Class-incremental learning on label-skewed clients through the real ServerApp, ClientApp and
Flower's FedAvg: clients that hold none of a task's classes, or none of the classes just
finished, report other metrics than the rest and reply with weight 0, and the run goes on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedlite.config import RunConfig
from fedlite.federation import data_for

pytestmark = pytest.mark.usefixtures("partition_cache")

KEYS = {"dataset": "digits", "num-clients": 6, "partitioner": "dirichlet",
        "dirichlet-alpha": 0.1, "model": "continual-cnn", "continual.enabled": True,
        "continual.num-tasks": 2, "continual.rounds-per-task": 1, "num-rounds": 2,
        "continual.augment-steps": 3, "continual.student-epochs-scale": 1,
        "continual.student-head-steps": 5, "continual.server-head-steps": 5,
        "local-epochs": 1, "lr": 0.02, "device": "cpu", "seed": 1}


@pytest.mark.parametrize("hosts", [0, 2])  # one node per client; two hosts summing replies
def test_clients_without_a_tasks_classes_do_not_stop_the_run(hosts, tmp_path, in_process):
    cfg = RunConfig.from_mapping({**KEYS, "simulation-nodes": hosts,
                                  "results-dir": str(tmp_path)})
    data = data_for(cfg)
    lacking = [c for c in range(cfg.num_clients)
               if not np.isin(data.client(c).train_y, np.arange(5, 10)).any()]
    assert lacking, "the split must leave some client without task 1's classes"
    summary = in_process(cfg)
    lines = [json.loads(line) for line in
             (Path(summary["run-dir"]) / "rounds.jsonl").read_text().splitlines()][1:]
    assert [line["round"] for line in lines] == [1, 2]
    for line in lines:  # every client replied; none was taken for a malformed reply
        assert (line["replies-ok"], line["replies-failed"], line["replies-rejected"]) == (6, 0, 0)
        assert line["round-skipped"] == 0
    assert summary["rounds-skipped"] == [] and summary["failure"] is None
