"""Framework overhead: one FedAvg workload through Flower's simulation engine and through a
plain in-process sequential loop (torch on all cores), same data, seeds and rounds.

This VM's speed drifts by more than the difference measured (the same round took 11 to 14 s
within minutes), so the four runs go in a mirrored order, Flower, loop, loop, Flower: each
side's mean sits at the same point in time and a linear drift cancels. Every figure is the
mean of its side's two runs; each run's own figures are kept under ``runs``."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from fedlite.config import RunConfig
from fedlite.federation import run_sequential_fedavg
from fedlite.threads import torch_threads
from simulations.engine import Resources, simulate

ORDER = ("flower", "loop", "loop", "flower")


def workload(quick: bool) -> RunConfig:
    return RunConfig(num_rounds=3 if quick else 5, num_clients=10 if quick else 20,
                     dataset="auto", partitioner="dirichlet", model="cnn",
                     results_dir="results/bench-runs", run_name="overhead")


def flower_run(cfg: RunConfig) -> dict[str, Any]:
    marks: list[float] = []
    accuracy: list[float] = []
    trained: list[float] = []

    ideal: list[float] = []
    actors = Resources(num_cpus=1).actors(os.cpu_count(), 0)

    def on_round(line: dict[str, Any]) -> None:
        marks.append(time.perf_counter())
        accuracy.append(line.get("accuracy"))
        if line["round"] >= 1:
            trained.append(line.get("train/train-seconds", 0.0))
            # the clients' one-thread training spread evenly over the actors, and the
            # server's evaluation: what a round costs with no framework at all
            ideal.append(line.get("train/train-seconds", 0.0) / actors
                         + line.get("central-eval-seconds", 0.0))

    launch = time.perf_counter()
    simulate(cfg, Resources(num_cpus=1), on_round=on_round)
    seconds = time.perf_counter() - launch
    # round r = mark r - mark r-1
    rounds = [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)]
    steady = statistics.median(rounds[1:])
    return {"seconds": seconds, "rounds": rounds, "steady": steady,
            "startup": (marks[1] - launch) - steady, "accuracy": accuracy[-1],
            "train_seconds": trained, "steady_train": statistics.median(trained[1:]),
            "ideal": statistics.median(ideal[1:])}


def loop_run(cfg: RunConfig) -> dict[str, Any]:
    with torch_threads(os.cpu_count() or 1):
        start = time.perf_counter()
        loop = run_sequential_fedavg(cfg)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "rounds": loop.round_seconds,
            "steady": statistics.median(loop.round_seconds[1:]), "accuracy": loop.accuracy[-1],
            "train_seconds": loop.train_seconds,
            "steady_train": statistics.median(loop.train_seconds[1:])}


def run(quick: bool) -> dict[str, Any]:
    cfg = workload(quick)
    runs = [(side, flower_run(cfg) if side == "flower" else loop_run(cfg)) for side in ORDER]
    flower = [r for side, r in runs if side == "flower"]
    loop = [r for side, r in runs if side == "loop"]

    def mean(side: list[dict[str, Any]], key: str) -> float:
        return round(statistics.fmean(r[key] for r in side), 3)

    steady_flower, steady_loop = mean(flower, "steady"), mean(loop, "steady")
    return {"rounds": cfg.num_rounds, "clients": cfg.num_clients, "dataset": cfg.dataset,
            "order": ", ".join(ORDER),
            "flower_seconds": mean(flower, "seconds"), "loop_seconds": mean(loop, "seconds"),
            "startup_seconds": mean(flower, "startup"),
            "steady_round_seconds_flower": steady_flower,
            "steady_round_seconds_loop": steady_loop,
            "steady_ratio": round(steady_flower / steady_loop, 3),
            "ideal_round_seconds": mean(flower, "ideal"),
            "steady_to_ideal": round(steady_flower / mean(flower, "ideal"), 3),
            # each Flower run against the loop run next to it in time
            "steady_ratio_by_pair": [round(flower_side["steady"] / loop_side["steady"], 3)
                                     for flower_side, loop_side in zip(flower, loop, strict=True)],
            "accuracy_flower": flower[0]["accuracy"], "accuracy_loop": loop[0]["accuracy"],
            # where the ratio comes from: the same clients' training, one thread per actor
            # (summed over both actors) against the loop's two threads
            "steady_train_seconds_flower": mean(flower, "steady_train"),
            "steady_train_seconds_loop": mean(loop, "steady_train"),
            "second_thread_speedup": round(mean(flower, "steady_train")
                                           / mean(loop, "steady_train"), 3),
            "runs": [{"side": side, **_rounded(r)} for side, r in runs],
            "definitions": {
                "ideal_round_seconds": "the clients' summed one-thread training seconds of a "
                                       "round divided by the client actors, plus the server's "
                                       "central evaluation: median of rounds 2..R, mean of "
                                       "the two Flower runs",
                "steady_round": "median wall time of rounds 2..R (training, aggregation and "
                                "central evaluation), mean of the side's two runs",
                "startup": "wall time from launch to the end of round 1, minus one steady round "
                           "(Ray start, actor start, data loading in the workers), mean of "
                           "the two Flower runs",
                "steady_train_seconds": "the clients' own train-seconds summed over a round "
                                        "(median of rounds 2..R), mean of the side's two runs",
                "second_thread_speedup": "steady_train_seconds_flower / _loop: what torch's "
                                         "second thread buys the loop; two one-core actors at "
                                         "best halve the Flower side's, so the steady ratio "
                                         "cannot beat about speedup / 2 plus evaluation"},
            "goal": {"steady_ratio_max": 0.65, "startup_seconds_max": 15,
                     "steady_to_ideal_max": 1.05}}


def _rounded(record: dict[str, Any]) -> dict[str, Any]:
    return {key: [round(v, 3) for v in value] if isinstance(value, list) else round(value, 4)
            for key, value in record.items()}


def summary_line(record: dict[str, Any]) -> str:
    return (f"steady round {record['steady_round_seconds_flower']:.2f} s (Flower) vs "
            f"{record['steady_round_seconds_loop']:.2f} s (loop) = {record['steady_ratio']:.2f}x "
            f"(goal <= 0.65; torch's second thread gave the loop "
            f"{record['second_thread_speedup']:.2f}x), startup {record['startup_seconds']:.1f} s "
            f"(goal <= 15), {record['steady_to_ideal']:.2f}x the ideal round "
            f"{record['ideal_round_seconds']:.2f} s (goal <= 1.05), accuracy "
            f"{record['accuracy_flower']:.4f} vs "
            f"{record['accuracy_loop']:.4f}")
