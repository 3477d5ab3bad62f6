"""The ServerApp: read the run config once, wait for the nodes, run the strategy, keep records."""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import (DifferentialPrivacyClientSideAdaptiveClipping,
                                     DifferentialPrivacyClientSideFixedClipping, Strategy)

from clients.mods import CLIPPING_KEY
from fedlite.arrays import load_arrays
from fedlite.config import ConfigError, RunConfig
from fedlite.data import resolve_name
from fedlite.federation import ServerSteps, build_initial, data_for, dense_model, run_setup
from fedlite.methods import Evaluator, table
from fedlite.plot import plot_run
from fedlite.records import RunRecorder
from fedlite.threads import torch_threads
from fedlite.train import evaluate
from fedlite.wire import split_keys, wire_state
from strategies.accounting import Accounting
from strategies.array_codec import decode
from strategies.checkpointing import check_resumable, checkpoint_state, resume, shifted
from strategies.cohort import CohortGrid, host_indices
from strategies.failure import RunFailed, failure_of
from strategies.grids import PollingGrid
from strategies.loading import load_strategy, nested
from strategies.reduction import reducible
from strategies.server_steps import AfterAggregation, refusal
from strategies.nodes import wait_for_nodes
from strategies.reliability import Reliability, unwrap
from strategies.round_pipeline import RoundPipeline
from strategies.validation import Validation

app = ServerApp()
log = logging.getLogger("flwr")


def strategy_defaults(cfg: RunConfig) -> dict[str, Any]:
    """What fedlite gives every strategy of the nest whose constructor takes it: the run's
    sampling, and what QFedAvg reads of the clients (their learning rate and training loss)."""
    return {"fraction_train": cfg.fraction_train, "fraction_evaluate": cfg.fraction_evaluate,
            "min_train_nodes": 1, "min_evaluate_nodes": 1,
            "min_available_nodes": cfg.num_clients,
            "client_learning_rate": cfg.lr, "train_loss_key": "train-loss"}


def build_strategy(cfg: RunConfig, max_examples: float = 1e9,
                   steps: ServerSteps | None = None) -> Accounting:
    """The configured strategy (wrappers and their inner strategies built from their specs),
    wrapped: bytes are counted on every reply, bad replies are rejected, then too few good
    replies skip the round (``max_examples``: the most samples a reply may claim); with
    ``steps``, the methods' steps after aggregation change what it returns."""
    try:
        user = load_strategy(cfg.strategy, cfg.strategy_arguments(), strategy_defaults(cfg))
    except ValueError as err:
        raise ConfigError(f"run config `strategy`: {err}") from None
    if table.server_steps(cfg):
        reason = refusal(nested(user))
        if reason:
            raise ConfigError(f"run config `strategy` with continual.server-head-steps: {reason}")
    inner: Strategy = Reliability(user, cfg.min_replies, cfg.node_wait_timeout)
    if steps:
        inner = AfterAggregation(inner, steps)
    return Accounting(Validation(inner, max_examples))


def client_clipping(strategy: Strategy) -> str | None:
    """Which client half Flower's client-side DP wrappers need (their ClientApp mod)."""
    for level in nested(unwrap(strategy)):
        if isinstance(level, DifferentialPrivacyClientSideAdaptiveClipping):
            return "adaptive"
        if isinstance(level, DifferentialPrivacyClientSideFixedClipping):
            return "fixed"
    return None


def preflight(cfg: RunConfig) -> RunConfig:
    """Check everything that can be checked before any worker starts; resolve ``auto``.

    Raises a clear error for a bad strategy path or arguments, missing data files, a
    partition that cannot be made, an unknown model, settings a method cannot work with, and
    methods that cannot run together.
    """
    # `auto` is resolved once here so every record names the dataset actually used.
    cfg = cfg.replace(dataset=resolve_name(cfg.dataset, cfg.data_dir or None))
    build_strategy(cfg)
    check_resumable(cfg)  # resume-from: a killed run of this same config
    refused = table.refusals(cfg)
    if refused:
        raise ConfigError(refused[0])
    data = data_for(cfg)
    model, _ = build_initial(cfg, data)
    split_keys(cfg, model)
    setup = run_setup(cfg, data, model)
    for method, settings in table.active(cfg):
        method.check(settings, setup)
    return cfg


@app.main()
def main(grid: Grid, context: Context) -> None:
    summary = run_federation(PollingGrid(grid),
                             preflight(RunConfig.from_mapping(context.run_config)))
    if summary.get("failure"):
        raise RunFailed(summary["failure"])


class CentralEvaluation:
    """The global model on the central test set (the first ``central-eval-size`` samples)."""

    def __init__(self, cfg: RunConfig, data) -> None:
        size = cfg.central_eval_size or None
        self.x, self.y = data.dataset.test_x[:size], data.dataset.test_y[:size]

    def round_metrics(self, model: torch.nn.Module, server_round: int) -> dict[str, Any]:
        start = time.perf_counter()
        loss, accuracy = evaluate(model, self.x, self.y)
        return {"accuracy": accuracy, "loss": loss,
                "central-eval-seconds": round(time.perf_counter() - start, 4)}

    def summary(self) -> dict[str, Any]:
        return {}


def evaluator_for(cfg: RunConfig, setup) -> tuple[str, Evaluator] | None:
    """The server's evaluation: a method's own (continual learning), else central."""
    own = [(method.name, e) for method, settings in table.active(cfg)
           if (e := method.evaluator(settings, setup)) is not None]
    if own:
        return own[0]
    return ("", CentralEvaluation(cfg, setup.data)) if cfg.central_eval else None


def run_federation(grid: Grid, cfg: RunConfig, on_round=None, on_start=None) -> dict[str, Any]:
    """Run ``cfg`` on ``grid``; returns the summary. ``on_round(line)`` sees every record line,
    ``on_start(records_dir, rounds_done)`` the run's ``.partial`` directory once it exists (and
    the rounds a resumed run had completed)."""
    data = data_for(cfg)
    steps = ServerSteps(cfg, data)
    strategy = build_strategy(cfg, max_examples=len(data.dataset.train_y), steps=steps)
    model, reports = build_initial(cfg, data)
    wire, local = split_keys(cfg, model)
    setup = run_setup(cfg, data, model)
    # Price every message that carried arrays as if it had carried the dense model's arrays.
    dense_message_bytes = ArrayRecord(dense_model(cfg, data).state_dict()).count_bytes()
    evaluation = evaluator_for(cfg, setup)
    wait_for_nodes(grid, cfg.nodes, cfg.node_wait_timeout)
    # One virtual node per client, listed and answered in client order: the same seed samples
    # the same clients and sums their replies in the same order, however many SuperNodes host
    # them (strategies.cohort).
    cohorts = cfg.nodes < cfg.num_clients
    reduce = cohorts and cfg.node_reduction and reducible(list(nested(unwrap(strategy))))
    # In a simulation (``simulation-nodes`` set, as ``fedlite run`` always sets it) the driver
    # keeps each client's state, so that every round's checkpoint holds it; in a deployment
    # each SuperNode keeps its own client's.
    grid = CohortGrid(grid, host_indices(grid, cfg.node_wait_timeout),
                      [data.train_count(c) for c in range(cfg.num_clients)],
                      carry_state=cfg.simulation_nodes > 0, reduce=reduce,
                      max_examples=len(data.dataset.train_y))
    # Flower's strategies sample with `random`, its DP wrappers draw noise from numpy's global
    # generator; a resume restores both
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    recorder = RunRecorder.reopen(cfg.resume_from) if cfg.resume_from else RunRecorder(
        cfg.results_dir, cfg.run_name, cfg.to_flat(),
        meta={"strategy": type(unwrap(strategy)).__name__,
              "model": model_description(model, reports, wire, local)})
    log.info("fedlite: run %s -> %s", recorder.run_id, recorder.final_dir)
    for report in reports:
        (recorder.dir / "model.txt").write_text(str(report) + "\n")
        log.info("fedlite: %s", report)
    log.info("fedlite: %d arrays travel, %d stay on the clients", len(wire), len(local))
    if reduce:
        log.info("fedlite: each of the %d host nodes sums its clients' training replies "
                 "(node-reduction)", cfg.nodes)

    # Only central evaluation overlaps the next round: a method's own evaluator (continual
    # learning's) may follow the run's tasks round by round, so it stays in line.
    pipeline = RoundPipeline(cfg.central_eval_overlap and evaluation is not None
                             and isinstance(evaluation[1], CentralEvaluation))

    def round_end(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        arrays_np = {key: decode(array) for key, array in arrays.items()}
        metrics: dict[str, Any] = {"round": server_round}
        for method, settings in table.active(cfg):
            metrics |= method.round_metrics(settings, server_round)
        traffic = strategy.rounds.get(server_round)
        if traffic is not None:
            metrics |= round_traffic(strategy, traffic, server_round, dense_message_bytes)
        if steps:  # what the steps after aggregation reported (``strategies.server_steps``)
            metrics |= strategy.figures.get(server_round, {})
        transport = grid.take_transport()  # what the simulation itself moved, beside it
        metrics |= {"transport-bytes-down": transport.bytes_down,
                    "transport-bytes-up": transport.bytes_up,
                    "transport-messages": transport.messages}
        # taken now (a snapshot): by the time a background record runs, the next round has
        # moved the strategy and the client states on
        extra = checkpoint_state(strategy, grid.states)

        def record() -> MetricRecord:
            if evaluation is not None:
                metrics.update(evaluation[1].round_metrics(model, server_round))
            line = recorder.log_round(metrics)
            recorder.save_checkpoint(arrays_np, server_round, extra)
            if on_round:
                on_round(line)
            return numeric_record(line)

        pipeline.wait()  # the round in flight still evaluates ``model``
        load_arrays(model, arrays_np)
        # Overlapped, the evaluation's figures arrive after Flower has logged the round and
        # stored it in its Result: give Flower what is known now rather than None (the
        # figures are in the round's line, rounds.jsonl and the summary)
        known = numeric_record(metrics)
        recorded = pipeline.submit(record)
        return known if recorded is None else recorded

    runner, initial, done = resume(cfg, strategy, ArrayRecord(wire_state(cfg, model)),
                                   grid.states)
    if on_start:
        on_start(recorder.dir, done)
    clipping = client_clipping(strategy)
    # In a simulation the overlapped evaluation shares the cores with the actors, each on one
    # thread; on more threads it only contends with them (a cohort round at 10,000 clients:
    # 0.18 s with two, 0.16 s with one; docs/experiments/scale.md)
    threads = 1 if pipeline.overlaps and cfg.simulation_nodes > 0 else None
    with pipeline, torch_threads(threads):
        runner.start(grid=grid, initial_arrays=initial, num_rounds=cfg.num_rounds - done,
                     timeout=cfg.round_timeout,
                     train_config=ConfigRecord({CLIPPING_KEY: clipping} if clipping else {}),
                     evaluate_fn=shifted(round_end, done))
    summary = run_summary(cfg, recorder.rounds, strategy, local)
    if evaluation is not None and evaluation[0]:
        summary[evaluation[0]] = evaluation[1].summary()
    run_dir = recorder.finish(summary)
    if cfg.plot:
        plot_run(run_dir)
    if summary["failure"]:
        log.error("fedlite: %s", summary["failure"])
    else:
        log.info("fedlite: run complete, records in %s", run_dir)
    return {**summary, "run-dir": str(run_dir)}


def numeric_record(line: dict[str, Any]) -> MetricRecord:
    """A round's numeric figures as the MetricRecord Flower logs and keeps in its Result."""
    return MetricRecord({k: v for k, v in line.items() if isinstance(v, (int, float))})


def round_traffic(strategy: Accounting, traffic, server_round: int,
                  dense_message_bytes: int) -> dict[str, Any]:
    """A round's bytes, replies and metrics as recorded in rounds.jsonl."""
    metrics = {"bytes-down": traffic.bytes_down, "bytes-up": traffic.bytes_up,
               "dense-bytes-down": traffic.array_messages_down * dense_message_bytes,
               "dense-bytes-up": traffic.array_messages_up * dense_message_bytes,
               "replies-ok": traffic.replies_ok, "replies-failed": traffic.replies_failed,
               "replies-rejected": len(strategy.rejected.get(server_round, [])),
               "round-skipped": int(server_round in strategy.skipped),
               **{f"train/{k}": v for k, v in traffic.train_metrics.items()},
               **{f"strategy/{k}": v for k, v in sorted(traffic.strategy_train_metrics.items())
                  if isinstance(v, (int, float))},
               **{f"strategy/evaluate/{k}": v for k, v in sorted(traffic.evaluate_metrics.items())
                  if isinstance(v, (int, float))}}
    for name, values in (("client-accuracy", traffic.client_accuracies),
                         ("client-accuracy-after-train", traffic.trained_accuracies)):
        if values:
            metrics |= {f"{name}-mean": float(np.mean(values)),
                        f"{name}-std": float(np.std(values))}
    return metrics


def run_summary(cfg: RunConfig, rounds: list[dict[str, Any]], strategy: Accounting,
                local: list[str]) -> dict[str, Any]:
    last = rounds[-1]
    skipped = sorted(r["round"] for r in rounds if r.get("round-skipped"))
    return {"rounds": cfg.num_rounds, "final-accuracy": last.get("accuracy"),
            "best-accuracy": max((r.get("accuracy") or 0.0) for r in rounds),
            "total-bytes": last["cumulative-bytes"],
            "total-dense-bytes": sum(r.get("dense-bytes-down", 0) + r.get("dense-bytes-up", 0)
                                     for r in rounds),
            "final-client-accuracy-mean": last.get("client-accuracy-mean"),
            "final-client-accuracy-std": last.get("client-accuracy-std"),
            "personalized": bool(local),
            "replies-rejected": sum(r.get("replies-rejected", 0) for r in rounds),
            "replies-failed": sum(r.get("replies-failed", 0) for r in rounds),
            "rounds-skipped": skipped,
            "failure": failure_of(cfg, skipped, strategy),
            "seconds": round(sum(r["seconds"] for r in rounds), 3)}


def model_description(model: torch.nn.Module, reports: list[Any], wire: list[str],
                      local: list[str]) -> dict[str, Any]:
    """What config.json records about the model: parameters, per-layer ranks, the key split."""
    sizes = {key: value.numel() for key, value in model.state_dict().items()}
    described: dict[str, Any] = {
        "params": sum(p.numel() for p in model.parameters()),
        "wire-values": sum(sizes[k] for k in wire), "local-values": sum(sizes[k] for k in local),
        "local-keys": local}
    for report in reports:
        described |= report.describe()
    return described
