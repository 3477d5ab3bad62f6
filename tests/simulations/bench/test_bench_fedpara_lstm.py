"""The fedpara-lstm benchmark's arithmetic and arms: per-round bytes over trained rounds only."""

import torch

from simulations.bench.fedpara_lstm import arm_summary, configs

ROUNDS = [{"round": 0, "accuracy": 0.01},  # the initial model: no traffic yet
          {"round": 1, "accuracy": 0.20, "bytes-down": 100, "bytes-up": 50,
           "dense-bytes-down": 500, "dense-bytes-up": 250},
          {"round": 2, "accuracy": 0.30, "bytes-down": 100, "bytes-up": 70,
           "dense-bytes-down": 500, "dense-bytes-up": 350},
          {"round": 3, "accuracy": 0.25, "bytes-down": 100, "bytes-up": 60,
           "dense-bytes-down": 500, "dense-bytes-up": 300}]


def test_arm_summary():
    summary = arm_summary(ROUNDS, torch.nn.Linear(3, 2))
    assert summary == {"final_accuracy": 0.25, "best_accuracy": 0.3, "params": 8,
                       "bytes_per_round": 160, "dense_bytes_per_round": 800,
                       "accuracy_per_round": [0.01, 0.2, 0.3, 0.25]}


def test_arms_differ_only_in_the_factorization():
    arms = {arm: scenario.config for arm, scenario in configs(quick=True).items()}
    assert [cfg.fedpara.mode for cfg in arms.values()] == ["none", "lowrank", "fedpara"]
    assert arms["lowrank"].fedpara.gamma == arms["fedpara"].fedpara.gamma == 0.0
    plain = {arm: cfg.replace(fedpara=arms["dense"].fedpara) for arm, cfg in arms.items()}
    assert plain["dense"] == plain["lowrank"] == plain["fedpara"]
    assert arms["fedpara"].dataset == "shakespeare" and arms["fedpara"].model == "lstm"
