"""Checkpoint and resume: a killed run continues from its last completed round.

``checkpoint.npz`` (``fedlite.records``) holds the global arrays and the round; this module adds
what else a round depends on: the strategy's array state as far as Flower's strategies keep it
in plain attributes (FedOpt's ``m_t``/``v_t``/``current_arrays``, FedAvgM's momentum), and the
server's RNG states (FedAvg samples nodes with Python's ``random``), and in a cohort simulation
the clients' own state, which the driver keeps between their rounds (``strategies.cohort``:
pFedPara's W2, skipping's threshold and histogram, continual memory). Client training is
already deterministic per (seed, round, client) (``fedlite.seeding.derive_seed``), so a
resumed run ends with the same global model as an uninterrupted one. In a deployment each
SuperNode keeps its own client's state, as Flower's ``context.state`` does.

``Strategy.start`` always counts rounds from 1: ``RoundOffset`` shifts every hook by the rounds
already done, so clients see the true round number (their learning rate and seeds depend on it).
"""

from __future__ import annotations

import json
import logging
import pickle
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedlite.config import ConfigError, RunConfig
from fedlite.records import load_checkpoint, load_checkpoint_state
from strategies.loading import nested
from strategies.reliability import unwrap

STRATEGY, RNG, CLIENTS = "__strategy__", "__rng__", "__clients__"
# keys that may differ between the killed run and its resumption
RESUMABLE_CHANGES = {"num-rounds", "resume-from"}


def strategy_state(strategy: Strategy) -> dict[str, np.ndarray]:
    """The state a user's strategy (and every strategy it wraps) keeps in attributes: arrays
    (ArrayRecords, dicts and lists of arrays) and numbers (a DP wrapper's adaptive clipping
    norm), copied: a snapshot the strategy's next round cannot change."""
    state: dict[str, np.ndarray] = {}
    for level, inner in enumerate(nested(strategy)):
        for name, value in vars(inner).items():
            prefix = f"{STRATEGY}/{{}}/{level}/{name}"
            if isinstance(value, ArrayRecord):
                state |= {f"{prefix.format('record')}/{k}": a.numpy() for k, a in value.items()}
            elif isinstance(value, dict) and value and all(isinstance(v, np.ndarray)
                                                           for v in value.values()):
                state |= {f"{prefix.format('dict')}/{k}": v.copy() for k, v in value.items()}
            elif isinstance(value, list) and value and all(isinstance(v, np.ndarray)
                                                           for v in value):
                state |= {f"{prefix.format('list')}/{i}": v.copy() for i, v in enumerate(value)}
            elif isinstance(value, (bool, int, float)):
                state[f"{prefix.format('number')}/"] = np.asarray(value)
    return state


def restore_strategy_state(strategy: Strategy, stored: Mapping[str, np.ndarray]) -> None:
    levels = list(nested(strategy))
    values: dict[tuple[str, int, str], dict[str, np.ndarray]] = {}
    for key, array in stored.items():
        if key.startswith(STRATEGY + "/"):
            _, kind, level, name, item = key.split("/", 4)
            values.setdefault((kind, int(level), name), {})[item] = array
    for (kind, level, name), items in values.items():
        target = levels[level]
        if kind == "record":
            setattr(target, name, ArrayRecord({k: Array(v) for k, v in items.items()}))
        elif kind == "dict":
            setattr(target, name, dict(items))
        elif kind == "list":
            setattr(target, name, [items[str(i)] for i in range(len(items))])
        else:
            setattr(target, name, type(getattr(target, name))(items[""].item()))


def _pickled(value: Any) -> np.ndarray:
    """``value`` as an array entry of ``checkpoint.npz``."""
    return np.frombuffer(pickle.dumps(value), dtype=np.uint8)


def _unpickled(entry: np.ndarray) -> Any:
    return pickle.loads(entry.tobytes())  # our own file, written through _pickled()


def rng_state() -> dict[str, np.ndarray]:
    return {RNG: _pickled({"random": random.getstate(), "numpy": np.random.get_state(),
                           "torch": torch.get_rng_state()})}


def restore_rng_state(stored: Mapping[str, np.ndarray]) -> None:
    if RNG not in stored:
        return
    state = _unpickled(stored[RNG])
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def client_state(states: Mapping[int, RecordDict]) -> dict[str, np.ndarray]:
    """A cohort simulation's client states (client -> its ``context.state``), as one entry;
    none when no client keeps any."""
    # Flower's records pickle as Ray ships them
    return {CLIENTS: _pickled(dict(states))} if states else {}


def restore_client_state(stored: Mapping[str, np.ndarray]) -> dict[int, RecordDict]:
    return _unpickled(stored[CLIENTS]) if CLIENTS in stored else {}


def check_resumable(cfg: RunConfig) -> None:
    """``resume-from`` names a killed run of the same config but for ``num-rounds`` (checked in
    preflight, before any worker starts)."""
    if not cfg.resume_from:
        return
    run_dir = Path(cfg.resume_from)
    try:
        if not run_dir.name.endswith(".partial"):
            raise FileNotFoundError
        done, _ = load_checkpoint(run_dir)
    except (FileNotFoundError, OSError):
        raise ConfigError(f"run config `resume-from`: {run_dir} is not the <run-id>.partial "
                          "directory of a killed run (with checkpoint.npz)") from None
    recorded = json.loads((run_dir / "config.json").read_text())["config"]
    changed = sorted(k for k, v in cfg.to_flat().items()
                     if k not in RESUMABLE_CHANGES and recorded.get(k, v) != v)
    if changed:
        raise ConfigError(f"run config `resume-from`: {run_dir} was run with other values of "
                          f"{', '.join(changed)}; resume with the same scenario and overrides "
                          "(only num-rounds may change)")
    if done >= cfg.num_rounds:
        raise ConfigError(f"run config `resume-from`: {run_dir} already completed round {done}; "
                          f"give num-rounds > {done}")


class RoundOffset(Strategy):
    """Delegates to ``inner`` with every round number shifted by ``offset`` rounds done."""

    def __init__(self, inner: Strategy, offset: int) -> None:
        self.inner, self.offset = inner, offset

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        return self.inner.configure_train(server_round + self.offset, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return self.inner.aggregate_train(server_round + self.offset, replies)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return self.inner.configure_evaluate(server_round + self.offset, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]
                           ) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round + self.offset, replies)

    def summary(self) -> None:
        self.inner.summary()


def resume(cfg: RunConfig, strategy: Strategy, initial: ArrayRecord,
           clients: dict[int, RecordDict] | None = None) -> tuple[Strategy, ArrayRecord, int]:
    """What ``start`` runs: the strategy (shifted), the arrays to start from, rounds done.
    ``clients`` (a cohort grid's client states) gets the states the checkpoint holds."""
    if not cfg.resume_from:
        return strategy, initial, 0
    run_dir = Path(cfg.resume_from)
    done, arrays = load_checkpoint(run_dir)
    if set(arrays) != set(initial):
        raise ConfigError(f"run config `resume-from`: {run_dir} holds other arrays than this "
                          "run's model")
    state = load_checkpoint_state(run_dir)
    restore_strategy_state(unwrap(strategy), state)
    restore_rng_state(state)
    if clients is not None:
        clients.update(restore_client_state(state))
    logging.getLogger("flwr").info("fedlite: resuming %s after round %d of %d", run_dir, done,
                                   cfg.num_rounds)
    return (RoundOffset(strategy, done),
            ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()}), done)


def shifted(evaluate_fn, done: int):
    """``evaluate_fn`` for a resumed run: true round numbers, no second round-0 evaluation."""
    if not done:
        return evaluate_fn
    return lambda server_round, arrays: (None if server_round == 0
                                         else evaluate_fn(server_round + done, arrays))


def checkpoint_state(strategy: Strategy, clients: Mapping[int, RecordDict] | None = None
                     ) -> dict[str, np.ndarray]:
    """The ``extra`` of each round's checkpoint (``clients``: a cohort grid's client states)."""
    return {**strategy_state(unwrap(strategy)), **rng_state(), **client_state(clients or {})}
