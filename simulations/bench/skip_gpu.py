"""Backprop skipping on a GPU: the ``skip`` benchmark's protocol, sized to finish in 10 minutes.

On a 2-core CPU the selection forward costs a quarter to two fifths of a training step, which
caps what skipping can save (``docs/experiments/skip.md``). On a GPU a small network's step is
likely bound by kernel launches, not arithmetic: then a 16-row step costs what a 32-row one
does, skipping saves time mostly where it removes whole steps (full refills), and the selection
forward's share of a step is the figure to measure there. This benchmark trains the default
scenario (Fashion-MNIST, 20 clients, Dirichlet 0.5, 1 local epoch) with ``MODEL`` on cuda,
plain and skipping arms interleaved round by round in one process as ``bench skip`` does
(``skip.interleaved``, ``skip.compare``), with that benchmark's settings unchanged: the
headline arm (compensated refills of 16) and full refills.

Sized for a GPU lent for a few minutes: on an H100 a resnet20 step at 32 rows took 10.3 ms
(``docs/experiments/gpu.md``), so a plain round of 48,000 samples costs about 15 s, and
``ROUNDS`` rounds of plain training with two skipping arms that run until they have spent
plain's client seconds fit in about 8 minutes. ``DEADLINE``
stops every arm (no new round starts) if the machine is slower than that, so a JSON comes back
either way; ``stopped_by_deadline`` says whether it did. Ten rounds stop before plain training
flattens (the CPU benchmark's plain curve still gains 0.3 point a round at round 10), so the
speed-up here is to plain's own 10-round accuracy, and ``plain_gain_last_5_rounds`` shows how
far from flat that is.

The GPU machine needs torch alone (not flwr, ray or flwr-datasets) once
``FEDLITE_CACHE_DIR=.gpu/cache python -m simulations.bench.skip_gpu prepare .gpu`` has copied
Fashion-MNIST and the run's partition into ``.gpu`` (ignored by git) and that folder has been
copied along with the checkout::

    FEDLITE_DATA_DIR=.gpu FEDLITE_CACHE_DIR=.gpu/cache PYTHONPATH=. \\
        python3 -m simulations.cli bench skip-gpu --out skip-gpu.json
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

from fedlite.config import RunConfig
from simulations.bench import skip
from simulations.scenarios import load_scenario

MODEL = "resnet20"
ROUNDS = 10
DEADLINE = 480.0  # seconds after the start: no round of any arm starts later
GPU_ARMS = ("plain", skip.HEADLINE, "skip-full-refill")
PREPARED_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def workload(quick: bool) -> RunConfig:
    """The default scenario with ``MODEL`` on cuda; quick: digits, 3 rounds, on any device."""
    keys = (["dataset=digits", "num-rounds=3", "num-clients=6", f"model={MODEL}"] if quick
            else ["dataset=fashion-mnist", f"num-rounds={ROUNDS}", f"model={MODEL}",
                  "device=cuda"])
    return load_scenario("default", keys).config.with_keys(
        {"results-dir": "results/bench-runs", "run-name": "bench-skip-gpu"})


def run(quick: bool) -> dict[str, Any]:
    import torch

    if not quick and not torch.cuda.is_available():
        raise RuntimeError("bench skip-gpu needs a GPU that torch sees (torch.cuda.is_available()"
                           " is False here); `--quick` runs its small form on any machine")
    start = time.monotonic()
    base = workload(quick)
    series = skip.interleaved({arm: base.with_keys(skip.ARMS[arm]) for arm in GPU_ARMS},
                              skip.MAX_ROUNDS_FACTOR * base.num_rounds, start + DEADLINE)
    result = skip.compare(series)
    headline = result["arms"][skip.HEADLINE]
    record = {
        "rounds": base.num_rounds, "rounds_run_plain": len(series["plain"]),
        "clients": base.num_clients, "dataset": base.dataset, "model": base.model,
        "local_epochs": base.local_epochs, "batch_size": base.batch_size, "seed": base.seed,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "error_bound": skip.ERROR_BOUND, "refill_size": skip.REFILL_SIZE,
        "compensate": skip.COMPENSATE, "compile_selection": skip.COMPILE_SELECTION,
        "headline_arm": skip.HEADLINE, "target_margin_points": 100 * skip.TARGET_MARGIN,
        "deadline_seconds": DEADLINE,
        "stopped_by_deadline": time.monotonic() > start + DEADLINE,
        "plain_gain_last_5_rounds": skip.plain_gain(series["plain"]),
        **result,
        "time_to_accuracy_speedup_client": headline["speedup_client"],
        "time_to_accuracy_speedup_wall": headline["speedup_wall"],
        # what the selection forward costs on this device, as a share of plain's step
        "selection_share_of_step": headline["cost_model"]["selection_share_of_step"],
        "series": series,
        "goal": {"speedup_client_min": 1.3},
    }
    return record


def summary_line(record: dict[str, Any]) -> str:
    arms = "; ".join(
        f"{arm}: client {skip.speed(values['speedup_client'])}, selection "
        f"{values['cost_model']['selection_share_of_step']:.3f} of a step, skipped "
        f"{100 * values['skipped_share_final_rounds']:.1f}%"
        for arm, values in record["arms"].items())
    return (f"{record['model']} on {record['device']}, {record['rounds_run_plain']} plain rounds"
            f"{' (stopped by the deadline)' if record['stopped_by_deadline'] else ''}: "
            f"time to {100 * record['target_accuracy']:.2f}%: {arms}")


def prepare(directory: Path) -> None:
    """Copy Fashion-MNIST and compute the run's partition into ``directory``, so the device
    machine needs neither the Debian package nor flwr-datasets. The partition cache's place is
    read from ``FEDLITE_CACHE_DIR`` when fedlite's data package is imported, so it must be set
    to ``directory/cache`` in the command that runs this."""
    from fedlite.data import partition
    from fedlite.data.sources import find_idx_dir
    from fedlite.federation import data_for

    if partition.CACHE_DIR != directory / "cache" / "partitions":
        raise SystemExit(f"run it as: FEDLITE_CACHE_DIR={directory / 'cache'} "
                         f"python -m simulations.bench.skip_gpu prepare {directory}")
    source = find_idx_dir("fashion-mnist")
    if source is None:
        raise SystemExit("Fashion-MNIST not found: `apt-get install dataset-fashion-mnist`")
    target = directory / "fashion-mnist"
    target.mkdir(parents=True, exist_ok=True)
    for name in PREPARED_FILES:
        shutil.copyfile(source / name, target / name)
    data_for(workload(quick=False).with_keys({"device": "auto"}))
    print(f"prepared {directory}: {', '.join(sorted(p.name for p in directory.iterdir()))}")


if __name__ == "__main__":
    if sys.argv[1:2] != ["prepare"] or len(sys.argv) != 3:
        raise SystemExit("usage: python -m simulations.bench.skip_gpu prepare DIR")
    prepare(Path(sys.argv[2]))
