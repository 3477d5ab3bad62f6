"""Checkpoint and resume: a run stopped after round k and resumed ends where an uninterrupted
run ends; the strategy's own state (FedAvgM's momentum) and the RNG state come back too.
The Ray path of the same ServerApp is covered by tests/strategies/test_fedpara_run.py."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import FedAdam, FedAvgM

from fedlite.config import ConfigError, RunConfig
from fedlite.records import load_checkpoint, load_checkpoint_state
from strategies.checkpointing import (restore_rng_state, restore_strategy_state, rng_state,
                                      strategy_state)


def test_strategy_state_round_trips():
    adam = FedAdam()
    adam.m_t = {"w": np.ones(3)}
    adam.v_t = {"w": np.full(3, 2.0)}
    avgm = FedAvgM(server_momentum=0.9)
    avgm.momentum_vector = [np.ones(2), np.zeros(1)]
    avgm.current_arrays = ArrayRecord({"w": Array(np.arange(3.0))})
    for strategy, fresh in ((adam, FedAdam()), (avgm, FedAvgM(server_momentum=0.9))):
        restore_strategy_state(fresh, strategy_state(strategy))
        assert strategy_state(fresh).keys() == strategy_state(strategy).keys()
        for key, value in strategy_state(strategy).items():
            np.testing.assert_array_equal(strategy_state(fresh)[key], value)


def test_rng_state_round_trips():
    state = rng_state()
    first = (random.random(), np.random.rand())
    restore_rng_state(state)
    assert (random.random(), np.random.rand()) == first


def test_resumed_run_ends_with_the_uninterrupted_weights(tmp_path, in_process):
    base = {"dataset": "digits", "num-clients": 3, "partitioner": "iid", "model": "mlp",
            "fedpara.mode": "fedpara", "central-eval-size": 100,
            "strategy": "flwr.serverapp.strategy:FedAvgM",
            "strategy-kwargs": '{"server_momentum": 0.9, "server_learning_rate": 1.0}'}

    def run(rounds: int, results: Path, **extra) -> Path:
        cfg = RunConfig.from_mapping({**base, "num-rounds": rounds, "results-dir": str(results),
                                      **extra})
        return Path(in_process(cfg)["run-dir"])

    whole = run(3, tmp_path / "whole")
    first = run(1, tmp_path / "split")
    killed = first.with_name(first.name + ".partial")  # what a run killed after round 1 leaves
    first.rename(killed)
    (killed / "summary.json").unlink()
    assert "__strategy__/list/0/momentum_vector/0" in load_checkpoint_state(killed)
    with pytest.raises(ConfigError, match="other values of lr"):  # preflight: no Ray started
        run(3, tmp_path / "split", **{"resume-from": str(killed), "lr": 0.2})
    with pytest.raises(ConfigError, match="already completed round 1"):
        run(1, tmp_path / "split", **{"resume-from": str(killed)})
    resumed = run(3, tmp_path / "split", **{"resume-from": str(killed)})
    assert resumed == first  # the same run, completed under its final name
    done, expected = load_checkpoint(whole)
    again, got = load_checkpoint(resumed)
    assert done == again == 3 and expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
    rounds = [json.loads(line)["round"] for line in
              (resumed / "rounds.jsonl").read_text().splitlines()]
    assert rounds == [0, 1, 2, 3]


def test_reopen_drops_a_round_recorded_after_the_last_checkpoint(tmp_path):
    from fedlite.records import RunRecorder

    recorder = RunRecorder(tmp_path, "run", {"num-rounds": 3})
    for server_round in (0, 1, 2):
        recorder.log_round({"round": server_round, "bytes-down": 10, "bytes-up": 5})
        if server_round < 2:  # killed between round 2's record and its checkpoint
            recorder.save_checkpoint({"w": np.full(2, server_round, np.float32)}, server_round)
    reopened = RunRecorder.reopen(recorder.dir)
    assert [r["round"] for r in reopened.rounds] == [0, 1]
    assert (reopened.cumulative_down, reopened.cumulative_up) == (20, 10)
    assert reopened.final_dir == recorder.final_dir
    with pytest.raises(FileNotFoundError, match="partial"):
        RunRecorder.reopen(recorder.final_dir)


def test_cli_resume_of_a_missing_run_fails_before_any_worker(tmp_path, capsys):
    from simulations.cli import main

    missing = tmp_path / "run-x.partial"
    assert main(["run", "digits-smoke", "--resume", str(missing)]) == 2
    assert "resume-from" in capsys.readouterr().err


@pytest.mark.parametrize("nodes", [2, 6])  # 6 clients on 2 host nodes, or one node each
@pytest.mark.parametrize("method", [
    {"skip.enabled": True, "skip.period": "epoch", "local-epochs": 2},  # threshold, histogram
    {"fedpara.mode": "pfedpara", "fedpara.gamma": 0.5},  # W2 stays with each client
])
def test_a_resumed_simulation_gives_its_clients_their_state_back(method, nodes, tmp_path,
                                                                  in_process):
    # the driver keeps each client's state between its rounds, in every round's checkpoint
    base = {"dataset": "digits", "num-clients": 6, "partitioner": "iid", "model": "mlp",
            "central-eval-size": 50, "simulation-nodes": nodes, "fraction-train": 0.5,
            **method}

    def run(rounds: int, results: Path, **extra) -> Path:
        cfg = RunConfig.from_mapping({**base, "num-rounds": rounds, "results-dir": str(results),
                                      **extra})
        return Path(in_process(cfg)["run-dir"])

    whole = run(4, tmp_path / "whole")
    first = run(2, tmp_path / "split")
    killed = first.with_name(first.name + ".partial")
    first.rename(killed)
    (killed / "summary.json").unlink()
    assert "__clients__" in load_checkpoint_state(killed)
    resumed = run(4, tmp_path / "split", **{"resume-from": str(killed)})
    _, expected = load_checkpoint(whole)
    _, got = load_checkpoint(resumed)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
