"""Bad replies are rejected before aggregation, named in the log; the good ones still average."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from strategies.accounting import Accounting
from strategies.reliability import Reliability
from strategies.validation import Validation

NODES = [11, 12, 13]


pytestmark = pytest.mark.usefixtures("server_identity")


def _arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(size=(4, 3)).astype(np.float32),
            "b": rng.normal(size=3).astype(np.float32)}


def _reply(instruction: Message, arrays: dict[str, np.ndarray], num_examples=10) -> Message:
    content = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                          "metrics": MetricRecord({"num-examples": num_examples})})
    return Message(content, reply_to=instruction)


def _bad_arrays(kind: str) -> dict[str, np.ndarray]:
    arrays = _arrays(9)
    if kind == "nan":
        arrays["w"][0, 0] = np.nan
    elif kind == "inf":
        arrays["b"][1] = np.inf
    elif kind == "shape":
        arrays["w"] = np.zeros((3, 4), np.float32)
    elif kind == "missing":
        del arrays["b"]
    elif kind == "extra":
        arrays["c"] = np.zeros(2, np.float32)
    elif kind == "dtype":
        arrays["w"] = arrays["w"].astype(np.float64)
    return arrays


def _run_round(grid, kind: str = "nan", num_examples=10):
    strategy = Accounting(Validation(Reliability(FedAvg(min_available_nodes=3), min_replies=1),
                                     max_examples=1000))
    sent = list(strategy.configure_train(1, ArrayRecord({k: Array(v) for k, v in
                                                         _arrays(0).items()}),
                                         ConfigRecord({}), grid(NODES)))
    good = [_reply(sent[0], _arrays(1), 30), _reply(sent[1], _arrays(2), 10)]
    bad = _reply(sent[2], _bad_arrays(kind), num_examples)
    return strategy, good, bad, strategy.aggregate_train(1, [*good, bad])


@pytest.mark.parametrize("kind,num_examples,reason", [
    ("nan", 10, "NaN or Inf"), ("inf", 10, "NaN or Inf"), ("shape", 10, "shape (3, 4)"),
    ("missing", 10, "missing keys ['b']"), ("extra", 10, "unexpected keys ['c']"),
    ("dtype", 10, "dtype float64"), ("ok", -5, "not a number of samples"),
    ("ok", 1e12, "more than the 1000 samples"), ("ok", float("nan"), "not a number of samples")])
def test_a_bad_reply_is_rejected_and_the_rest_aggregated(kind, num_examples, reason, caplog,
                                                         grid):
    with caplog.at_level(logging.WARNING, logger="flwr"):
        strategy, good, bad, (arrays, _) = _run_round(grid, kind, num_examples)
    # Assert: the weighted mean of the two good replies only
    for key in ("w", "b"):
        expected = (30 * _arrays(1)[key] + 10 * _arrays(2)[key]) / 40
        np.testing.assert_allclose(arrays[key].numpy(), expected, rtol=1e-6)
    [(node, why)] = strategy.rejected[1]
    assert node == bad.metadata.src_node_id and reason in why
    assert f"rejected the reply of node {node}: {why}" in caplog.text
    assert strategy.rounds[1].replies_ok == 3  # delivered; the rejection is counted apart


def test_a_reply_without_arrays_is_rejected(grid):
    strategy = Validation(FedAvg(min_available_nodes=3))
    sent = list(strategy.configure_train(1, ArrayRecord({"w": Array(np.zeros(2, np.float32))}),
                                         ConfigRecord({}), grid(NODES)))
    reply = Message(RecordDict({"metrics": MetricRecord({"num-examples": 3})}), reply_to=sent[0])
    assert strategy.aggregate_train(1, [reply]) == (None, None)
    assert "no ArrayRecord" in strategy.rejected[1][0][1]


def test_replies_whose_metrics_differ_in_keys_still_aggregate_under_flowers_fedavg(grid):
    # A client reports some metrics only where they apply (a continual client with an empty
    # memory); Flower's FedAvg stops the round unless every reply carries the same keys.
    strategy = Accounting(Validation(Reliability(FedAvg(min_available_nodes=3), min_replies=1),
                                     max_examples=1000))
    sent = list(strategy.configure_train(1, ArrayRecord({k: Array(v) for k, v in
                                                         _arrays(0).items()}),
                                         ConfigRecord({}), grid(NODES)))
    replies = [_reply(sent[i], _arrays(i + 1), 10 * (i + 1)) for i in range(3)]
    replies[0].content["metrics"]["loss"] = 1.0
    replies[1].content["metrics"]["loss"] = 3.0
    replies[1].content["metrics"]["empty-memory"] = 1.0  # this client alone
    arrays, metrics = strategy.aggregate_train(1, replies)
    expected = sum(n * _arrays(i + 1)["w"] for i, n in enumerate((10, 20, 30))) / 60
    np.testing.assert_allclose(arrays["w"].numpy(), expected, rtol=1e-6)
    assert not {"loss", "empty-memory"} & set(metrics)  # not on every reply: left out there
    # fedlite's own summary reads every key, each over the clients that report it
    summary = strategy.rounds[1].train_metrics
    assert summary["empty-memory"] == 1.0 and summary["loss"] == pytest.approx(7 / 3)


def test_a_reply_of_weight_zero_is_well_formed_and_left_out_of_the_aggregate(grid):
    # a client with no sample to train on (continual learning: none of the task's classes)
    seen: list[int] = []

    class Counting(FedAvg):
        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            seen.append(len(replies))
            return super().aggregate_train(server_round, replies)

    strategy = Accounting(Validation(Reliability(Counting(min_available_nodes=3),
                                                 min_replies=1), max_examples=1000))
    sent = list(strategy.configure_train(1, ArrayRecord({k: Array(v) for k, v in
                                                         _arrays(0).items()}),
                                         ConfigRecord({}), grid(NODES)))
    replies = [_reply(sent[0], _arrays(1), 30), _reply(sent[1], _arrays(2), 10),
               _reply(sent[2], _arrays(3), 0)]
    arrays, _ = strategy.aggregate_train(1, replies)
    for key in ("w", "b"):
        expected = (30 * _arrays(1)[key] + 10 * _arrays(2)[key]) / 40
        np.testing.assert_allclose(arrays[key].numpy(), expected, rtol=1e-6)
    assert seen == [2]  # the strategy never saw it (a robust one must not pick it)
    assert strategy.rejected[1] == [] and strategy.rounds[1].replies_ok == 3
