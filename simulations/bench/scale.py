"""Scale: 1000 simulated clients with 50 training samples each, 50 sampled per round
(fraction-train 0.05), on Flower's simulation engine; time per round and the peak resident
memory of the driver plus every Ray process (Ray keeps one actor per CPU share, not one
process per client)."""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from fedlite.config import RunConfig
from fedlite.data import resolve_name
from simulations.engine import Resources, simulate


def config(quick: bool) -> RunConfig:
    # Fashion-MNIST's 60 000 training images over 1000 clients: 60 each, 50 to train on.
    return RunConfig.from_mapping({
        "dataset": "auto", "partitioner": "iid", "num-clients": 1000,
        "client-test-fraction": 1 / 6, "fraction-train": 0.05, "model": "cnn",
        "num-rounds": 3 if quick else 10, "central-eval-size": 1000, "node-wait-timeout": 600.0,
        "results-dir": "results/bench-runs", "run-name": "scale"})


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


def run(quick: bool) -> dict[str, Any]:
    cfg = config(quick)
    marks: list[float] = []
    replies: list[int] = []
    monitor = PeakMemory()
    monitor.start()
    launch = time.perf_counter()
    try:
        simulate(cfg, Resources(num_cpus=1), on_round=lambda line: (
            marks.append(time.perf_counter()), replies.append(line.get("replies-ok", 0))))
    finally:
        monitor.done.set()
        monitor.join()
    rounds = [b - a for a, b in zip(marks[:-1], marks[1:])]
    return {"clients": cfg.num_clients, "rounds": cfg.num_rounds,
            "dataset": resolve_name(cfg.dataset, cfg.data_dir or None),
            "samples_per_client": 50, "clients_per_round": replies[1:],
            "seconds_per_round": round(statistics.median(rounds[1:] or rounds), 3),
            "round_seconds": [round(s, 3) for s in rounds],
            "startup_seconds": round(marks[0] - launch, 1),
            "peak_rss_mb": round(monitor.peak / 2**20, 1),
            "peak_processes": monitor.peak_processes,
            "cpus": os.cpu_count(),
            "definitions": {"seconds_per_round": "median wall time of rounds 2..R",
                            "peak_rss_mb": "peak of the summed RSS of this process and all its "
                                           "descendants (Ray's GCS, raylet, workers), sampled "
                                           "every 0.5 s"},
            "goal": {"peak_rss_mb_max": 4096}}


def summary_line(record: dict[str, Any]) -> str:
    return (f"{record['clients']} clients, {record['rounds']} rounds: "
            f"{record['seconds_per_round']:.2f} s/round, peak RSS {record['peak_rss_mb']:.0f} MB "
            f"over {record['peak_processes']} processes (goal <= 4096 MB)")
