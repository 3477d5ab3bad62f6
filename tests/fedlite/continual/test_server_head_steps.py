"""``continual.server-head-steps``: the clients report per-class feature statistics, the server
pools them and fits the aggregated student's head to the aggregated first model's head; the
Flower path and the sequential loop take the same step, and bad settings name their key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import MetricRecord

from fedlite.config import ConfigError, RunConfig
from fedlite.continual import augment, class_stats
from fedlite.continual.method import Continual
from fedlite.continual.model import ContinualNet
from fedlite.federation import SequentialFedAvg, run_setup
from fedlite.records import load_checkpoint
from strategies.reduction import weighted_metrics
from strategies.server_app import build_strategy

torch.set_num_threads(1)
DIM = 3


def _table(rows: dict[int, tuple[list[float], list[float]]], classes: int = 4) -> np.ndarray:
    labels = sorted(rows)
    centres = torch.tensor([rows[c][0] for c in labels])
    spreads = torch.tensor([rows[c][1] for c in labels])
    return class_stats.client_stats(classes, DIM, centres, spreads, labels)


def test_pooled_statistics_weigh_every_holder_alike_also_through_a_host_sum():
    # Prepare: two clients hold class 1, one holds class 2; nobody class 0 or 3
    a = _table({1: ([1.0, 2.0, 0.0], [1.0, 0.0, 0.0]), 2: ([4.0, 4.0, 4.0], [0.5, 0.5, 0.5])})
    b = _table({1: ([3.0, 2.0, 2.0], [1.0, 0.0, 0.0])})
    replies = [(30.0, {class_stats.KEY: class_stats.report(a, 30)}),
               (10.0, {class_stats.KEY: class_stats.report(b, 10)})]
    # Execute: directly, and as one host's num-examples-weighted mean (node-side reduction)
    centres, spreads, labels = class_stats.pooled(replies, 4, DIM)
    host = weighted_metrics([(w, MetricRecord({"num-examples": int(w), **m})) for w, m in replies])
    via_host = class_stats.pooled([(40.0, dict(host))], 4, DIM)
    # Assert: class 1 is the equal mix of the two clients' groups (pooled mean and variance)
    assert labels.tolist() == [1, 2]
    torch.testing.assert_close(centres[0], torch.tensor([2.0, 2.0, 1.0]))
    # variance per dimension: mean of (s^2 + m^2) minus the pooled mean squared
    torch.testing.assert_close(spreads[0], torch.tensor([float(np.sqrt(2.0)), 0.0, 1.0]),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(centres[1], torch.tensor([4.0, 4.0, 4.0]))
    torch.testing.assert_close(spreads[1], torch.tensor([0.5, 0.5, 0.5]))
    for got, want in zip(via_host, (centres, spreads, labels), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert class_stats.pooled([(5.0, {"train-loss": 1.0})], 4, DIM) is None


def cfg_for(tmp_path, **keys) -> RunConfig:
    flat = {"dataset": "digits", "num-clients": 2, "partitioner": "iid", "model": "continual-cnn",
            "device": "cpu", "continual.enabled": True, "continual.rounds-per-task": 1,
            "num-rounds": 5, "continual.augment-steps": 3, "local-epochs": 1, "lr": 0.02,
            "continual.student-head-steps": 20, "continual.server-head-steps": 50,
            "seed": 2, "results-dir": str(tmp_path / "results"), **keys}
    return RunConfig.from_mapping(flat)


def test_the_server_step_fits_the_students_head_to_the_teachers_on_the_probes(tmp_path):
    # Prepare: a model whose student head is its own (random), statistics of four classes
    cfg = cfg_for(tmp_path, **{"continual.server-head-steps": 300})
    torch.manual_seed(0)
    model = ContinualNet((1, 8, 8), 10)
    features = torch.relu(torch.randn(200, 128))
    labels = torch.arange(200) % 4
    table = class_stats.client_stats(
        10, 128, torch.stack([features[labels == c].mean(0) for c in range(4)]),
        torch.stack([features[labels == c].std(0) for c in range(4)]), [0, 1, 2, 3])
    replies = [(200.0, {class_stats.KEY: class_stats.report(table, 200)})]
    probes = augment.diagonal_points(*class_stats.pooled(replies, 10, 128), 512,
                                     torch.Generator().manual_seed(9))[0]
    model.set_seen([0, 1, 2, 3])

    def disagreement() -> tuple[float, float]:
        """The student's embedding error relative to the teacher's, and how often their
        predictions differ, on probes of the four classes."""
        with torch.no_grad():
            (z_s, l_s), (z_t, l_t) = model.student.head(probes), model.teacher.head(probes)
            return (float((z_s - z_t).pow(2).mean() / z_t.pow(2).mean()),
                    float((l_s.argmax(1) != l_t.argmax(1)).float().mean()))

    extractor = {k: v.clone() for k, v in model.student.features.state_dict().items()}
    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    before = disagreement()
    # Execute: round 2 of five single-round tasks of two classes: classes 0-3 seen
    figures = Continual().server_step(cfg.section("continual"), model, 2,
                                      run_setup(cfg, None, model), replies)
    # Assert
    after = disagreement()
    assert after[0] < 0.1 * before[0] and after[1] < before[1] / 3, (before, after)
    assert figures["continual-server-head-classes"] == 4
    for k, v in model.student.features.state_dict().items():
        torch.testing.assert_close(v, extractor[k], rtol=0, atol=0)
    for k, v in model.teacher.state_dict().items():
        torch.testing.assert_close(v, teacher[k], rtol=0, atol=0)
    assert Continual().server_step(cfg.section("continual"), model, 2,
                                   run_setup(cfg, None, model), [(1.0, {})]) == {}


def test_flower_and_the_sequential_loop_take_the_same_step(tmp_path, in_process):
    cfg = cfg_for(tmp_path, **{"continual.tasks": "0-3,4-6,7-9", "num-rounds": 3})
    summary = in_process(cfg)
    sequential = SequentialFedAvg(cfg)
    for _ in range(cfg.num_rounds):
        sequential.step()
    done, arrays = load_checkpoint(summary["run-dir"])
    assert done == cfg.num_rounds
    for key, value in sequential.global_arrays.items():
        np.testing.assert_array_equal(arrays[key], value, err_msg=key)
    lines = [json.loads(line) for line in
             (Path(summary["run-dir"]) / "rounds.jsonl").read_text().splitlines()]
    # the step ran after every round with statistics, on the classes seen by then
    assert [line.get("continual-server-head-classes") for line in lines[1:]] == [4.0, 7.0, 10.0]
    # and it changed the student: without it the same run ends elsewhere
    plain = SequentialFedAvg(cfg.with_keys({"continual.server-head-steps": 0}))
    for _ in range(cfg.num_rounds):
        plain.step()
    assert not np.array_equal(plain.global_arrays["student.classifier.weight"],
                              sequential.global_arrays["student.classifier.weight"])
    np.testing.assert_array_equal(plain.global_arrays["teacher.classifier.weight"],
                                  sequential.global_arrays["teacher.classifier.weight"])


def test_a_negative_count_names_the_key_and_other_students_take_no_server_step(tmp_path):
    with pytest.raises(ConfigError, match="continual.server-head-steps"):
        cfg_for(tmp_path, **{"continual.server-head-steps": -1}).section("continual")
    method = Continual()
    assert method.has_server_step(cfg_for(tmp_path).section("continual"))
    for keys in ({"continual.method": "pass"}, {"continual.student-head": "copied"},
                 {"continual.augment-space": "feature"}, {"continual.student": False}):
        assert not method.has_server_step(cfg_for(tmp_path, **keys).section("continual"))


@pytest.mark.parametrize("strategy", ["flwr.serverapp.strategy:FedAdam",
                                      "flwr.serverapp.strategy:FedAvgM"])
def test_strategies_with_server_state_are_refused(tmp_path, strategy):
    with pytest.raises(ConfigError, match="server-head-steps"):
        build_strategy(cfg_for(tmp_path, strategy=strategy))
