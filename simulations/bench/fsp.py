"""FSP progressive transfer: the target trained from random init vs the progressive chain
(trained resnet8 teacher -> resnet14 -> target), same clients, data and seeds, every run on
Flower's simulation engine.

Sized for 2 CPU cores (the full run in about 30 minutes): 10 clients, Dirichlet alpha=0.5 on
Fashion-MNIST, each client training on a seeded subset of CLIENT_TRAIN_SIZE of its samples for
2 local epochs (about 60 steps a round: the ResNets learn little from fewer); the target is
resnet20 (resnet26 trains about 1.3x slower per sample and would not fit). The teacher's own
training is reported apart: it is a finished model the chain starts from, the way the paper's
teacher is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedlite.config import RunConfig
from simulations.chain import run_chain
from simulations.engine import Resources, simulate

TARGET_MODEL, INTERMEDIATES, TEACHER_MODEL = "resnet20", ["resnet14"], "resnet8"
# the direct arm's stage 1: 3 Adam rounds beat 1 on held-out seed 1 (docs/experiments/fsp.md)
DIRECT_STAGE1_ROUNDS = 3
CLIENT_TRAIN_SIZE = 1000
PNG = Path("docs/benchmarks/fsp.png")


def workload(quick: bool) -> dict[str, Any]:
    base = {"dataset": "fashion-mnist", "num-clients": 10, "partitioner": "dirichlet",
            "dirichlet-alpha": 0.5, "client-train-size": CLIENT_TRAIN_SIZE, "local-epochs": 2,
            "batch-size": 32, "lr": 0.05, "momentum": 0.9, "central-eval-size": 1000,
            "results-dir": "results/bench-runs", "run-name": "bench-fsp", "seed": 0,
            # Adam for stage 1: with SGD at 0.01 a resnet20 student's FSP loss stays high and
            # its head start is gone within 150 steps (central probe, docs/experiments/fsp.md)
            "fsp.stage1-rounds": 1, "fsp.optimizer": "adam", "fsp.lr": 0.001}
    rounds = {"teacher": 12, "target": 12, "intermediate": 2}
    if quick:  # scikit-learn digits (8x8): the same code path in about a minute
        base |= {"dataset": "digits", "num-clients": 4, "client-train-size": 0,
                 "central-eval-size": 0}
        rounds = {"teacher": 3, "target": 3, "intermediate": 2}
    return {"config": RunConfig.from_mapping(base), "rounds": rounds}


def measure(lines: list[dict[str, Any]]) -> dict[str, list]:
    lines = [line for line in lines if line["round"] >= 1]  # round 0: the initial evaluation
    return {"accuracy": [line.get("accuracy") for line in lines],
            "client_seconds": [line.get("train/train-seconds", 0.0) for line in lines],
            "wall_seconds": [line["seconds"] for line in lines],
            "stage": [line.get("stage") for line in lines],
            "fsp_loss": [line.get("train/fsp-loss") for line in lines],
            "fsp_seconds": [line.get("train/fsp-seconds") for line in lines]}


def simulated(cfg: RunConfig, store: list[dict[str, Any]]) -> dict[str, Any]:
    lines: list[dict[str, Any]] = []
    summary = simulate(cfg, Resources(num_cpus=1), on_round=lines.append)
    store.append({"model": cfg.model, "series": measure(lines)})
    return summary


def first_round(accuracy: list[float], target: float) -> int | None:
    return next((i + 1 for i, a in enumerate(accuracy) if a is not None and a >= target), None)


def total(values: list[float]) -> float:
    return round(sum(values), 2)


def reach(runs: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """Rounds and seconds until the last network first reaches ``target``, counting every
    round of the networks before it; None when it never does."""
    before, last = runs[:-1], runs[-1]["series"]
    hit = first_round(last["accuracy"], target)
    out: dict[str, Any] = {"rounds_to_target": None if hit is None else hit + sum(
        len(r["series"]["accuracy"]) for r in before)}
    for key in ("client_seconds", "wall_seconds"):
        out[f"{key}_to_target"] = None if hit is None else total(
            [s for r in before for s in r["series"][key]] + last[key][:hit])
    return out


def fraction_of_scratch(reached: dict[str, Any], hit_scratch: int | None,
                        scratch_seconds: dict[str, float | None]) -> dict[str, float]:
    if not (hit_scratch and reached["rounds_to_target"]):
        return {}
    return {"rounds_fraction": round(reached["rounds_to_target"] / hit_scratch, 4),
            "client_seconds_fraction": round(reached["client_seconds_to_target"]
                                             / scratch_seconds["client_seconds"], 4)}


def run(quick: bool) -> dict[str, Any]:
    work = workload(quick)
    cfg, rounds = work["config"], work["rounds"]
    teacher_runs: list[dict[str, Any]] = []
    teacher = simulated(cfg.with_keys({"model": TEACHER_MODEL, "num-rounds": rounds["teacher"],
                                        "run-name": "bench-fsp-teacher"}), teacher_runs)
    scratch_runs: list[dict[str, Any]] = []
    simulated(cfg.with_keys({"model": TARGET_MODEL, "num-rounds": rounds["target"],
                              "run-name": "bench-fsp-scratch"}), scratch_runs)
    chain_runs: list[dict[str, Any]] = []
    run_chain(cfg.with_keys({"num-rounds": rounds["target"]}), teacher=teacher["run-dir"],
              teacher_model=TEACHER_MODEL, models=[*INTERMEDIATES, TARGET_MODEL],
              intermediate_rounds=rounds["intermediate"],
              run_one=lambda step: simulated(step, chain_runs))
    # no intermediate, what choose_intermediates returns when the budget fits only the target;
    # the same number of cross-entropy rounds as the chain's target after a longer stage 1
    direct_runs: list[dict[str, Any]] = []
    run_chain(cfg.with_keys({"num-rounds": rounds["target"] + DIRECT_STAGE1_ROUNDS - 1,
                              "fsp.stage1-rounds": DIRECT_STAGE1_ROUNDS,
                              "run-name": "bench-fsp-direct"}),
              teacher=teacher["run-dir"], teacher_model=TEACHER_MODEL, models=[TARGET_MODEL],
              run_one=lambda step: simulated(step, direct_runs))
    scratch = scratch_runs[0]["series"]
    final = scratch["accuracy"][-1]
    target = round(final - 0.005, 6)
    hit_scratch = first_round(scratch["accuracy"], target)
    scratch_seconds = {key: total(scratch[key][:hit_scratch]) if hit_scratch else None
                       for key in ("client_seconds", "wall_seconds")}
    chain = reach(chain_runs, target)
    direct = reach(direct_runs, target)
    result = {
        "dataset": cfg.dataset, "clients": cfg.num_clients, "partitioner": cfg.partitioner,
        "dirichlet_alpha": cfg.dirichlet_alpha, "client_train_size": cfg.client_train_size,
        "teacher_model": TEACHER_MODEL, "chain": [*INTERMEDIATES, TARGET_MODEL],
        "rounds": rounds, "fsp_stage1_rounds": cfg.section("fsp").stage1_rounds,
        "fsp_lr": cfg.section("fsp").lr,
        "fsp_optimizer": cfg.section("fsp").optimizer,
        "target_accuracy_scratch_final": final, "target": target,
        "target_accuracy_progressive_final": chain_runs[-1]["series"]["accuracy"][-1],
        "rounds_to_target_scratch": hit_scratch,
        "rounds_to_target_progressive": chain["rounds_to_target"],
        "client_seconds_to_target_scratch": scratch_seconds["client_seconds"],
        "client_seconds_to_target_progressive": chain["client_seconds_to_target"],
        "wall_seconds_to_target_scratch": scratch_seconds["wall_seconds"],
        "wall_seconds_to_target_progressive": chain["wall_seconds_to_target"],
        "direct": {"chain": [TARGET_MODEL], "fsp_stage1_rounds": DIRECT_STAGE1_ROUNDS,
                   "final_accuracy": direct_runs[-1]["series"]["accuracy"][-1],
                   **direct, **fraction_of_scratch(direct, hit_scratch, scratch_seconds)},
        "teacher": {"final_accuracy": teacher["final-accuracy"],
                    "rounds": rounds["teacher"],
                    "client_seconds": total(teacher_runs[0]["series"]["client_seconds"]),
                    "wall_seconds": total(teacher_runs[0]["series"]["wall_seconds"])},
        "runs": {"teacher": teacher_runs[0], "scratch": scratch_runs[0], "chain": chain_runs,
                 "direct": direct_runs},
        "goal": {"rounds_fraction_max": 0.5, "client_seconds_fraction_max": 0.5},
    }
    result |= fraction_of_scratch(chain, hit_scratch, scratch_seconds)
    png = Path("results/bench/fsp-quick.png") if quick else PNG
    result["png"] = str(draw(result, png))
    return result


def draw(result: dict[str, Any], path: Path) -> Path:
    from fedlite.plot import plt, save_figure

    fig, ax = plt.subplots(figsize=(6, 3.8))
    scratch = result["runs"]["scratch"]["series"]["accuracy"]
    ax.plot(range(1, len(scratch) + 1), [100 * a for a in scratch], "o-",
            label=f"{TARGET_MODEL} from scratch")
    offset = 0
    for run in result["runs"]["chain"]:
        acc = run["series"]["accuracy"]
        xs = range(offset + 1, offset + len(acc) + 1)
        ax.plot(xs, [100 * a for a in acc], "s--" if run is not result["runs"]["chain"][-1]
                else "s-", label=f"chain: {run['model']} (stage 1 = {result['fsp_stage1_rounds']}"
                " round)")
        offset += len(acc)
    direct = result["runs"]["direct"][-1]["series"]["accuracy"]
    ax.plot(range(1, len(direct) + 1), [100 * a for a in direct], "^-",
            label=f"direct: {TARGET_MODEL} from the teacher (stage 1 = "
            f"{result['direct']['fsp_stage1_rounds']} rounds)")
    ax.axhline(100 * result["target"], color="grey", lw=0.8, ls=":", label="target")
    ax.set_xlabel("federated rounds (chain: every network's rounds counted)")
    ax.set_ylabel("central test accuracy (%)")
    ax.set_title(f"FSP progressive transfer, teacher {TEACHER_MODEL} "
                 f"({100 * result['teacher']['final_accuracy']:.1f}%, trained apart)", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def summary_line(record: dict[str, Any]) -> str:
    def reached(side: str) -> str:
        rounds = record[f"rounds_to_target_{side}"]
        if rounds is None:
            return f"{side} never reached it"
        return f"{side} in {rounds} rounds / {record[f'client_seconds_to_target_{side}']} client s"

    fractions = ("" if record.get("rounds_fraction") is None else
                 f"; fractions {record['rounds_fraction']} and {record['client_seconds_fraction']}")
    line = (f"target {100 * record['target']:.2f}% (scratch final - 0.5): {reached('scratch')}, "
            f"{reached('progressive')} (goal <= 1/2 of both{fractions})")
    direct = record.get("direct")
    if direct:
        line += ("; direct (no intermediate): " + (
            "never reached it" if direct["rounds_to_target"] is None else
            f"{direct['rounds_to_target']} rounds / {direct['client_seconds_to_target']} client s"))
    return line
