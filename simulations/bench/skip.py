"""Backprop skipping: the default Fashion-MNIST FedAvg scenario with and without skipping, same
rounds, clients and seeds, through Flower's simulation engine; plus a sweep of the error bound
(drawn as a PNG), the Stale-SB variant (``skip.selection-every``), a longer warm-up
(``skip.warmup-rounds``) and the same pair with FedPara layers.

Client time drifts on this VM by more than the saving (the same plain round took 12.5 to
16.2 s within one hour), so the full-length runs go in a mirrored order, plain, skip, stale,
warm-up, skip, plain: each arm's mean sits at the same point in time and a linear drift
cancels. The saving is judged on the two runs of each arm together; each order's figure is
reported too. Round 1 is also reported apart, as it carries each worker's one-off start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedlite.config import RunConfig
from simulations.engine import Resources, simulate
from simulations.scenarios import load_scenario

ERROR_BOUND = 0.1
STALE_EVERY = 3  # the Stale-SB variant: a fresh selection forward every 3rd local epoch
WARMUP_ROUNDS = 2  # chosen on held-out seeds 1-4 (docs/experiments/skip.md)
FEDPARA_LR = 0.02  # FedPara on this CNN diverges (NaN in round 1) at the default 0.05
SHORT_ROUNDS = 3  # the sweep and FedPara runs
SWEEP_PNG = Path("docs/benchmarks/skip_sweep.png")


def workload(quick: bool) -> RunConfig:
    # quick: scikit-learn digits, through the scenario so that its [digits] table applies (5
    # local epochs: one epoch is three batches a client there)
    quick_keys = ["dataset=digits", "num-rounds=4", "num-clients=10"] if quick else []
    cfg = load_scenario("default", quick_keys).config
    return cfg.with_keys({"results-dir": "results/bench-runs", "run-name": "bench-skip"})


def skipping(cfg: RunConfig, bound: float) -> RunConfig:
    return cfg.with_keys({"skip.enabled": bound > 0, "skip.error-bound": bound})


def measure(cfg: RunConfig) -> dict[str, Any]:
    """One run on Flower's engine, reduced to per-round series."""
    lines: list[dict[str, Any]] = []
    simulate(cfg, Resources(num_cpus=1), on_round=lines.append)
    lines = [line for line in lines if line["round"] >= 1]  # round 0: the initial evaluation
    series = {"accuracy": "accuracy", "seen": "train/samples-seen",
              "backprop": "train/samples-backprop", "client_seconds": "train/train-seconds",
              "threshold": "train/skip-threshold", "estimated_error": "train/skip-estimated-error",
              "dropped_gradient": "train/skip-dropped-gradient"}
    return {name: [line.get(key) for line in lines] for name, key in series.items()}


def totals(outcome: dict[str, Any], rounds: int | None = None) -> dict[str, float]:
    """Final accuracy, backprop fraction and client seconds over the first ``rounds`` rounds.

    Round 1 also pays each worker's one-off start-up costs (first kernels), the same in both
    arms; ``client_seconds_after_round_1`` leaves it out.
    """
    cut = {name: values[:rounds] for name, values in outcome.items()}
    seen, backprop = sum(cut["seen"]), sum(cut["backprop"])
    return {"accuracy": cut["accuracy"][-1], "backprop_fraction": backprop / seen,
            "client_seconds": sum(cut["client_seconds"]),
            "client_seconds_after_round_1": sum(cut["client_seconds"][1:])}


def run(quick: bool) -> dict[str, Any]:
    cfg = workload(quick)
    seed_form = skipping(cfg, ERROR_BOUND)
    stale_form = seed_form.with_keys({"skip.selection-every": STALE_EVERY})
    runs = {"plain": measure(cfg), "skip": measure(seed_form)}
    runs["stale"] = measure(stale_form)
    runs["warmup"] = measure(seed_form.with_keys({"skip.warmup-rounds": WARMUP_ROUNDS}))
    second = {"skip": measure(seed_form), "plain": measure(cfg)}  # the mirror image
    plain, skip, stale = totals(runs["plain"]), totals(runs["skip"]), totals(runs["stale"])
    warmup = totals(runs["warmup"])
    again = {arm: totals(outcome) for arm, outcome in second.items()}
    seconds_plain = plain["client_seconds"] + again["plain"]["client_seconds"]
    seconds_skip = skip["client_seconds"] + again["skip"]["client_seconds"]
    after_1 = {arm: first["client_seconds_after_round_1"]
               + again[arm]["client_seconds_after_round_1"]
               for arm, first in (("plain", plain), ("skip", skip))}
    result = {
        "rounds": cfg.num_rounds, "clients": cfg.num_clients, "dataset": cfg.dataset,
        "model": cfg.model, "error_bound": ERROR_BOUND,
        "order": "plain, skip, stale, warmup, skip, plain",
        "accuracy_plain": plain["accuracy"], "accuracy_skip": skip["accuracy"],
        "accuracy_second_runs": {arm: t["accuracy"] for arm, t in again.items()},
        "backprop_fraction": round(skip["backprop_fraction"], 4),
        # both runs of each arm: a drift during the bench shows up in each order's figure
        "client_seconds_plain": round(seconds_plain / 2, 2),
        "client_seconds_skip": round(seconds_skip / 2, 2),
        "time_saving": round(1 - seconds_skip / seconds_plain, 4),
        "time_saving_after_round_1": round(1 - after_1["skip"] / after_1["plain"], 4),
        "time_saving_by_order": {
            "plain first": round(1 - skip["client_seconds"] / plain["client_seconds"], 4),
            "skip first": round(1 - again["skip"]["client_seconds"]
                                / again["plain"]["client_seconds"], 4)},
        "stale_selection": {"selection_every": STALE_EVERY,
                            **single_run(stale, seconds_plain / 2)},
        "warmup": {"warmup_rounds": WARMUP_ROUNDS, **single_run(warmup, seconds_plain / 2)},
        "runs": runs,
        "second_runs": second,
        "sweep": sweep(cfg, quick, runs),
        "fedpara": fedpara_pair(cfg, quick),
        "goal": {"skipped_fraction_min": 0.40, "time_saving_min": 0.25,
                 "accuracy_drop_max_points": 0.5},
    }
    png = Path("results/bench/skip_sweep-quick.png") if quick else SWEEP_PNG
    result["sweep_png"] = str(draw_sweep(result["sweep"], png))
    return result


def single_run(arm: dict[str, float], seconds_plain: float) -> dict[str, float]:
    """A variant run once (between the mirrored pairs), against plain's mean seconds."""
    return {"accuracy": arm["accuracy"], "backprop_fraction": round(arm["backprop_fraction"], 4),
            "client_seconds": round(arm["client_seconds"], 2),
            "time_saving": round(1 - arm["client_seconds"] / seconds_plain, 4)}


def sweep(cfg: RunConfig, quick: bool, runs: dict[str, Any]) -> list[dict[str, Any]]:
    """Skip fraction and accuracy against the bound, over the first few rounds.

    Bounds 0 and ERROR_BOUND are the main runs cut at that round (same seeds, same trajectory).
    """
    rounds = SHORT_ROUNDS
    short = cfg.with_keys({"num-rounds": rounds, "run-name": "bench-skip-sweep"})
    outcomes = {0.0: totals(runs["plain"], rounds), ERROR_BOUND: totals(runs["skip"], rounds)}
    for bound in ((0.3,) if quick else (0.05, 0.3)):
        outcomes[bound] = totals(measure(skipping(short, bound)))
    return [{"error_bound": bound, "rounds": rounds, "accuracy": o["accuracy"],
             "backprop_fraction": round(o["backprop_fraction"], 4),
             "client_seconds": round(o["client_seconds"], 2)}
            for bound, o in sorted(outcomes.items())]


def fedpara_pair(cfg: RunConfig, quick: bool) -> dict[str, Any] | None:
    """The same comparison with FedPara layers, when the ``fedpara`` section exists."""
    if "fedpara.mode" not in cfg.to_flat():
        return None
    para = cfg.with_keys({"fedpara.mode": "fedpara", "num-rounds": SHORT_ROUNDS,
                           "lr": FEDPARA_LR, "run-name": "bench-skip-fedpara"})
    plain, skip = totals(measure(para)), totals(measure(skipping(para, ERROR_BOUND)))
    return {"rounds": para.num_rounds, "lr": para.lr, "accuracy_plain": plain["accuracy"],
            "accuracy_skip": skip["accuracy"],
            "backprop_fraction": round(skip["backprop_fraction"], 4),
            "client_seconds_plain": round(plain["client_seconds"], 2),
            "client_seconds_skip": round(skip["client_seconds"], 2)}


def draw_sweep(points: list[dict[str, Any]], path: Path) -> Path:
    from fedlite.plot import plt, save_figure

    bounds = [p["error_bound"] for p in points]
    fig, left = plt.subplots(figsize=(5.5, 3.6))
    left.plot(bounds, [1 - p["backprop_fraction"] for p in points], "o-", color="tab:blue")
    left.set_xlabel("error bound (skip.error-bound)")
    left.set_ylabel("backprop passes skipped", color="tab:blue")
    right = left.twinx()
    right.plot(bounds, [100 * p["accuracy"] for p in points], "s--", color="tab:red")
    right.set_ylabel("final accuracy (%)", color="tab:red")
    left.set_title("Backprop skipping: error-bound sweep")
    return save_figure(fig, path)


def summary_line(record: dict[str, Any]) -> str:
    skipped = 1 - record["backprop_fraction"]
    drop = 100 * (record["accuracy_plain"] - record["accuracy_skip"])
    by_order = ", ".join(f"{order} {100 * saving:.1f}%"
                         for order, saving in record["time_saving_by_order"].items())
    return (f"skipped {100 * skipped:.1f}% of backprop passes (goal >= 40%), client time "
            f"{record['client_seconds_skip']:.1f} s vs {record['client_seconds_plain']:.1f} s "
            f"= {100 * record['time_saving']:.1f}% less (goal >= 25%; by order: {by_order}), "
            f"accuracy "
            f"{100 * record['accuracy_skip']:.2f}% vs {100 * record['accuracy_plain']:.2f}% "
            f"({drop:+.2f} points lost; goal <= 0.5)")
