"""The ServerApp: read the run config once, wait for the nodes, run the strategy, keep records."""

from __future__ import annotations

from logging import INFO
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.common import log
from flwr.serverapp import Grid, ServerApp

from fedlite.config import RunConfig
from fedlite.data import resolve_name
from fedlite.federation import data_for, initial_model, load_arrays
from fedlite.records import RunRecorder
from fedlite.train import evaluate
from strategies.accounting import Accounting
from strategies.loading import accepted_arguments, load_strategy
from strategies.nodes import wait_for_nodes

app = ServerApp()


def build_strategy(cfg: RunConfig) -> Accounting:
    """The configured strategy, with the run's sampling defaults where it takes them."""
    kwargs = cfg.strategy_arguments()
    defaults = {"fraction_train": cfg.fraction_train, "fraction_evaluate": cfg.fraction_evaluate,
                "min_train_nodes": 1, "min_evaluate_nodes": 1,
                "min_available_nodes": cfg.num_clients}
    accepted = accepted_arguments(cfg.strategy)
    kwargs = {**{k: v for k, v in defaults.items() if k in accepted}, **kwargs}
    return Accounting(load_strategy(cfg.strategy, kwargs))


def preflight(cfg: RunConfig) -> RunConfig:
    """Check everything that can be checked before any worker starts; resolve ``auto``.

    Raises a clear error for a bad strategy path or arguments, missing data files, a
    partition that cannot be made, or an unknown model.
    """
    # `auto` is resolved once here so every record names the dataset actually used.
    cfg = cfg.replace(dataset=resolve_name(cfg.dataset, cfg.data_dir or None))
    build_strategy(cfg)
    initial_model(cfg, data_for(cfg))
    return cfg


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_federation(grid, preflight(RunConfig.from_mapping(context.run_config)))


def run_federation(grid: Grid, cfg: RunConfig, on_round=None) -> dict[str, Any]:
    """Run ``cfg`` on ``grid``; returns the summary. ``on_round(line)`` sees every record line."""
    strategy = build_strategy(cfg)
    data = data_for(cfg)
    model = initial_model(cfg, data)
    wait_for_nodes(grid, cfg.num_clients, cfg.node_wait_timeout)
    recorder = RunRecorder(cfg.results_dir, cfg.run_name, cfg.to_flat(),
                           meta={"strategy": type(strategy.inner).__name__})
    log(INFO, "fedlite: run %s -> %s", recorder.run_id, recorder.final_dir)

    def round_end(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        arrays_np = {key: array.numpy() for key, array in arrays.items()}
        load_arrays(model, arrays_np)
        metrics: dict[str, Any] = {"round": server_round}
        if cfg.central_eval:
            loss, accuracy = evaluate(model, data.dataset.test_x, data.dataset.test_y)
            metrics |= {"accuracy": accuracy, "loss": loss}
        traffic = strategy.rounds.get(server_round)
        if traffic is not None:
            metrics |= {"bytes-down": traffic.bytes_down, "bytes-up": traffic.bytes_up,
                        "replies-ok": traffic.replies_ok, "replies-failed": traffic.replies_failed,
                        **{f"train/{k}": v for k, v in traffic.train_metrics.items()},
                        **{f"evaluate/{k}": v for k, v in traffic.evaluate_metrics.items()}}
            if traffic.client_accuracies:
                accs = torch.tensor(traffic.client_accuracies, dtype=torch.float64)
                metrics |= {"client-accuracy-mean": float(accs.mean()),
                            "client-accuracy-std": float(accs.std(unbiased=False))}
        line = recorder.log_round(metrics)
        recorder.save_checkpoint(arrays_np, server_round)
        if on_round:
            on_round(line)
        numeric = {k: v for k, v in line.items() if isinstance(v, (int, float))}
        return MetricRecord(numeric)

    strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()),
                   num_rounds=cfg.num_rounds, timeout=cfg.round_timeout,
                   train_config=ConfigRecord({}), evaluate_fn=round_end)
    last = recorder.rounds[-1]
    summary = {"rounds": cfg.num_rounds, "final-accuracy": last.get("accuracy"),
               "best-accuracy": max((r.get("accuracy") or 0.0) for r in recorder.rounds),
               "total-bytes": last["cumulative-bytes"],
               "seconds": round(sum(r["seconds"] for r in recorder.rounds), 3)}
    run_dir = recorder.finish(summary)
    log(INFO, "fedlite: run complete, records in %s", run_dir)
    return {**summary, "run-dir": str(run_dir)}
