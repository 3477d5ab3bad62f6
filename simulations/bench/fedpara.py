"""FedPara vs dense FedAvg vs low-rank: the same vgg-small, data, rounds and seeds, run one after
another on Flower's simulation engine; bytes are measured from the real messages."""

from __future__ import annotations

from typing import Any

from fedlite.config import RunConfig
from fedlite.federation import data_for, initial_model
from fedlite.data import resolve_name
from simulations.engine import simulate
from simulations.scenarios import load_scenario

METHODS = {"dense": "dense-vgg", "fedpara": "fedpara", "lowrank": "lowrank"}
QUICK = ["num-rounds=3", "fraction-train=0.03", "local-epochs=1", "central-eval-size=500"]


def configs(quick: bool) -> dict[str, tuple[RunConfig, Any]]:
    shared = ["results-dir=results/bench-runs", *(QUICK if quick else [])]
    return {method: _load(scenario, shared) for method, scenario in METHODS.items()}


def _load(scenario: str, overrides: list[str]):
    loaded = load_scenario(scenario, overrides)
    return loaded.config, loaded.resources


def run_methods(quick: bool) -> dict[str, list[dict[str, Any]]]:
    """Every method's round lines (round 0 is the initial model's central evaluation)."""
    lines: dict[str, list[dict[str, Any]]] = {}
    for method, (cfg, resources) in configs(quick).items():
        lines[method] = []
        simulate(cfg, resources, on_round=lines[method].append)
    return lines


def bytes_to(rounds: list[dict[str, Any]], target: float) -> int | None:
    """Cumulative bytes (down + up) when central accuracy first reaches ``target``."""
    return next((r["cumulative-bytes"] for r in rounds if r["round"] >= 1
                 and r.get("accuracy", 0.0) >= target), None)


def run(quick: bool) -> dict[str, Any]:
    lines = run_methods(quick)
    target = lines["dense"][-1]["accuracy"] - 0.01  # 1 point under dense's final accuracy
    methods = {}
    for method, rounds in lines.items():
        cfg = configs(quick)[method][0]
        trained = [r for r in rounds if r["round"] >= 1]
        methods[method] = {
            "final_accuracy": rounds[-1]["accuracy"],
            "params": sum(p.numel() for p in initial_model(cfg, data_for(cfg)).parameters()),
            "bytes_per_round": round(sum(r["bytes-down"] + r["bytes-up"] for r in trained)
                                     / len(trained)),
            "dense_bytes_per_round": round(sum(r["dense-bytes-down"] + r["dense-bytes-up"]
                                               for r in trained) / len(trained)),
            "bytes_to_target": bytes_to(rounds, target),
            "accuracy_per_round": [round(r["accuracy"], 4) for r in rounds],
            "gamma": (cfg.section("fedpara").gamma if cfg.section("fedpara").mode != "none"
                      else None)}
    dense, fedpara, lowrank = methods["dense"], methods["fedpara"], methods["lowrank"]
    saving = (dense["bytes_to_target"] / fedpara["bytes_to_target"]
              if fedpara["bytes_to_target"] else None)
    cfg = configs(quick)["fedpara"][0]
    return {"target": round(target, 4), "methods": methods,
            "bytes_to_target_saving": None if saving is None else round(saving, 2),
            "settings": {"model": cfg.model, "dataset": resolve_name(cfg.dataset),
                         "clients": cfg.num_clients,
                         "fraction_train": cfg.fraction_train, "rounds": cfg.num_rounds,
                         "partitioner": f"dirichlet alpha={cfg.dirichlet_alpha}",
                         "lr": cfg.lr, "momentum": cfg.momentum,
                         "clip_grad_norm": cfg.clip_grad_norm,
                         "local_epochs": cfg.local_epochs,
                         "central_eval_size": cfg.central_eval_size,
                         "fedpara.exclude": cfg.section("fedpara").exclude, "seed": cfg.seed},
            "goals": {
                "bytes_to_target_5x": saving is not None and saving >= 5,
                "within_1_point_of_dense":
                    fedpara["final_accuracy"] >= dense["final_accuracy"] - 0.01,
                "ahead_of_lowrank": fedpara["final_accuracy"] > lowrank["final_accuracy"]}}


def summary_line(record: dict[str, Any]) -> str:
    m = record["methods"]
    parts = [f"{name} {100 * r['final_accuracy']:.2f}% at {r['bytes_per_round'] / 1e6:.2f} MB/round"
             for name, r in m.items()]
    saving = record["bytes_to_target_saving"]
    return (", ".join(parts) + f"; to {100 * record['target']:.2f}%: FedPara "
            + (f"{saving:.1f}x fewer bytes than dense (goal >= 5x)" if saving else "never reached"))
