"""Framework overhead: one FedAvg workload through Flower's simulation engine and through a
plain in-process sequential loop (torch on all cores), same data, seeds and rounds."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import torch

from fedlite.config import RunConfig
from fedlite.federation import run_sequential_fedavg
from simulations.engine import Resources, simulate


def workload(quick: bool) -> RunConfig:
    return RunConfig(num_rounds=3 if quick else 5, num_clients=10 if quick else 20,
                     dataset="auto", partitioner="dirichlet", model="cnn",
                     results_dir="results/bench-runs", run_name="overhead")


def run(quick: bool) -> dict[str, Any]:
    cfg = workload(quick)
    marks: list[float] = []
    accuracy: list[float] = []

    def on_round(line: dict[str, Any]) -> None:
        marks.append(time.perf_counter())
        accuracy.append(line.get("accuracy"))

    launch = time.perf_counter()
    simulate(cfg, Resources(num_cpus=1), on_round=on_round)
    flower_seconds = time.perf_counter() - launch
    flower_rounds = [b - a for a, b in zip(marks[:-1], marks[1:])]  # round r = mark r - mark r-1
    steady_flower = statistics.median(flower_rounds[1:])
    startup = (marks[1] - launch) - steady_flower

    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    loop = run_sequential_fedavg(cfg)
    loop_seconds = time.perf_counter() - start
    steady_loop = statistics.median(loop.round_seconds[1:])
    return {"rounds": cfg.num_rounds, "clients": cfg.num_clients, "dataset": cfg.dataset,
            "flower_seconds": round(flower_seconds, 3), "loop_seconds": round(loop_seconds, 3),
            "startup_seconds": round(startup, 3),
            "steady_round_seconds_flower": round(steady_flower, 3),
            "steady_round_seconds_loop": round(steady_loop, 3),
            "steady_ratio": round(steady_flower / steady_loop, 3),
            "round_seconds_flower": [round(s, 3) for s in flower_rounds],
            "round_seconds_loop": [round(s, 3) for s in loop.round_seconds],
            "accuracy_flower": accuracy[-1], "accuracy_loop": loop.accuracy[-1],
            "definitions": {
                "steady_round": "median wall time of rounds 2..R (training, aggregation and "
                                "central evaluation)",
                "startup": "wall time from launch to the end of round 1, minus one steady round "
                           "(Ray start, actor start, data loading in the workers)"},
            "goal": {"steady_ratio_max": 0.65, "startup_seconds_max": 15}}


def summary_line(record: dict[str, Any]) -> str:
    return (f"steady round {record['steady_round_seconds_flower']:.2f} s (Flower) vs "
            f"{record['steady_round_seconds_loop']:.2f} s (loop) = {record['steady_ratio']:.2f}x "
            f"(goal <= 0.65), startup {record['startup_seconds']:.1f} s (goal <= 15), accuracy "
            f"{record['accuracy_flower']:.4f} vs {record['accuracy_loop']:.4f}")
