"""Flower's robust strategies through the same ``strategy=`` plug-in, on FedPara's factor
payloads and pFedPara's partial payloads, with one client's update boosted by ``attack.*``."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedlite.attack.method import poisoned
from fedlite.config import RunConfig
from fedlite.federation import data_for, initial_model
from fedlite.wire import split_keys, wire_state
from strategies.server_app import build_strategy

NODES = [21, 22, 23, 24, 25]


pytestmark = pytest.mark.usefixtures("server_identity")


STRATEGIES = [("flwr.serverapp.strategy:FedMedian", "{}"),
              ("flwr.serverapp.strategy:FedTrimmedAvg", '{"beta": 0.2}'),
              ("flwr.serverapp.strategy:Krum", '{"num_malicious_nodes": 1}')]


@pytest.mark.parametrize("mode", ["fedpara", "pfedpara"])
@pytest.mark.parametrize("strategy,kwargs", STRATEGIES)
def test_robust_strategy_aggregates_factor_payloads(strategy, kwargs, mode, grid):
    cfg = RunConfig.from_mapping({"dataset": "digits", "num-clients": len(NODES), "model": "mlp",
                                  "partitioner": "iid", "fedpara.mode": mode,
                                  "strategy": strategy, "strategy-kwargs": kwargs,
                                  "attack.fraction": 0.2, "attack.scale": 100.0})
    model = initial_model(cfg, data_for(cfg))
    wire, local = split_keys(cfg, model)
    assert any("fedpara" in key for key in wire) and (mode == "fedpara") == (not local)
    sent_arrays = {k: v.numpy() for k, v in wire_state(cfg, model).items()}
    sent = ArrayRecord({k: Array(v) for k, v in sent_arrays.items()})
    attack = cfg.section("attack")
    strategy_obj = build_strategy(cfg)
    messages = list(strategy_obj.configure_train(1, sent, ConfigRecord({}), grid(NODES)))
    replies, honest = [], []
    for client_id, msg in enumerate(messages):
        rng = np.random.default_rng(client_id)
        trained = {k: (v + 0.01 * rng.standard_normal(v.shape)).astype(v.dtype)
                   for k, v in sent_arrays.items()}
        out = poisoned(attack, cfg.num_clients, client_id, sent_arrays, trained)
        if client_id >= attack.attackers(cfg.num_clients):
            honest.append(trained)
        replies.append(Message(RecordDict({
            "arrays": ArrayRecord({k: Array(v) for k, v in out.items()}),
            "metrics": MetricRecord({"num-examples": 50})}), reply_to=msg))
    arrays, _ = strategy_obj.aggregate_train(1, replies)
    assert set(arrays.keys()) == set(wire)  # the payload's keys only (local factors stay home)
    for key in wire:
        got = arrays[key].numpy()
        mean = np.mean([h[key] for h in honest], axis=0)
        # the boosted update moved each value ~100x further; a robust rule stays near the rest
        assert np.isfinite(got).all() and np.abs(got - mean).max() < 0.05, key
