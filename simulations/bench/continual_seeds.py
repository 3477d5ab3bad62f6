"""The continual benchmark's `adaptive` workload on one more seed, in process (sequential FedAvg,
no Flower or Ray: torch and numpy only), for choosing settings on seeds the benchmark does not
judge (it runs seed 0). Prints one JSON line: the teacher's average incremental accuracy and
forgetting, the teacher's and the student's final accuracy, their gap, and where the gap comes
from (the teacher's head on the student's features, the student's head on the teacher's).

    python -m simulations.bench.continual_seeds SEED [KEY=VALUE ...]
    e.g. python -m simulations.bench.continual_seeds 1 continual.student-prox=0
         python -m simulations.bench.continual_seeds 1 continual.method=pass
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import torch

from fedlite.config import RunConfig
from fedlite.continual.evaluation import ContinualTracker
from fedlite.continual.model import ContinualNet
from fedlite.data import FederatedData
from fedlite.federation import data_for, initial_model, run_sequential_fedavg, run_setup
from simulations.bench.continual import workload
from simulations.scenarios import parse_override


def head_swap(model: ContinualNet, data: FederatedData, seen: tuple[int, ...]) -> dict[str, float]:
    """Accuracy of each branch's head on the other branch's features, on the seen classes."""
    keep = np.isin(data.dataset.test_y, seen)
    device = next(model.parameters()).device
    x, y = torch.as_tensor(data.dataset.test_x[keep]).to(device), data.dataset.test_y[keep]
    teacher, student = model.teacher.eval(), model.student.eval()
    with torch.no_grad():
        f_t, f_s = teacher.features(x), student.features(x)
        return {name: round(100 * float((head(f)[1].argmax(1).cpu().numpy() == y).mean()), 2)
                for name, head, f in (("teacher_head_on_student_features", teacher.head, f_s),
                                      ("student_head_on_teacher_features", student.head, f_t))}


def main(argv: list[str]) -> dict[str, Any]:
    seed, overrides = int(argv[0]), dict(parse_override(item) for item in argv[1:])
    cfg = RunConfig.from_mapping({**workload(False, "adaptive").to_flat(), "seed": seed,
                                  **overrides})
    data = data_for(cfg)
    tracker = ContinualTracker(cfg.section("continual"),
                               run_setup(cfg, data, initial_model(cfg, data)))
    swaps: dict[str, float] = {}

    def after_round(model: ContinualNet, server_round: int) -> None:
        tracker.round_metrics(model, server_round)
        if server_round == cfg.num_rounds and cfg.section("continual").student:
            task = tracker.plan.task_of_round(server_round)
            swaps.update(head_swap(model, data, tracker.plan.seen_classes(task)))

    run_sequential_fedavg(cfg, after_round=after_round)
    summary = tracker.summary()
    teacher = summary["teacher"]
    result = {"seed": seed, "overrides": overrides,
              "teacher_aia": round(100 * teacher["average_incremental_accuracy"], 2),
              "teacher_forgetting": round(100 * teacher["forgetting"], 2),
              "teacher_final": round(100 * teacher["final_accuracy"], 2)}
    if "student" in summary:  # continual.student=false: the teacher alone, about twice as fast
        student = summary["student"]["final_accuracy"]
        result |= {"student_final": round(100 * student, 2),
                   "gap": round(100 * (teacher["final_accuracy"] - student), 2), **swaps}
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
