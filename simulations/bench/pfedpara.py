"""pFedPara vs FedAvg, FedPer and Local on a pathological split (2 classes per client), MLP
784-256-10, one after another on Flower's simulation engine, for each of three seeds (the same
for all four methods); each model is judged on every client's own held-out split.

The goals use the model each client holds once the round is over (the server's aggregate plus
its own local arrays; FedAvg: the global model), for all four methods. The same split judged
at the end of each client's local training, before aggregation, is reported next to it."""

from __future__ import annotations

from typing import Any

import numpy as np

from fedlite.data import resolve_name
from simulations.engine import simulate
from simulations.scenarios import load_scenario

METHODS = {"fedavg": "fedavg-mlp-pathological", "fedper": "fedper", "local": "local",
           "pfedpara": "pfedpara"}
QUICK = ["num-rounds=3", "num-clients=10"]
# Methods 0.2 point apart are level within one run's noise; the goals are judged on the mean
# over these seeds (each seed: its own split, initial model and batch order, same for all).
SEEDS = (0, 1, 2)


def run_method(scenario: str, seed: int, quick: bool) -> dict[str, Any]:
    loaded = load_scenario(scenario, ["results-dir=results/bench-runs", f"seed={seed}",
                                      *(QUICK if quick else [])])
    rounds: list[dict[str, Any]] = []
    simulate(loaded.config, loaded.resources, on_round=rounds.append)
    trained = [r for r in rounds if r["round"] >= 1]

    def last(key: str) -> float:
        return round(trained[-1][key], 4)

    def per_round(key: str) -> list[float]:
        return [round(r[key], 4) for r in trained]

    return {"mean_client_accuracy": last("client-accuracy-mean"),
            "std_client_accuracy": last("client-accuracy-std"),
            "upload_bytes_per_round": round(sum(r["bytes-up"] for r in trained) / len(trained)),
            "client_accuracy_per_round": per_round("client-accuracy-mean"),
            "mean_client_accuracy_after_train": last("client-accuracy-after-train-mean"),
            "std_client_accuracy_after_train": last("client-accuracy-after-train-std"),
            "client_accuracy_after_train_per_round": per_round("client-accuracy-after-train-mean")}


def run(quick: bool) -> dict[str, Any]:
    seeds = SEEDS[:1] if quick else SEEDS
    per_seed = {seed: {method: run_method(scenario, seed, quick)
                       for method, scenario in METHODS.items()} for seed in seeds}
    methods = {}
    for method in METHODS:
        runs = [per_seed[seed][method] for seed in seeds]
        averaged = ("mean_client_accuracy", "std_client_accuracy",  # std: spread over clients
                    "mean_client_accuracy_after_train")
        methods[method] = {
            **{key: round(float(np.mean([r[key] for r in runs])), 4) for key in averaged},
            "upload_bytes_per_round": runs[0]["upload_bytes_per_round"],
            "per_seed": {str(seed): run for seed, run in zip(seeds, runs, strict=True)}}
    cfg = load_scenario(METHODS["pfedpara"], QUICK if quick else []).config  # what it ran with
    acc = {name: m["mean_client_accuracy"] for name, m in methods.items()}
    up = {name: m["upload_bytes_per_round"] for name, m in methods.items()}
    return {"methods": methods,
            "settings": {"model": cfg.model, "dataset": resolve_name(cfg.dataset),
                         "clients": cfg.num_clients, "rounds": cfg.num_rounds,
                         "classes_per_client": cfg.classes_per_client,
                         "gamma": cfg.section("fedpara").gamma,
                         "local_lr_scale": cfg.section("fedpara").local_lr_scale, "lr": cfg.lr,
                         "clip_grad_norm": cfg.clip_grad_norm,
                         "momentum": cfg.momentum, "local_epochs": cfg.local_epochs,
                         "seeds": list(seeds),
                         "evaluation": "each client's held-out split, after aggregation (goals); "
                                       "also at the end of local training (*_after_train); "
                                       "mean_client_accuracy / std_client_accuracy: mean "
                                       "over seeds of the last round's mean / std over "
                                       "clients"},
            "goals": {"fedavg_plus_10_points": acc["pfedpara"] >= acc["fedavg"] + 0.10,
                      "at_least_local": acc["pfedpara"] >= acc["local"],
                      "at_least_fedper": acc["pfedpara"] >= acc["fedper"],
                      "upload_at_most_third_of_fedavg": up["pfedpara"] <= up["fedavg"] / 3}}


def summary_line(record: dict[str, Any]) -> str:
    parts = [f"{name} {100 * m['mean_client_accuracy']:.2f}% (seeds "
             + " / ".join(f"{100 * r['mean_client_accuracy']:.2f}" for r in m["per_seed"].values())
             + f") up {m['upload_bytes_per_round'] / 1e3:.0f} kB/round"
             for name, m in record["methods"].items()]
    met = sum(record["goals"].values())
    return ", ".join(parts) + f"; goals met {met}/{len(record['goals'])}"
