"""Federated class-incremental learning: Fashion-MNIST as 5 tasks of 2 classes, 5 clients, the
same rounds and seeds for fine-tuning (no protection), PASS-style Gaussian prototype
augmentation and this method (adaptive prototype augmentation + joint embedding + a student
trained from two teachers), each a Flower run on the simulation engine.

Sized for about 12 minutes on 2 cores: 2 rounds per task (10 rounds), 2 local epochs,
300 training samples per class per client (1,500 per class in the federation), lr 0.02.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedlite.config import RunConfig

METHODS = ("finetune", "pass", "adaptive")
PNG = Path("docs/benchmarks/continual.png")


def workload(quick: bool, method: str) -> RunConfig:
    keys: dict[str, Any] = {
        "dataset": "fashion-mnist", "num-clients": 5, "partitioner": "iid", "seed": 0,
        "model": "continual-cnn", "local-epochs": 2, "lr": 0.02, "batch-size": 32,
        "continual.enabled": True, "continual.num-tasks": 5, "continual.rounds-per-task": 2,
        "num-rounds": 10, "continual.max-samples-per-class": 300, "continual.method": method,
        "results-dir": "results/bench-runs", "run-name": f"bench-continual-{method}"}
    if quick:  # scikit-learn digits: the same code path in about a minute
        keys |= {"dataset": "digits", "continual.rounds-per-task": 1, "num-rounds": 5,
                 "local-epochs": 5, "lr": 0.05, "continual.max-samples-per-class": 0}
    return RunConfig.from_mapping(keys)


def run(quick: bool) -> dict[str, Any]:
    from simulations.engine import Resources, simulate  # deferred: continual_seeds needs no flwr

    methods: dict[str, Any] = {}
    for method in METHODS:
        cfg = workload(quick, method)
        summary = simulate(cfg, Resources(num_cpus=1))["continual"]
        teacher, student = summary["teacher"], summary.get("student", {})
        methods[method] = {
            "average_incremental_accuracy": teacher["average_incremental_accuracy"],
            "final_accuracy": teacher["final_accuracy"], "forgetting": teacher["forgetting"],
            "accuracy_after_task": teacher["accuracy_after_task"],
            "task_accuracy": teacher["task_accuracy"], "params": teacher["params"],
            "student": {k: student.get(k) for k in ("final_accuracy", "params",
                                                    "average_incremental_accuracy",
                                                    "forgetting", "accuracy_after_task")}}
    ft, ps, ours = methods["finetune"], methods["pass"], methods["adaptive"]
    cfg = workload(quick, "adaptive")
    result = {
        "dataset": cfg.dataset, "clients": cfg.num_clients,
        "tasks": cfg.section("continual").num_tasks,
        "rounds_per_task": cfg.section("continual").rounds_per_task,
        "local_epochs": cfg.local_epochs,
        "max_samples_per_class_per_client": cfg.section("continual").max_samples_per_class,
        "methods": methods,
        "goal": {"aia_over_finetune_points_min": 25, "aia_above_pass": True,
                 "forgetting_max_share_of_finetune": 0.5, "student_params_max_share": 0.5,
                 "student_gap_points_max": 3},
        "met": {
            "aia_over_finetune": 100 * (ours["average_incremental_accuracy"]
                                        - ft["average_incremental_accuracy"]) >= 25,
            "aia_above_pass": ours["average_incremental_accuracy"]
            > ps["average_incremental_accuracy"],
            "forgetting_half_of_finetune": ours["forgetting"] <= 0.5 * ft["forgetting"],
            "student_half_params": ours["student"]["params"] <= 0.5 * ours["params"],
            "student_within_3_points": 100 * (ours["final_accuracy"]
                                              - ours["student"]["final_accuracy"]) <= 3},
    }
    png = Path("results/bench/continual-quick.png") if quick else PNG
    result["png"] = str(draw(methods, png))
    return result


def draw(methods: dict[str, Any], path: Path) -> Path:
    from fedlite.plot import plt, save_figure

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, m in methods.items():
        tasks = range(1, len(m["accuracy_after_task"]) + 1)
        left.plot(tasks, [100 * a for a in m["accuracy_after_task"]], "o-", label=name)
        if name == "adaptive" and m["student"]["accuracy_after_task"]:
            left.plot(tasks, [100 * a for a in m["student"]["accuracy_after_task"]], "s--",
                      label="adaptive: student")
    left.set_xlabel("after task")
    left.set_ylabel("accuracy on seen classes (%)")
    left.set_xticks(list(range(1, 6)))
    left.legend(fontsize=8)
    left.set_title("Accuracy on all classes seen so far")
    rows = methods["adaptive"]["task_accuracy"]
    for k in range(len(rows)):
        right.plot(range(k + 1, len(rows) + 1), [100 * row[k] for row in rows[k:]], "o-",
                   label=f"task {k} (classes {2 * k}-{2 * k + 1})")
    right.set_xlabel("after task")
    right.set_ylabel("task accuracy (%)")
    right.set_xticks(list(range(1, 6)))
    right.legend(fontsize=8)
    right.set_title("adaptive: per-task accuracy")
    return save_figure(fig, path)


def summary_line(record: dict[str, Any]) -> str:
    m = record["methods"]

    def pct(v: float) -> str:
        return f"{100 * v:.1f}"

    ours = m["adaptive"]
    return (f"AIA finetune {pct(m['finetune']['average_incremental_accuracy'])} / pass "
            f"{pct(m['pass']['average_incremental_accuracy'])} / adaptive "
            f"{pct(ours['average_incremental_accuracy'])}; forgetting "
            f"{pct(m['finetune']['forgetting'])} / {pct(m['pass']['forgetting'])} / "
            f"{pct(ours['forgetting'])}; final {pct(ours['final_accuracy'])}, student "
            f"{pct(ours['student']['final_accuracy'])} with {ours['student']['params']} of "
            f"{ours['params']} params; goals met: "
            f"{', '.join(k for k, v in record['met'].items() if v) or 'none'}")
