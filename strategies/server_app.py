"""The ServerApp: read the run config once, wait for the nodes, run the strategy, keep records."""

from __future__ import annotations

import dataclasses
import random
from logging import INFO
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.common import log
from flwr.serverapp import Grid, ServerApp

from fedlite.config import RunConfig
from fedlite.continual import evaluation as continual
from fedlite.data import resolve_name
from fedlite.federation import build_initial, data_for, initial_model, load_arrays
from fedlite.hadamard.convert import ConversionReport
from fedlite.hadamard.settings import FedParaConfig
from fedlite.records import RunRecorder
from fedlite.train import evaluate
from fedlite.train import fsp
from fedlite.wire import personalized, split_keys, wire_state
from strategies.accounting import Accounting
from strategies.checkpointing import check_resumable, checkpoint_state, resume, shifted
from strategies.grids import PollingGrid
from strategies.loading import accepted_arguments, load_strategy
from strategies.nodes import wait_for_nodes
from strategies.reliability import Reliability, unwrap
from strategies.sampling import PartitionOrderedGrid, partition_ids
from strategies.validation import Validation

app = ServerApp()


def build_strategy(cfg: RunConfig, max_examples: float = 1e9) -> Accounting:
    """The configured strategy, with the run's sampling defaults where it takes them, wrapped:
    bytes are counted on every reply, bad replies are rejected, then too few good replies
    skip the round (``max_examples``: the most samples a reply may claim)."""
    kwargs = cfg.strategy_arguments()
    defaults = {"fraction_train": cfg.fraction_train, "fraction_evaluate": cfg.fraction_evaluate,
                "min_train_nodes": 1, "min_evaluate_nodes": 1,
                "min_available_nodes": cfg.num_clients}
    accepted = accepted_arguments(cfg.strategy)
    kwargs = {**{k: v for k, v in defaults.items() if k in accepted}, **kwargs}
    inner = Reliability(load_strategy(cfg.strategy, kwargs), cfg.min_replies, cfg.node_wait_timeout)
    return Accounting(Validation(inner, max_examples))


def preflight(cfg: RunConfig) -> RunConfig:
    """Check everything that can be checked before any worker starts; resolve ``auto``.

    Raises a clear error for a bad strategy path or arguments, missing data files, a
    partition that cannot be made, or an unknown model.
    """
    # `auto` is resolved once here so every record names the dataset actually used.
    cfg = cfg.replace(dataset=resolve_name(cfg.dataset, cfg.data_dir or None))
    build_strategy(cfg)
    check_resumable(cfg)  # resume-from: a killed run of this same config
    data = data_for(cfg)
    model = initial_model(cfg, data)
    split_keys(cfg, model)  # fedpara.* and local-modules names
    fsp.preflight(cfg, model, data.dataset.input_shape)  # teacher file, architecture, stages
    if cfg.continual.enabled:  # model kind, task plan, every task class held by a client
        continual.check(cfg, data, model)
    return cfg


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_federation(PollingGrid(grid), preflight(RunConfig.from_mapping(context.run_config)))


def run_federation(grid: Grid, cfg: RunConfig, on_round=None) -> dict[str, Any]:
    """Run ``cfg`` on ``grid``; returns the summary. ``on_round(line)`` sees every record line."""
    data = data_for(cfg)
    strategy = build_strategy(cfg, max_examples=len(data.dataset.train_y))
    model, report = build_initial(cfg, data)
    wire, local = split_keys(cfg, model)
    # Price every message that carried arrays as if it had carried the dense model's arrays.
    dense = initial_model(cfg.replace(fedpara=FedParaConfig()), data)
    dense_message_bytes = ArrayRecord(dense.state_dict()).count_bytes()
    test_x, test_y = data.dataset.test_x, data.dataset.test_y
    if cfg.central_eval_size:
        test_x, test_y = test_x[:cfg.central_eval_size], test_y[:cfg.central_eval_size]
    # Continual runs are judged on the classes seen so far, per task at task ends.
    tracker = continual.ContinualTracker(cfg, data) if cfg.continual.enabled else None
    wait_for_nodes(grid, cfg.num_clients, cfg.node_wait_timeout)
    if samples_nodes(cfg):  # the same seed samples the same clients in every run
        grid = PartitionOrderedGrid(grid, partition_ids(grid, cfg.node_wait_timeout))
    random.seed(cfg.seed)  # Flower's strategies sample with `random`; a resume restores it
    recorder = RunRecorder.reopen(cfg.resume_from) if cfg.resume_from else RunRecorder(
                           cfg.results_dir, cfg.run_name, cfg.to_flat(),
                           meta={"strategy": type(unwrap(strategy)).__name__,
                                 "model": model_description(model, report, wire, local)})
    log(INFO, "fedlite: run %s -> %s", recorder.run_id, recorder.final_dir)
    if report is not None:
        (recorder.dir / "model.txt").write_text(str(report) + "\n")
        log(INFO, "fedlite: %s", report)
    log(INFO, "fedlite: %d arrays travel, %d stay on the clients", len(wire), len(local))

    def round_end(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        arrays_np = {key: array.numpy() for key, array in arrays.items()}
        load_arrays(model, arrays_np)
        metrics: dict[str, Any] = {"round": server_round}
        if cfg.fsp.enabled and server_round >= 1:  # 1: FSP loss only, 2: the main task
            metrics["stage"] = cfg.fsp.stage(server_round)
        if tracker is not None:
            metrics |= tracker.round_metrics(model, server_round)
        elif cfg.central_eval:
            loss, accuracy = evaluate(model, test_x, test_y)
            metrics |= {"accuracy": accuracy, "loss": loss}
        traffic = strategy.rounds.get(server_round)
        if traffic is not None:
            metrics |= {"bytes-down": traffic.bytes_down, "bytes-up": traffic.bytes_up,
                        "dense-bytes-down": traffic.array_messages_down * dense_message_bytes,
                        "dense-bytes-up": traffic.array_messages_up * dense_message_bytes,
                        "replies-ok": traffic.replies_ok, "replies-failed": traffic.replies_failed,
                        "replies-rejected": len(strategy.rejected.get(server_round, [])),
                        "round-skipped": int(server_round in strategy.skipped),
                        **{f"train/{k}": v for k, v in traffic.train_metrics.items()},
                        **{f"evaluate/{k}": v for k, v in traffic.evaluate_metrics.items()}}
            if traffic.client_accuracies:
                metrics |= {"client-accuracy-mean": float(np.mean(traffic.client_accuracies)),
                            "client-accuracy-std": float(np.std(traffic.client_accuracies))}
            if traffic.trained_accuracies:
                metrics |= {"client-accuracy-after-train-mean": float(np.mean(traffic.trained_accuracies)),
                            "client-accuracy-after-train-std": float(np.std(traffic.trained_accuracies))}
        line = recorder.log_round(metrics)
        recorder.save_checkpoint(arrays_np, server_round, checkpoint_state(strategy))
        if on_round:
            on_round(line)
        numeric = {k: v for k, v in line.items() if isinstance(v, (int, float))}
        return MetricRecord(numeric)

    runner, initial, done = resume(cfg, strategy, ArrayRecord(wire_state(cfg, model)))
    runner.start(grid=grid, initial_arrays=initial, num_rounds=cfg.num_rounds - done,
                 timeout=cfg.round_timeout, train_config=ConfigRecord({}),
                 evaluate_fn=shifted(round_end, done))
    last = recorder.rounds[-1]
    summary = {"rounds": cfg.num_rounds, "final-accuracy": last.get("accuracy"),
               "best-accuracy": max((r.get("accuracy") or 0.0) for r in recorder.rounds),
               "total-bytes": last["cumulative-bytes"],
               "total-dense-bytes": sum(r.get("dense-bytes-down", 0) + r.get("dense-bytes-up", 0)
                                        for r in recorder.rounds),
               "final-client-accuracy-mean": last.get("client-accuracy-mean"),
               "final-client-accuracy-std": last.get("client-accuracy-std"),
               "personalized": personalized(cfg),
               "seconds": round(sum(r["seconds"] for r in recorder.rounds), 3)}
    if tracker is not None:
        summary["continual"] = tracker.summary()
    run_dir = recorder.finish(summary)
    log(INFO, "fedlite: run complete, records in %s", run_dir)
    return {**summary, "run-dir": str(run_dir)}


def samples_nodes(cfg: RunConfig) -> bool:
    """Whether the strategy trains or evaluates on a sample of the nodes rather than all."""
    fractions = [cfg.fraction_train, cfg.fraction_evaluate,
                 *(v for k, v in cfg.strategy_arguments().items() if k.startswith("fraction"))]
    return any(0 < float(f) < 1 for f in fractions)


def model_description(model: torch.nn.Module, report: ConversionReport | None,
                      wire: list[str], local: list[str]) -> dict[str, Any]:
    """What config.json records about the model: parameters, per-layer ranks, the key split."""
    sizes = {key: value.numel() for key, value in model.state_dict().items()}
    described: dict[str, Any] = {
        "params": sum(p.numel() for p in model.parameters()),
        "wire-values": sum(sizes[k] for k in wire), "local-values": sum(sizes[k] for k in local),
        "local-keys": local}
    if report is not None:
        described |= {"fedpara-mode": report.mode, "dense-params": report.params_before,
                      "layers": [dataclasses.asdict(layer) for layer in report.layers]}
    return described
