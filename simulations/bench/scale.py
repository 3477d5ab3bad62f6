"""Scale: populations of 1,000 and 10,000 clients, 50 sampled per round, on Fashion-MNIST (IID,
about 50 training samples a client at 1,000 and 5 at 10,000) with the small CNN.

Side by side on the same clients and seeds: the cohort engine (``simulation-nodes = 0``: a few
SuperNodes per Ray actor, each hosting a fixed share of the population, each summing its
clients' replies), the same without node-side reduction, Flower's usual layout
of one SuperNode per client (1,000 only: at 10,000 its start-up alone takes minutes), and a plain
in-process loop over the same sampled clients (fedlite's own local round, torch on all cores,
the weighted mean, central evaluation). Start-up is launch to the first record (the nodes are up
and the initial model is evaluated); a round is the time between two records; peak memory is
the summed RSS of this process and every Ray process under it.

This machine's speed drifts over minutes (the loop's rounds by up to half between runs, the
engine's by up to a fifth), so the loop and the cohort engine run in ``PAIRS`` alternating
pairs, each pair back to back, and the round ratio is the median of the pairs' ratios."""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from fedlite.arrays import load_arrays
from fedlite.config import RunConfig
from fedlite.data import resolve_name
from fedlite.federation import WeightedMean, data_for, initial_model, local_round
from fedlite.threads import torch_threads
from fedlite.train import evaluate
from fedlite.wire import wire_state
from simulations.engine import Resources, simulate

PER_ROUND = 50
POPULATIONS = {False: (1000, 10000), True: (200, 2000)}  # full, quick
PER_NODE_MAX = 1000  # Flower's one-SuperNode-per-client layout is run up to this population
PAIRS = {False: 3, True: 1}  # (loop, cohort engine) pairs per population: full, quick


def config(population: int, quick: bool, nodes: int = 0, reduce: bool = True) -> RunConfig:
    # Fashion-MNIST's 60 000 training images over the population, a sixth of each held out
    return RunConfig.from_mapping({
        "dataset": "auto", "partitioner": "iid", "num-clients": population,
        "client-test-fraction": 1 / 6, "fraction-train": PER_ROUND / population,
        "model": "cnn", "num-rounds": 3 if quick else 6, "central-eval-size": 1000,
        "node-wait-timeout": 900.0, "simulation-nodes": nodes, "node-reduction": reduce,
        "plot": False,
        "results-dir": "results/bench-runs", "run-name": f"scale-{population}"})


def _tree_rss(root: int) -> tuple[int, int]:
    """Resident bytes and count of ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry.name), int(fields.get("PPid", "0").strip())
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, count, todo = 0, 0, [root]
    while todo:
        pid = todo.pop()
        total, count = total + rss.get(pid, 0), count + 1
        todo.extend(children.get(pid, []))
    return total, count


class PeakMemory(threading.Thread):
    """Samples the process tree's RSS every ``period`` seconds; keeps the peak."""

    def __init__(self, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.period, self.peak, self.peak_processes = period, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.period):
            rss, count = _tree_rss(os.getpid())
            self.peak, self.peak_processes = max(self.peak, rss), max(self.peak_processes, count)


def engine_run(cfg: RunConfig) -> dict[str, Any]:
    marks: list[float] = []
    replies: list[int] = []
    transport: list[int] = []
    monitor = PeakMemory()
    monitor.start()
    launch = time.perf_counter()
    try:
        simulate(cfg, Resources(num_cpus=1), on_round=lambda line: (
            marks.append(time.perf_counter()), replies.append(line.get("replies-ok", 0)),
            transport.append(line.get("transport-messages", 0))))
    finally:
        monitor.done.set()
        monitor.join()
    rounds = [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)]
    return {"startup_seconds": round(marks[0] - launch, 2),
            "seconds_per_round": round(statistics.median(rounds[1:] or rounds), 3),
            "round_seconds": [round(s, 3) for s in rounds], "replies": replies[1:],
            "messages_per_round": transport[1:],
            "peak_rss_mb": round(monitor.peak / 2**20, 1),
            "peak_processes": monitor.peak_processes}


def sample(rng: random.Random, population: int, fraction: float) -> list[int]:
    """The clients Flower's FedAvg samples (``sample_nodes``: ``random.sample`` of the node
    list, which the cohort grid gives in client order) for a round."""
    return rng.sample(range(population), max(int(population * fraction), 1))


def loop_run(cfg: RunConfig) -> dict[str, Any]:
    """The same rounds without Flower: the sampled clients one after another on one model,
    torch on all cores, the weighted mean, central evaluation."""
    with torch_threads(os.cpu_count() or 1):
        data = data_for(cfg)
        model = initial_model(cfg, data)
        global_arrays = {k: v.detach().numpy().copy() for k, v in wire_state(cfg, model).items()}
        test_x = data.dataset.test_x[:cfg.central_eval_size]
        test_y = data.dataset.test_y[:cfg.central_eval_size]
        rng, rounds = random.Random(cfg.seed), []
        for server_round in range(1, cfg.num_rounds + 1):
            start = time.perf_counter()
            replies, weights = [], []
            for client in sorted(sample(rng, cfg.num_clients, cfg.fraction_train)):
                load_arrays(model, global_arrays)
                result = local_round(model, data.client(client), cfg, server_round, client)
                replies.append({k: v.detach().numpy().copy()
                                for k, v in wire_state(cfg, model).items()})
                weights.append(result.num_examples)
            mean = WeightedMean(weights)
            for reply in replies:
                mean.add(reply)
            global_arrays = mean.result()
            load_arrays(model, global_arrays)
            evaluate(model, test_x, test_y)
            rounds.append(time.perf_counter() - start)
    return {"loop_seconds_per_round": round(statistics.median(rounds[1:] or rounds), 3),
            "loop_round_seconds": [round(s, 3) for s in rounds]}


def run(quick: bool) -> dict[str, Any]:
    populations = []
    for population in POPULATIONS[quick]:
        cfg = config(population, quick)
        data = data_for(cfg)
        entry: dict[str, Any] = {
            "clients": population, "clients_per_round": PER_ROUND,
            "samples_per_client": round(sum(len(data.client(c).train_y)
                                            for c in range(0, population, population // 20))
                                        / 20, 1)}
        pairs = []
        for _ in range(PAIRS[quick]):
            loop = loop_run(cfg)
            cohort = engine_run(cfg)
            pairs.append({"loop_seconds_per_round": loop["loop_seconds_per_round"],
                          "seconds_per_round": cohort["seconds_per_round"],
                          "round_ratio": round(cohort["seconds_per_round"]
                                               / loop["loop_seconds_per_round"], 3),
                          "loop": loop, "cohort": cohort})
        entry |= {
            "loop_seconds_per_round": _median(p["loop_seconds_per_round"] for p in pairs),
            "startup_seconds": _median(p["cohort"]["startup_seconds"] for p in pairs),
            "seconds_per_round": _median(p["seconds_per_round"] for p in pairs),
            "peak_rss_mb": max(p["cohort"]["peak_rss_mb"] for p in pairs),
            "round_ratio": _median(p["round_ratio"] for p in pairs), "pairs": pairs}
        every_reply = engine_run(config(population, quick, reduce=False))
        entry |= {"unreduced_seconds_per_round": every_reply["seconds_per_round"],
                  "unreduced": every_reply}
        if population <= PER_NODE_MAX:
            per_node = engine_run(config(population, quick, nodes=population))
            entry |= {"per_node_seconds_per_round": per_node["seconds_per_round"],
                      "per_node_startup_seconds": per_node["startup_seconds"],
                      "per_node": per_node}
        populations.append(entry)
    goals = {"round_ratio_max": 1.15, "startup_seconds_max_at_10000": 20.0,
             "peak_rss_mb_max": 4096}
    largest = populations[-1]
    return {"dataset": resolve_name(config(1000, quick).dataset, None), "cpus": os.cpu_count(),
            "rounds": config(1000, quick).num_rounds, "populations": populations,
            "goals": goals,
            "goals_met": {"round_ratio": all(p["round_ratio"] <= 1.15 for p in populations),
                          "startup": largest["startup_seconds"] <= 20.0,
                          "peak_rss": all(p["peak_rss_mb"] <= 4096 for p in populations)},
            "definitions": {
                "pairs": "a plain loop run and a cohort engine run, back to back; the pairs "
                         "alternate, each on the same clients and seeds",
                "round_ratio": "median over the pairs of the cohort engine's seconds_per_round "
                               "over the loop's",
                "seconds_per_round": "cohort engine: median wall time of rounds 2..R (median "
                                     "over the pairs)",
                "unreduced_seconds_per_round": "the same with node-reduction = false (every "
                                               "client's reply travels to the driver)",
                "loop_seconds_per_round": "plain in-process loop over the same sampled clients "
                                          "(torch on all cores): median of rounds 2..R "
                                          "(median over the pairs)",
                "startup_seconds": "launch to the first record (nodes up, initial "
                                   "evaluation), median over the pairs' cohort runs",
                "peak_rss_mb": "peak summed RSS of this process and its descendants (Ray's "
                               "GCS, raylet, workers), sampled every 0.5 s; the largest over "
                               "the pairs"}}


def _median(values) -> float:
    return round(statistics.median(list(values)), 3)


def summary_line(record: dict[str, Any]) -> str:
    parts = []
    for p in record["populations"]:
        text = (f"{p['clients']}: {p['seconds_per_round']:.2f} s/round (unreduced "
                f"{p['unreduced_seconds_per_round']:.2f}) vs loop "
                f"{p['loop_seconds_per_round']:.2f} ({p['round_ratio']:.2f}x), start-up "
                f"{p['startup_seconds']:.1f} s, {p['peak_rss_mb']:.0f} MB")
        if "per_node_seconds_per_round" in p:
            text += f"; one node per client {p['per_node_seconds_per_round']:.2f} s/round"
        parts.append(text)
    met = record["goals_met"]
    return "; ".join(parts) + f" (goals met {sum(met.values())}/{len(met)})"
