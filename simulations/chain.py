"""``fedlite chain``: the progressive FSP chain, one federated run per network.

teacher (trained, small) -> intermediates -> target. Each run is an ordinary fedlite run with
``fsp.teacher`` set to its predecessor's run directory: rounds 1..fsp.stage1-rounds learn the
predecessor's FSP matrices, the rest train on the main task from those weights. The chain only
decides the order and passes each finished run's checkpoint on as the next run's teacher.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import Any

from fedlite.config import ConfigError, RunConfig

RunOne = Callable[[RunConfig], dict[str, Any]]  # a config -> its summary (with "run-dir")


def step_config(cfg: RunConfig, model: str, teacher: str, teacher_model: str,
                rounds: int | None) -> RunConfig:
    changes: dict[str, Any] = {"model": model, "fsp.teacher": teacher,
                               "fsp.teacher-model": teacher_model,
                               "run-name": f"{cfg.run_name}-{model}"}
    if rounds:
        changes["num-rounds"] = rounds
    return cfg.with_keys(changes)


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
        step = step_config(cfg, model, teacher, teacher_model,
                           None if last else intermediate_rounds)
        stage1 = step.section("fsp").stage1_rounds
        if step.num_rounds <= stage1:
            raise ConfigError(f"run config `fsp.stage1-rounds`: {stage1} leaves "
                              f"{model} no stage-2 round in {step.num_rounds} rounds")
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


def add_parser(sub: argparse._SubParsersAction) -> None:
    chain = sub.add_parser("chain", help="progressive FSP chain from a trained teacher",
                           description=textwrap.dedent("""\
        Train networks of growing size one after another, each learning its predecessor's
        FSP matrices (fsp.stage1-rounds rounds) and then the main task. Give the models with
        --models, or the target with --target and a round budget (--budget-rounds) to let the
        chain choose how many intermediate ResNets fit."""))
    chain.add_argument("scenario", nargs="?", default="default",
                       help="scenario name or .toml (its model key is overridden per network)")
    chain.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    chain.add_argument("--teacher", required=True,
                       help="the trained teacher: a run directory (results/<run-id>/) or .npz")
    chain.add_argument("--teacher-model", default="resnet8", help="its architecture")
    chain.add_argument("--models", help="comma-separated students, target last: resnet14,resnet26")
    chain.add_argument("--target", help="the target model, with --budget-rounds")
    chain.add_argument("--budget-rounds", type=int,
                       help="rounds for the whole chain; intermediates fill what the target leaves")
    chain.add_argument("--intermediate-rounds", type=int,
                       help="rounds of each intermediate (default: num-rounds)")
    chain.add_argument("--verbose", action="store_true")
    chain.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from fedlite.models import MODELS
    from fedlite.train.fsp import choose_intermediates
    from simulations.engine import simulate
    from simulations.progress import print_progress
    from simulations.scenarios import load_scenario

    overrides = list(args.overrides)
    if "=" in args.scenario:  # `fedlite chain --teacher T lr=0.1`: the default scenario
        args.scenario, overrides = "default", [args.scenario, *overrides]
    scenario = load_scenario(args.scenario, overrides)
    cfg = scenario.config
    if args.models:
        models = args.models.split(",")
    elif args.target and args.budget_rounds:
        per = args.intermediate_rounds or cfg.num_rounds
        middle = choose_intermediates(args.teacher_model, args.target, budget=args.budget_rounds,
                                      target_cost=cfg.num_rounds,
                                      costs=dict.fromkeys(MODELS, per))
        models = [*middle, args.target]
    else:
        raise ValueError("fedlite chain: give --models, or --target with --budget-rounds")

    def run_one(step: RunConfig) -> dict[str, Any]:
        fsp = step.section("fsp")
        print(f"fedlite: chain: {step.model} learns from {fsp.teacher_model} ({fsp.teacher})",
              flush=True)
        return simulate(step, scenario.resources, verbose=args.verbose,
                        on_round=print_progress(step.num_rounds))

    runs = run_chain(cfg, teacher=args.teacher, teacher_model=args.teacher_model, models=models,
                     run_one=run_one, intermediate_rounds=args.intermediate_rounds)
    for run in runs:
        print(f"fedlite: chain: {run['model']}: final accuracy {100 * run['final-accuracy']:.2f}%"
              f" after {run['rounds']} rounds, records in {run['run-dir']}")
    return 0
