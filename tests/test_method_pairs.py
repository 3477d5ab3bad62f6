"""Every pair of methods in one federation: it trains for two rounds on digits (through the
real ServerApp, strategies and ClientApp, in process), or it is refused before any worker
starts with a message that names both methods' keys."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from fedlite.arrays import state_arrays
from fedlite.config import ConfigError, RunConfig
from fedlite.federation import data_for, initial_model

FEDPROX = {"strategy": "flwr.serverapp.strategy:FedProx",
           "strategy-kwargs": '{"proximal_mu": 0.1}'}
# each method switched on, with the key its refusals must name
METHODS = {
    "fedpara": ({"fedpara.mode": "pfedpara", "fedpara.gamma": 0.5}, "fedpara."),
    "fedper": ({"local-modules": "MODEL_HEAD"}, "local-modules"),
    "local": ({"federated": False}, "federated"),
    "fsp": ({"fsp.teacher": "TEACHER", "fsp.stage1-rounds": 1}, "fsp."),
    "continual": ({"continual.enabled": True, "continual.tasks": "0-4,5-9",
                   "continual.rounds-per-task": 1, "continual.augment-steps": 2,
                   "continual.vectors-per-class": 2, "continual.student-epochs-scale": 1,
                   "continual.student-head-steps": 20},
                  "continual."),
    "skip": ({"skip.enabled": True, "skip.error-bound": 0.3}, "skip."),
    "fedprox": (FEDPROX, "proximal"),
    "attack": ({"attack.fraction": 0.5}, "attack."),
}
MODEL = {"fsp": "resnet8", "continual": "continual-cnn"}  # what a method needs of the model
HEAD = {"cnn": "classifier", "resnet8": "fc", "continual-cnn": "teacher.classifier"}
# small on purpose: 28 pairs of two-round runs. pFedPara's own scenario clips gradients (its
# Hadamard factors diverge on some clients without), so every pair does.
BASE = {"dataset": "digits", "num-clients": 2, "num-rounds": 2, "partitioner": "iid",
        "client-train-size": 32, "central-eval-size": 32, "batch-size": 16,
        "clip-grad-norm": 3.0}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    """A resnet8 checkpoint to learn from (FSP needs one; trained or not does not matter)."""
    cfg = RunConfig.from_mapping({**BASE, "model": "resnet8", "seed": 1})
    path = tmp_path_factory.mktemp("teacher") / "checkpoint.npz"
    np.savez(path, __round__=np.asarray(1), **state_arrays(initial_model(cfg, data_for(cfg))))
    return str(path)


def pair_config(first: str, second: str, teacher: str, results: Path) -> RunConfig:
    models = {MODEL[m] for m in (first, second) if m in MODEL}
    model = sorted(models)[0] if models else "cnn"  # two demands: the refusal says which
    keys = {**BASE, "model": model, "results-dir": str(results)}
    for method in (first, second):
        for key, value in METHODS[method][0].items():
            keys[key] = {"MODEL_HEAD": HEAD[model], "TEACHER": teacher}.get(value, value) \
                if isinstance(value, str) else value
    return RunConfig.from_mapping(keys)


def evidence(method: str, lines: list[dict], summary: dict) -> bool:
    """That the method did its part in the pair's run."""
    trained = [line for line in lines if line["round"] >= 1]
    nothing_travels = summary["total-bytes"] == 0  # Local: nothing to factorize or stay near
    return {
        "fedpara": lambda: all(line["bytes-up"] < line["dense-bytes-up"] for line in trained)
        or nothing_travels,
        "fedper": lambda: summary["personalized"],
        "local": lambda: summary["personalized"] and summary["total-bytes"] == 0,
        "fsp": lambda: [line.get("stage") for line in trained] == [1, 2],
        "continual": lambda: [line.get("continual/task") for line in trained] == [0, 1],
        # the gate is on in every round with labels (FSP's stage 1 has none)
        "skip": lambda: all("train/skip-threshold" in line for line in trained
                            if line.get("stage") != 1),
        "fedprox": lambda: all(line.get("train/proximal-mu") == pytest.approx(0.1)
                               for line in trained) or nothing_travels,
        "attack": lambda: True,  # what an attacker sends is tested in tests/fedlite/test_attack.py
    }[method]()


@pytest.mark.parametrize("first,second", list(itertools.combinations(METHODS, 2)))
def test_two_methods_train_together_or_are_refused_naming_both(first, second, teacher,
                                                               tmp_path, in_process):
    try:
        cfg = pair_config(first, second, teacher, tmp_path)
        summary = in_process(cfg)
    except ConfigError as refusal:
        message = str(refusal)
        assert METHODS[first][1] in message and METHODS[second][1] in message, message
        return
    lines = [json.loads(line) for line in
             (Path(summary["run-dir"]) / "rounds.jsonl").read_text().splitlines()]
    assert summary["failure"] is None and [line["round"] for line in lines] == [0, 1, 2]
    assert not any(line.get("round-skipped") for line in lines)
    for method in (first, second):
        assert evidence(method, lines, summary), method


def test_continual_learning_skips_backprop(tmp_path, in_process):
    cfg = RunConfig.from_mapping({
        **BASE, "model": "continual-cnn", "results-dir": str(tmp_path),
        "client-train-size": 150, "local-epochs": 4, "lr": 0.05,
        **METHODS["continual"][0], "continual.student": False,
        **METHODS["skip"][0], "skip.period": "epoch", "skip.error-bound": 0.5,
        "skip.min-threshold": 0.0})
    summary = in_process(cfg)
    lines = [json.loads(line) for line in
             (Path(summary["run-dir"]) / "rounds.jsonl").read_text().splitlines()]
    fractions = [line["train/skip-backprop-fraction"] for line in lines if line["round"] >= 1]
    assert summary["failure"] is None and min(fractions) < 1.0, fractions
