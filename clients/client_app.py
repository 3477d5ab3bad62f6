"""The ClientApp: decode a Message, run ``fedlite``'s local round, encode the reply.

Heavy, read-only things (the dataset, its split, the model object) are built once per worker
process and reused across messages; only small per-client state travels in ``context.state``:
method state and the arrays this client keeps to itself (pFedPara's W2, FedPer's local
modules, Local's whole model; ``fedlite.wire``). What a client sends may be changed after
training by Flower mods (``clients.mods``): a method's reply transform, DP clipping.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from clients.cohort import run_cohort
from clients.context import client_id_of, config_of
from clients.mods import clipping_mod, method_outgoing_mod
from fedlite.arrays import state_arrays
from fedlite.config import RunConfig
from fedlite.federation import (data_for, initial_model, local_round, resolve_device,
                                use_deterministic_kernels)
from fedlite.train import evaluate as evaluate_model
from fedlite.wire import keep_local, receive, wire_state
from strategies.array_codec import decode, encode_record

app = ClientApp()
log = logging.getLogger("flwr")


@lru_cache(maxsize=2)
def _model(cfg: RunConfig) -> tuple[torch.nn.Module, dict[str, np.ndarray]]:
    # One model object per process; every message overwrites its arrays. The initial arrays
    # are kept because the object soon holds another client's local arrays.
    use_deterministic_kernels(cfg.deterministic)
    model = initial_model(cfg, data_for(cfg)).to(resolve_device(cfg.device))
    return model, state_arrays(model)


STATE_KEY = "fedlite"


def _load_state(context: Context) -> dict[str, np.ndarray]:
    """The client's method and local-model state; Flower ships ``context.state`` with every
    message, so it holds only small arrays (a histogram, a threshold, local factors)."""
    record = context.state.get(STATE_KEY)
    return {} if record is None else {key: decode(array) for key, array in record.items()}


def _save_state(context: Context, state: dict[str, np.ndarray]) -> None:
    if state:
        context.state[STATE_KEY] = encode_record({k: np.ascontiguousarray(v)
                                                  for k, v in state.items()})


# The server's arrays of the last message, decoded: the clients a cohort host trains in a round
# are all sent the same ArrayRecord, so it is decoded once, not once per client (the Array
# objects are held, so ``is`` cannot match a new message's arrays by a reused id).
_last_received: tuple[list[tuple[str, Array]], dict[str, np.ndarray]] = ([], {})


def _server_arrays(record: ArrayRecord) -> dict[str, np.ndarray]:
    global _last_received
    items = list(record.items())
    seen, decoded = _last_received
    same = len(items) == len(seen) and all(
        key == old_key and array is old
        for (key, array), (old_key, old) in zip(items, seen, strict=True))
    if not same:
        decoded = {key: decode(array) for key, array in items}
        _last_received = (items, decoded)
    return decoded


def _setup(msg: Message, context: Context):
    """Config, client id, model (server arrays + this client's local arrays), data, state,
    and the keys that came from the server."""
    cfg = config_of(context)
    client_id = client_id_of(context)
    model, initial = _model(cfg)
    state = _load_state(context)
    received = _server_arrays(msg.content["arrays"])
    if receive(model, cfg, received, state, initial):
        log.info("fedlite: client %d has no local state yet: initialized it from the common "
                 "seeded model", client_id)
    return cfg, client_id, model, data_for(cfg).client(client_id), state, list(received)


@app.train(mods=[clipping_mod, method_outgoing_mod])
def train(msg: Message, context: Context) -> Message:
    cfg, client_id, model, data, state, received = _setup(msg, context)
    config = dict(msg.content["config"])
    device = next(model.parameters()).device
    result = local_round(model, data, cfg, int(config["server-round"]), client_id, device,
                         state, config=config, wire_keys=received)
    keep_local(model, cfg, state)
    _save_state(context, state)
    metrics = result.metrics()
    if cfg.fraction_evaluate > 0 and len(data.test_y):
        # The same held-out split as `evaluate`, but judged before the server's aggregate
        # replaces the shared arrays: shows what survives aggregation and what does not.
        metrics["trained-eval-accuracy"] = evaluate_model(model, data.test_x, data.test_y,
                                                          device=device)[1]
    reply = RecordDict({"arrays": encode_record(wire_state(cfg, model)),
                        "metrics": MetricRecord(metrics)})
    return Message(reply, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Evaluate on the client's own held-out split (what personalization is judged on), with
    its local arrays restored first."""
    _, _, model, data, _, _ = _setup(msg, context)
    loss, accuracy = evaluate_model(model, data.test_x, data.test_y,
                                    device=next(model.parameters()).device)
    metrics = {"num-examples": len(data.test_y), "eval-loss": loss, "eval-accuracy": accuracy}
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


@app.query("cohort")
def cohort(msg: Message, context: Context) -> Message:
    """The clients this node hosts, trained (or evaluated) one after another."""
    return run_cohort(app, msg, context)


@app.query("partition")
def partition(msg: Message, context: Context) -> Message:
    """Which partition this node has: the client it is, or in a cohort simulation its index
    among the host nodes (the driver's layout says which clients it hosts, ``fedlite.cohorts``)."""
    metrics = {"partition-id": client_id_of(context)}
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
