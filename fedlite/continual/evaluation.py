"""The server's view of a continual run: accuracy on the classes seen so far after every round,
per-task accuracy at every task end, average incremental accuracy and forgetting, for the first
model and for the student. The continual method hands it to the server as its evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from fedlite.continual.model import Branch, ContinualNet, parameter_count
from fedlite.continual.settings import ContinualConfig
from fedlite.continual.tasks import task_plan
from fedlite.methods import RunSetup


def forgetting(matrix: list[list[float]]) -> float:
    """Mean over old tasks of (best accuracy at an earlier task end - final accuracy).

    ``matrix[t][k]`` is task k's accuracy at the end of task t (k <= t).
    """
    if len(matrix) < 2:
        return 0.0
    final = matrix[-1]
    drops = [max(row[k] for row in matrix[k:-1]) - final[k] for k in range(len(matrix) - 1)]
    return float(np.mean(drops))


@torch.no_grad()
def predictions(branch: Branch, x: np.ndarray, y: np.ndarray,
                batch_size: int = 1024) -> tuple[np.ndarray, float]:
    """Predicted classes (among the branch's seen classes) and mean cross-entropy."""
    branch.eval()
    device = next(branch.parameters()).device
    preds, loss = [], 0.0
    for start in range(0, len(y), batch_size):
        xb = torch.as_tensor(x[start:start + batch_size]).to(device)
        yb = torch.as_tensor(y[start:start + batch_size]).to(device)
        logits = branch(xb)
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        preds.append(logits.argmax(1).cpu().numpy())
    return (np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)), loss / max(len(y), 1)


class ContinualTracker:
    """The server's evaluation of a continual run (replaces central evaluation)."""

    def __init__(self, c: ContinualConfig, setup: RunSetup) -> None:
        data = setup.data
        self.plan = task_plan(c, setup.num_rounds, data.dataset.num_classes)
        self.test_x, self.test_y = data.dataset.test_x, data.dataset.test_y
        self.rows: dict[str, list[list[float]]] = {"teacher": [], "student": []}
        self.seen_accuracy: dict[str, list[float]] = {"teacher": [], "student": []}
        self.student = c.student
        self.params: dict[str, int] = {}

    def round_metrics(self, model: ContinualNet, server_round: int) -> dict[str, Any]:
        task = self.plan.task_of_round(server_round)
        seen = self.plan.seen_classes(task)
        model.set_seen(seen)
        keep = np.isin(self.test_y, seen)
        x, y = self.test_x[keep], self.test_y[keep]
        self.params = {"teacher": parameter_count(model.teacher),
                       "student": parameter_count(model.student)}
        metrics: dict[str, Any] = {"continual/task": task}
        branches = {"teacher": model.teacher,
                    **({"student": model.student} if self.student else {})}
        for name, branch in branches.items():
            pred, loss = predictions(branch, x, y)
            accuracy = float((pred == y).mean()) if len(y) else 0.0
            if name == "teacher":
                metrics |= {"accuracy": accuracy, "loss": loss}
            else:
                metrics["continual/student-accuracy"] = accuracy
            if not self.plan.is_task_end(server_round):
                continue
            row = [float((pred[y_in] == y[y_in]).mean())
                   for y_in in (np.isin(y, classes) for classes in self.plan.tasks[:task + 1])]
            self.rows[name].append(row)
            self.seen_accuracy[name].append(accuracy)
            tag = "" if name == "teacher" else "student-"
            metrics |= {f"continual/{tag}task-{k}-accuracy": v for k, v in enumerate(row)}
            metrics |= {f"continual/{tag}forgetting": forgetting(self.rows[name]),
                        f"continual/{tag}average-incremental-accuracy":
                            float(np.mean(self.seen_accuracy[name]))}
        return metrics

    def summary(self) -> dict[str, Any]:
        """What summary.json records under ``continual``."""
        out: dict[str, Any] = {"tasks": [list(t) for t in self.plan.tasks],
                               "rounds-per-task": self.plan.rounds_per_task}
        for name, rows in self.rows.items():
            if not rows:
                continue
            out[name] = {"average_incremental_accuracy": float(np.mean(self.seen_accuracy[name])),
                         "final_accuracy": self.seen_accuracy[name][-1],
                         "forgetting": forgetting(rows),
                         "accuracy_after_task": self.seen_accuracy[name],
                         "task_accuracy": rows, "params": self.params.get(name)}
        return out
