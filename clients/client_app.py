"""The ClientApp: decode a Message, run ``fedlite``'s local round, encode the reply.

Heavy, read-only things (the dataset, its split, the model object) are built once per worker
process and reused across messages; only small per-client state travels in ``context.state``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedlite.config import RunConfig
from fedlite.federation import data_for, initial_model, load_arrays, local_round, resolve_device
from fedlite.train import evaluate as evaluate_model

app = ClientApp()


@lru_cache(maxsize=8)
def _config(items: tuple) -> RunConfig:
    return RunConfig.from_mapping(dict(items))


@lru_cache(maxsize=2)
def _model(cfg: RunConfig) -> torch.nn.Module:
    # One model object per process; every message overwrites its arrays.
    return initial_model(cfg, data_for(cfg)).to(resolve_device(cfg.device))


def _setup(msg: Message, context: Context):
    cfg = _config(tuple(sorted(context.run_config.items())))
    client_id = int(context.node_config["partition-id"])
    model = _model(cfg)
    load_arrays(model, {key: array.numpy() for key, array in msg.content["arrays"].items()})
    return cfg, client_id, model, data_for(cfg).client(client_id)


STATE_KEY = "fedlite"


def _load_state(context: Context) -> dict[str, np.ndarray]:
    """The client's method state; Flower ships ``context.state`` with every message, so it
    holds only small arrays (a histogram, a threshold, local factors)."""
    record = context.state.get(STATE_KEY)
    return {} if record is None else {key: array.numpy() for key, array in record.items()}


def _save_state(context: Context, state: dict[str, np.ndarray]) -> None:
    if state:
        context.state[STATE_KEY] = ArrayRecord({k: Array(np.ascontiguousarray(v))
                                                for k, v in state.items()})


@app.train()
def train(msg: Message, context: Context) -> Message:
    cfg, client_id, model, data = _setup(msg, context)
    server_round = int(msg.content["config"]["server-round"])
    state = _load_state(context)
    result = local_round(model, data, cfg, server_round, client_id,
                         next(model.parameters()).device, state)
    _save_state(context, state)
    reply = RecordDict({"arrays": ArrayRecord(model.state_dict()),
                        "metrics": MetricRecord(result.metrics())})
    return Message(reply, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Evaluate on the client's own held-out split (what personalization is judged on)."""
    cfg, _, model, data = _setup(msg, context)
    loss, accuracy = evaluate_model(model, data.test_x, data.test_y,
                                    device=next(model.parameters()).device)
    metrics = {"num-examples": len(data.test_y), "eval-loss": loss, "eval-accuracy": accuracy}
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
