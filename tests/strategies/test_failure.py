"""A run that trains nothing useful fails loudly: rejected replies and skipped rounds are
counted, and a run in which no round after the first changed the model exits non-zero with
the first cause and its fix."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from fedlite.config import RunConfig

# What Flower's FedAdam did to fedlite runs before its output was cast back: the global
# arrays go out as float64, every float32 reply is rejected, every round is skipped.
WIDENING = textwrap.dedent('''
    import numpy as np
    from flwr.app import Array, ArrayRecord
    from flwr.serverapp.strategy import FedAvg


    class Widening(FedAvg):
        def configure_train(self, server_round, arrays, config, grid):
            wide = ArrayRecord({k: Array(a.numpy().astype(np.float64)) for k, a in arrays.items()})
            return super().configure_train(server_round, wide, config, grid)
''')
BASE = {"dataset": "digits", "num-clients": 2, "num-rounds": 3, "partitioner": "iid",
        "client-train-size": 40, "central-eval-size": 50}


@pytest.fixture
def widening(tmp_path) -> str:
    path = tmp_path / "widening.py"
    path.write_text(WIDENING)
    return f"{path}:Widening"


def test_every_reply_rejected_fails_the_run_and_says_why(widening, tmp_path, in_process):
    cfg = RunConfig.from_mapping({**BASE, "strategy": widening,
                                  "results-dir": str(tmp_path / "r")})
    summary = in_process(cfg)
    assert summary["replies-rejected"] == 6 and summary["rounds-skipped"] == [1, 2, 3]
    assert "every round was skipped" in summary["failure"]
    assert "has dtype float32, expected float64" in summary["failure"]
    lines = [json.loads(line) for line in
             (Path(summary["run-dir"]) / "rounds.jsonl").read_text().splitlines()]
    assert [line.get("replies-rejected") for line in lines[1:]] == [2, 2, 2]
    stored = json.loads((Path(summary["run-dir"]) / "summary.json").read_text())
    assert stored["failure"] == summary["failure"]  # the records are kept


def test_a_healthy_run_has_no_failure(tmp_path, in_process):
    summary = in_process(RunConfig.from_mapping({**BASE, "results-dir": str(tmp_path)}))
    assert summary["failure"] is None and summary["rounds-skipped"] == []
    assert summary["replies-rejected"] == summary["replies-failed"] == 0


def test_rounds_after_the_first_count():
    from types import SimpleNamespace

    from strategies.failure import failure_of

    strategy = SimpleNamespace(rejected={}, rounds={})
    cfg = RunConfig(num_rounds=3)
    assert failure_of(cfg, [1], strategy) is None  # round 1 may fail alone
    assert "after round 1" in failure_of(cfg, [2, 3], strategy)
    assert "round-timeout" in failure_of(cfg, [2, 3], strategy)
    assert failure_of(RunConfig(num_rounds=1), [], strategy) is None
    assert "every round" in failure_of(RunConfig(num_rounds=1), [1], strategy)


@pytest.mark.integration
def test_the_cli_exits_non_zero_naming_the_cause(widening, tmp_path, capsys):
    from simulations.cli import main

    code = main(["run", "digits-smoke", f"strategy={widening}", "num-rounds=2",
                 f"results-dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 1
    assert "run failed" in err and "expected float64" in err and "A strategy that" in err
