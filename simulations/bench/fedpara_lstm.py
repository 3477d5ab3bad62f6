"""Dense, low-rank and FedPara LSTMs on Shakespeare (natural split, one client per play and
role) at matched budgets, one after another on Flower's simulation engine, same seed, clients
and batches: the FedPara paper's recurrent experiment (arXiv:2108.06098, Sec. 3.1).

FedPara factorizes the LSTM's input-to-hidden and hidden-to-hidden maps at the rank rule's
smallest rank (gamma = 0: R**2 reaches full rank), the paper's 19 % of the dense parameters;
the low-rank arm gets the same parameter budget (rank 2R). Bytes come from the real messages.
"""

from __future__ import annotations

from typing import Any

from fedlite.federation import data_for, initial_model
from simulations.engine import simulate
from simulations.scenarios import load_scenario

SCENARIO = "shakespeare"
ARMS = {"dense": ["fedpara.mode=none"],
        "lowrank": ["fedpara.mode=lowrank", "fedpara.gamma=0.0"],
        "fedpara": ["fedpara.mode=fedpara", "fedpara.gamma=0.0"]}
# Sized for 2 CPU cores (about 13 minutes an arm): 4 of 32 roles a round, 20 local steps each.
FULL = ["num-rounds=16", "fraction-train=0.125", "client-train-size=640"]
QUICK = ["num-rounds=2", "num-clients=8", "client-train-size=64", "central-eval-size=256"]


def configs(quick: bool):
    shared = ["results-dir=results/bench-runs", "run-name=fedpara-lstm",
              *(QUICK if quick else FULL)]
    return {arm: load_scenario(SCENARIO, [*shared, *extra]) for arm, extra in ARMS.items()}


def run(quick: bool) -> dict[str, Any]:
    arms: dict[str, Any] = {}
    for arm, scenario in configs(quick).items():
        rounds: list[dict[str, Any]] = []
        simulate(scenario.config, scenario.resources, on_round=rounds.append)
        arms[arm] = arm_summary(rounds, initial_model(scenario.config, data_for(scenario.config)))
    cfg = configs(quick)["fedpara"].config
    dense, lowrank, fedpara = arms["dense"], arms["lowrank"], arms["fedpara"]
    return {"methods": arms,
            "settings": {"model": cfg.model, "dataset": cfg.dataset, "partitioner": cfg.partitioner,
                         "clients": cfg.num_clients, "fraction_train": cfg.fraction_train,
                         "rounds": cfg.num_rounds, "client_train_size": cfg.client_train_size,
                         "local_epochs": cfg.local_epochs, "batch_size": cfg.batch_size,
                         "lr": cfg.lr, "lr_decay": cfg.lr_decay, "momentum": cfg.momentum,
                         "clip_grad_norm": cfg.clip_grad_norm,
                         "central_eval_size": cfg.central_eval_size,
                         "fedpara.gamma": cfg.to_flat()["fedpara.gamma"], "seed": cfg.seed},
            "goals": {
                "ahead_of_lowrank": fedpara["final_accuracy"] > lowrank["final_accuracy"],
                "within_1_point_of_dense":
                    fedpara["final_accuracy"] >= dense["final_accuracy"] - 0.01,
                "bytes_at_most_a_fifth_of_dense":
                    fedpara["bytes_per_round"] <= 0.2 * dense["bytes_per_round"]}}


def arm_summary(rounds: list[dict[str, Any]], model) -> dict[str, Any]:
    """Final and best next-character accuracy, bytes per trained round, parameters."""
    trained = [r for r in rounds if r["round"] >= 1]
    return {"final_accuracy": round(rounds[-1]["accuracy"], 4),
            "best_accuracy": round(max(r["accuracy"] for r in trained), 4),
            "params": sum(p.numel() for p in model.parameters()),
            "bytes_per_round": round(sum(r["bytes-down"] + r["bytes-up"] for r in trained)
                                     / len(trained)),
            "dense_bytes_per_round": round(sum(r["dense-bytes-down"] + r["dense-bytes-up"]
                                               for r in trained) / len(trained)),
            "accuracy_per_round": [round(r["accuracy"], 4) for r in rounds]}


def summary_line(record: dict[str, Any]) -> str:
    return ", ".join(f"{arm} {100 * r['final_accuracy']:.2f}% at {r['bytes_per_round'] / 1e6:.2f} "
                     f"MB/round ({r['params']:,} params)" for arm, r in record["methods"].items())
