"""How many intermediates, as the chain runs (KR 10-2063377, claim 8): from the target's
training-time budget and/or a target accuracy, using the measured cost of each network's run
and the accuracy it reached.

The chain grows one registered ResNet at a time (the next depth up). The first intermediate is
always trained: a chain without one is the direct form (teacher -> target), asked for by name.
After each intermediate, another one is added only while
- the one just trained improved on its own teacher's accuracy (a step that brought nothing
  predicts that the next will not either),
- it has not already reached the target accuracy (when one is given), and
- the intermediates run so far, the next one and the target still fit the budget (when one is
  given), each network's cost estimated from measured ones (below).
Costs share the budget's unit: client seconds, or rounds (a cost of 1 a round). A network's cost
per round is its measured one when known (``costs``, or its own finished run); else the nearest
measured network's, scaled by depth (a ResNet's work per sample grows with its blocks).
Pure: no training, no files; ``select_intermediates`` replays it on recorded runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fedlite.models import MODELS
from fedlite.train.fsp.chain import resnet_depth


@dataclass(frozen=True)
class Measured:
    """A network of the chain as its run came out (the given teacher: ``cost`` None)."""

    model: str
    accuracy: float | None  # None: unknown (a teacher given as a bare checkpoint)
    cost: float | None = None  # what its run took, in the budget's unit
    rounds: int = 0


@dataclass(frozen=True)
class Plan:
    """The chain's limits: the budget covers every intermediate's run and the target's."""

    target: str
    target_rounds: int
    intermediate_rounds: int
    budget: float | None = None
    target_accuracy: float | None = None
    costs: Mapping[str, float] | None = None  # measured cost per round, by network


@dataclass(frozen=True)
class Next:
    model: str  # the network to train next: an intermediate, or the target
    intermediate: bool
    reason: str


class ChainError(ValueError):
    """No chain with an intermediate fits; the message says what is needed."""


def round_cost(model: str, done: Sequence[Measured], plan: Plan) -> float | None:
    if plan.costs and model in plan.costs:
        return plan.costs[model]
    measured = [m for m in done if m.cost is not None and m.rounds]
    if not measured:
        return None
    near = min(measured, key=lambda m: abs(resnet_depth(m.model) - resnet_depth(model)))
    return near.cost / near.rounds * resnet_depth(model) / resnet_depth(near.model)


def next_network(done: Sequence[Measured], plan: Plan) -> Next:
    """What to train after ``done`` (the teacher first, then the intermediates in order)."""
    last, target = done[-1], plan.target
    pool = sorted((m for m in MODELS if m.startswith("resnet")
                   and resnet_depth(last.model) < resnet_depth(m) < resnet_depth(target)),
                  key=resnet_depth)
    spent = sum(m.cost or 0.0 for m in done[1:])

    def need(model: str) -> float | None:  # the next intermediate, then the target
        per, per_target = round_cost(model, done, plan), round_cost(target, done, plan)
        if per is None or per_target is None:
            return None
        return spent + per * plan.intermediate_rounds + per_target * plan.target_rounds

    if len(done) == 1:
        if not pool:
            raise ChainError(f"no registered ResNet lies between {last.model} and {target}, so "
                             "a chain has no intermediate; train the target from the teacher "
                             "directly")
        total = need(pool[0])
        if plan.budget is not None and total is not None and total > plan.budget:
            raise ChainError(f"one intermediate ({pool[0]}, {plan.intermediate_rounds} rounds) "
                             f"and the target ({plan.target_rounds} rounds) need about "
                             f"{total:.4g}, over the budget of {plan.budget:.4g}")
        return Next(pool[0], True, "a chain has at least one intermediate")
    teacher = done[-2]
    if plan.target_accuracy is not None and (last.accuracy or 0.0) >= plan.target_accuracy:
        return Next(target, False, f"{last.model} reached the target accuracy")
    if None not in (last.accuracy, teacher.accuracy) and last.accuracy <= teacher.accuracy:
        return Next(target, False, f"{last.model} did not improve on {teacher.model}")
    if not pool:
        return Next(target, False, f"no registered ResNet between {last.model} and {target}")
    total = need(pool[0])
    if plan.budget is not None and (total is None or total > plan.budget):
        return Next(target, False, f"another intermediate ({pool[0]}) would not fit the budget")
    return Next(pool[0], True, f"{last.model} improved on {teacher.model}")


def select_intermediates(teacher: Measured, recorded: Mapping[str, Measured],
                         plan: Plan) -> tuple[list[str], str]:
    """The intermediates ``next_network`` picks when each network's run comes out as
    ``recorded`` (by model), and why the chain stopped there."""
    done = [teacher]
    while True:
        step = next_network(done, plan)
        if not step.intermediate:
            return [m.model for m in done[1:]], step.reason
        done.append(recorded[step.model])
