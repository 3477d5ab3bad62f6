"""``fedlite chain``: the progressive FSP chain, one federated run per network.

teacher (trained, small) -> intermediates -> target. Each run is an ordinary fedlite run with
``fsp.teacher`` set to its predecessor's run directory: rounds 1..fsp.stage1-rounds learn the
predecessor's FSP matrices, the rest train on the main task from those weights. The chain
decides the order and passes each finished run's checkpoint on as the next run's teacher; with
``--target`` it also decides, as it goes, how many intermediates to train (KR 10-2063377,
claim 8: ``fedlite.train.fsp.selection``). ``--direct`` is the form without intermediates.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import Any

from fedlite.config import ConfigError, RunConfig

RunOne = Callable[[RunConfig], dict[str, Any]]  # a config -> its summary (with "run-dir")
Cost = Callable[[dict[str, Any], int], float]  # a run's summary and rounds -> its cost


def step_config(cfg: RunConfig, model: str, teacher: str, teacher_model: str,
                rounds: int | None) -> RunConfig:
    changes: dict[str, Any] = {"model": model, "fsp.teacher": teacher,
                               "fsp.teacher-model": teacher_model,
                               "run-name": f"{cfg.run_name}-{model}"}
    if rounds:
        changes["num-rounds"] = rounds
    return cfg.with_keys(changes)


def check_stages(cfg: RunConfig, model: str, rounds: int) -> None:
    stage1 = cfg.section("fsp").stage1_rounds
    if rounds <= stage1:
        raise ConfigError(f"run config `fsp.stage1-rounds`: {stage1} leaves {model} no "
                          f"stage-2 round in {rounds} rounds")


def run_chain(cfg: RunConfig, *, teacher: str, teacher_model: str, models: list[str],
              run_one: RunOne, intermediate_rounds: int | None = None) -> list[dict[str, Any]]:
    """Train ``models`` in order, each from its predecessor; returns one summary per network.

    Everything checkable is checked before the first round: the teacher checkpoint, growing
    sizes, and that every network has a stage 1 and a stage 2.
    """
    from fedlite.train.fsp import check_chain, checkpoint_path

    models = check_chain(teacher_model, models)
    checkpoint_path(teacher)
    for index, model in enumerate(models):  # stage lengths of every step, up front
        last = index == len(models) - 1
        check_stages(cfg, model, cfg.num_rounds if last else intermediate_rounds or cfg.num_rounds)
    runs: list[dict[str, Any]] = []
    for index, model in enumerate(models):
        last = index == len(models) - 1
        step = step_config(cfg, model, teacher, teacher_model,
                           None if last else intermediate_rounds)
        summary = run_one(step)
        runs.append({"model": model, "teacher": teacher, "teacher-model": teacher_model,
                     "rounds": step.num_rounds, **summary})
        teacher, teacher_model = str(summary["run-dir"]), model  # the next one learns from it
    return runs


def run_progressive(cfg: RunConfig, *, teacher: str, teacher_model: str, plan: Any,
                    run_one: RunOne, cost: Cost, teacher_accuracy: float | None = None,
                    teacher_cost: tuple[float, int] | None = None) -> list[dict[str, Any]]:
    """The claim-8 chain: at least one intermediate, then one more while ``next_network``
    (``fedlite.train.fsp.selection``, on each finished run's accuracy and ``cost``) says so,
    then the target. ``teacher_cost`` (its run's cost and rounds, when measured) lets the
    budget be checked before the first run. Each summary also says why its network was
    trained (``chosen-because``)."""
    from fedlite.train.fsp import Measured, checkpoint_path, next_network

    checkpoint_path(teacher)
    check_stages(cfg, "an intermediate", plan.intermediate_rounds)
    check_stages(cfg, plan.target, plan.target_rounds)
    done = [Measured(teacher_model, teacher_accuracy, *(teacher_cost or (None, 0)))]
    runs: list[dict[str, Any]] = []
    while True:
        step = next_network(done, plan)
        rounds = plan.intermediate_rounds if step.intermediate else plan.target_rounds
        summary = run_one(step_config(cfg, step.model, teacher, teacher_model, rounds))
        runs.append({"model": step.model, "teacher": teacher, "teacher-model": teacher_model,
                     "rounds": rounds, "chosen-because": step.reason, **summary})
        if not step.intermediate:
            return runs
        done.append(Measured(step.model, summary["final-accuracy"], cost(summary, rounds),
                             rounds))
        teacher, teacher_model = str(summary["run-dir"]), step.model


def add_parser(sub: argparse._SubParsersAction) -> None:
    chain = sub.add_parser("chain", help="progressive FSP chain from a trained teacher",
                           description=textwrap.dedent("""\
        Train networks of growing size one after another, each learning its predecessor's
        FSP matrices (fsp.stage1-rounds rounds) and then the main task. Give the models with
        --models (at least one intermediate, the target last), or the target with --target:
        the chain then trains at least one intermediate and adds the next size up while the
        last one improved on its teacher, has not reached --target-accuracy and the whole
        chain still fits --budget-rounds or --budget-seconds (KR 10-2063377, claim 8).
        --direct --target trains the target from the teacher without intermediates."""))
    chain.add_argument("scenario", nargs="?", default="default",
                       help="scenario name or .toml (its model key is overridden per network)")
    chain.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    chain.add_argument("--teacher", required=True,
                       help="the trained teacher: a run directory (results/<run-id>/) or .npz")
    chain.add_argument("--teacher-model", default="resnet8", help="its architecture")
    chain.add_argument("--models", help="comma-separated students, target last: resnet14,resnet26")
    chain.add_argument("--target", help="the target model: the chain chooses the intermediates")
    chain.add_argument("--direct", action="store_true",
                       help="with --target: the target learns from the teacher directly")
    chain.add_argument("--budget-rounds", type=int,
                       help="rounds for the whole chain, intermediates and target")
    chain.add_argument("--budget-seconds", type=float,
                       help="seconds (each run's measured time) for the whole chain")
    chain.add_argument("--target-accuracy", type=float,
                       help="no further intermediate once one reaches this accuracy (0..1)")
    chain.add_argument("--teacher-accuracy", type=float,
                       help="the teacher's accuracy when --teacher is a bare .npz")
    chain.add_argument("--intermediate-rounds", type=int,
                       help="rounds of each intermediate (default: num-rounds)")
    chain.add_argument("--verbose", action="store_true")
    chain.set_defaults(handler=main)


def chain_plan(args: argparse.Namespace, cfg: RunConfig) -> tuple[Any, Cost]:
    """The claim-8 plan of the command line, and how a run's cost is counted."""
    from fedlite.models import MODELS
    from fedlite.train.fsp import Plan

    if args.budget_rounds and args.budget_seconds:
        raise ConfigError("fedlite chain: give --budget-rounds or --budget-seconds, not both")
    rounds = args.intermediate_rounds or cfg.num_rounds
    by_rounds = bool(args.budget_rounds)
    plan = Plan(target=args.target, target_rounds=cfg.num_rounds, intermediate_rounds=rounds,
                budget=args.budget_rounds or args.budget_seconds,
                target_accuracy=args.target_accuracy,
                costs=dict.fromkeys(MODELS, 1.0) if by_rounds else None)

    def cost(summary: dict[str, Any], rounds: int) -> float:
        return float(rounds) if by_rounds else float(summary["seconds"])

    return plan, cost


def teacher_record(args: argparse.Namespace) -> dict[str, Any]:
    """What the teacher's run recorded: its last accuracy (--teacher-accuracy wins) and its
    seconds and rounds, the first measured cost; nothing for a bare .npz."""
    from pathlib import Path

    from fedlite.records import read_rounds

    rounds = [r for r in read_rounds(args.teacher) if r.get("round", 0) >= 1] \
        if (Path(args.teacher) / "rounds.jsonl").is_file() else []
    accuracy = next((r["accuracy"] for r in reversed(rounds) if r.get("accuracy") is not None),
                    None)
    cost = (sum(r.get("seconds", 0.0) for r in rounds), len(rounds)) if rounds else None
    return {"teacher_accuracy": args.teacher_accuracy if args.teacher_accuracy is not None
            else accuracy, "teacher_cost": None if args.budget_rounds else cost}


def chain_error(args: argparse.Namespace, err: Exception) -> str:
    """Why no chain with an intermediate fits, naming the option and the fix."""
    key = "--budget-rounds" if args.budget_rounds else \
        "--budget-seconds" if args.budget_seconds else None
    if key is None:
        return f"fedlite chain --target: {err}; or give the chain with --models"
    return (f"fedlite chain {key}: {err}; raise {key}, shorten --intermediate-rounds or "
            "num-rounds, or train the target from the teacher with --direct")


def main(args: argparse.Namespace) -> int:
    from fedlite.train.fsp import ChainError
    from simulations.engine import simulate
    from simulations.progress import print_progress
    from simulations.scenarios import load_scenario

    overrides = list(args.overrides)
    if "=" in args.scenario:  # `fedlite chain --teacher T lr=0.1`: the default scenario
        args.scenario, overrides = "default", [args.scenario, *overrides]
    scenario = load_scenario(args.scenario, overrides)
    cfg = scenario.config

    def run_one(step: RunConfig) -> dict[str, Any]:
        fsp = step.section("fsp")
        print(f"fedlite: chain: {step.model} learns from {fsp.teacher_model} ({fsp.teacher})",
              flush=True)
        return simulate(step, scenario.resources, verbose=args.verbose,
                        on_round=print_progress(step.num_rounds))

    common = {"teacher": args.teacher, "teacher_model": args.teacher_model, "run_one": run_one}
    if args.models:
        models = args.models.split(",")
        if len([m for m in models if m.strip()]) < 2:
            raise ConfigError("fedlite chain --models: a chain needs at least one intermediate "
                              "before the target; for teacher -> target use --direct --target")
        runs = run_chain(cfg, models=models, intermediate_rounds=args.intermediate_rounds,
                         **common)
    elif args.target and args.direct:
        runs = run_chain(cfg, models=[args.target], **common)
    elif args.target:
        plan, cost = chain_plan(args, cfg)
        try:
            runs = run_progressive(cfg, plan=plan, cost=cost, **teacher_record(args), **common)
        except ChainError as err:
            raise ConfigError(chain_error(args, err)) from None
    else:
        raise ConfigError("fedlite chain: give --models, or --target (with --direct for no "
                          "intermediate)")
    for run in runs:
        print(f"fedlite: chain: {run['model']}: final accuracy {100 * run['final-accuracy']:.2f}%"
              f" after {run['rounds']} rounds, records in {run['run-dir']}"
              + (f" ({run['chosen-because']})" if run.get("chosen-because") else ""), flush=True)
    return 0
