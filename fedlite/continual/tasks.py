"""Tasks on rounds: which classes each task brings, and which task a server round belongs to.

One Flower run carries the whole sequence: round r (1-based) belongs to task
(r - 1) // rounds-per-task, so task t spans rounds t*R+1 .. (t+1)*R and ends at round (t+1)*R,
where the server's evaluation records per-task accuracy. Round 0 (the initial evaluation) is
task 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import Any

from fedlite.errors import ConfigError


def parse_tasks(text: str) -> tuple[tuple[int, ...], ...]:
    """``"0-1,2-3"`` or ``"0 1, 2 3"`` -> ((0, 1), (2, 3)); a class may appear in one task only."""
    tasks: list[tuple[int, ...]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ConfigError(f"run config `continual.tasks`: empty task in {text!r}; "
                              "write e.g. '0-1,2-3,4-5,6-7,8-9'")
        try:
            if "-" in part:
                low, high = (int(v) for v in part.split("-"))
                classes = tuple(range(low, high + 1))
            else:
                classes = tuple(int(v) for v in part.split())
        except ValueError:
            raise ConfigError(f"run config `continual.tasks`: cannot read task {part!r}; "
                              "write a range '2-3' or classes '2 3'") from None
        if not classes or any(c < 0 for c in classes):
            raise ConfigError(f"run config `continual.tasks`: task {part!r} has no valid classes")
        tasks.append(classes)
    seen: dict[int, int] = {}
    for index, classes in enumerate(tasks):
        for c in classes:
            if c in seen:
                raise ConfigError(f"run config `continual.tasks`: class {c} is in task "
                                  f"{seen[c]} and task {index}; tasks must not overlap")
            seen[c] = index
    return tuple(tasks)


@dataclass(frozen=True)
class TaskPlan:
    tasks: tuple[tuple[int, ...], ...]
    rounds_per_task: int

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def task_of_round(self, server_round: int) -> int:
        task = max(server_round - 1, 0) // self.rounds_per_task
        if task >= self.num_tasks:
            raise ValueError(f"round {server_round} is past the last task "
                             f"({self.num_tasks} tasks x {self.rounds_per_task} rounds)")
        return task

    def is_task_end(self, server_round: int) -> bool:
        return server_round >= 1 and server_round % self.rounds_per_task == 0

    def seen_classes(self, task: int) -> tuple[int, ...]:
        """Classes of tasks 0..task: what the model must tell apart after ``task``."""
        return tuple(c for classes in self.tasks[:task + 1] for c in classes)


def task_plan(c: Any, num_rounds: int, num_classes: int) -> TaskPlan:
    """The validated plan of settings ``c`` (``ContinualConfig``) for a run of ``num_rounds``
    over a dataset with ``num_classes`` classes; errors name the fix."""
    if c.tasks:
        tasks = parse_tasks(c.tasks)
    else:
        if num_classes % c.num_tasks:
            raise ConfigError(f"run config `continual.num-tasks`: {num_classes} classes do not "
                              f"split into {c.num_tasks} equal tasks; give `continual.tasks` "
                              "explicitly")
        size = num_classes // c.num_tasks
        tasks = tuple(tuple(range(t * size, (t + 1) * size)) for t in range(c.num_tasks))
    listed = {k for classes in tasks for k in classes}
    outside = sorted(k for k in listed if k >= num_classes)
    if outside:
        raise ConfigError(f"run config `continual.tasks`: classes {outside} do not exist "
                          f"(the dataset has classes 0..{num_classes - 1})")
    missing = sorted(set(range(num_classes)) - listed)
    if missing:
        raise ConfigError(f"run config `continual.tasks`: classes {missing} are in no task; "
                          "every class must arrive in exactly one task")
    if num_rounds != len(tasks) * c.rounds_per_task:
        raise ConfigError(f"run config `num-rounds`: must be {len(tasks)} tasks x "
                          f"continual.rounds-per-task={c.rounds_per_task} = "
                          f"{len(tasks) * c.rounds_per_task}, got {num_rounds}")
    return TaskPlan(tasks, c.rounds_per_task)


def check_holders(plan: TaskPlan, client_labels: list) -> None:
    """Every class of every task must be held by at least one client, else its task would
    train on nothing for that class and report a wrong accuracy silently."""
    held = set()
    for labels in client_labels:
        held.update(int(v) for v in set(labels.tolist()))
    for index, classes in enumerate(plan.tasks):
        orphans = [c for c in classes if c not in held]
        if orphans:
            raise ConfigError(f"continual task {index} has classes {orphans} that no client "
                              "holds: change `continual.tasks`, the partitioner or num-clients")
