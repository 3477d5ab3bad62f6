"""Accounting: real Flower messages, bytes counted from ArrayRecords, FedAvg still aggregates."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from strategies.accounting import Accounting, array_bytes, summarize_client_metrics

NODES = [11, 12, 13]


class FakeGrid:
    """What FedAvg's sampling asks of a Grid: the registered node ids."""

    def get_node_ids(self):
        return list(NODES)


pytestmark = pytest.mark.usefixtures("server_identity")


def _record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({key: Array(value) for key, value in arrays.items()})


def _arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(size=(4, 3)).astype(np.float32),
            "b": rng.normal(size=3).astype(np.float32)}


def _reply(instruction: Message, arrays: dict[str, np.ndarray] | None, metrics: dict) -> Message:
    content = RecordDict({"metrics": MetricRecord(metrics)})
    if arrays is not None:
        content["arrays"] = _record(arrays)
    return Message(content, reply_to=instruction)


def _error(instruction: Message) -> Message:
    return Message(Error(code=0, reason="client crashed"), reply_to=instruction)


def _strategy(**kwargs) -> Accounting:
    return Accounting(FedAvg(min_available_nodes=len(NODES), **kwargs))


def test_bytes_down_are_the_sent_array_records():
    # Prepare
    strategy = _strategy(fraction_train=1.0, fraction_evaluate=0.0)
    arrays = _record(_arrays(0))
    # Execute
    messages = list(strategy.configure_train(1, arrays, ConfigRecord({"lr": 0.1}), FakeGrid()))
    evaluate = list(strategy.configure_evaluate(1, arrays, ConfigRecord({}), FakeGrid()))
    # Assert
    assert sorted(m.metadata.dst_node_id for m in messages) == NODES and evaluate == []
    assert strategy.rounds[1].bytes_down == len(NODES) * arrays.count_bytes()
    assert strategy.rounds[1].bytes_down == sum(m.content["arrays"].count_bytes() for m in messages)
    assert strategy.rounds[1].bytes_up == 0


def test_evaluate_messages_add_to_the_same_round():
    strategy = _strategy(fraction_train=1.0, fraction_evaluate=1.0)
    arrays = _record(_arrays(0))
    strategy.configure_train(2, arrays, ConfigRecord({}), FakeGrid())
    strategy.configure_evaluate(2, arrays, ConfigRecord({}), FakeGrid())
    assert strategy.rounds[2].bytes_down == 2 * len(NODES) * arrays.count_bytes()
    assert 1 not in strategy.rounds


def test_train_replies_bytes_up_ok_failed_and_fedavg_aggregate():
    # Prepare
    strategy = _strategy(fraction_train=1.0)
    sent = list(strategy.configure_train(1, _record(_arrays(0)), ConfigRecord({}), FakeGrid()))
    updates = [_arrays(1), _arrays(2)]
    counts = [30, 10]
    replies = [_reply(sent[0], updates[0], {"num-examples": counts[0], "train-loss": 1.0}),
               _reply(sent[1], updates[1], {"num-examples": counts[1], "train-loss": 3.0}),
               _error(sent[2])]
    # Execute
    arrays, metrics = strategy.aggregate_train(1, replies)
    # Assert: traffic
    traffic = strategy.rounds[1]
    assert traffic.bytes_up == sum(r.content["arrays"].count_bytes() for r in replies[:2])
    assert traffic.bytes_up == array_bytes(replies) > 0
    assert (traffic.replies_ok, traffic.replies_failed) == (2, 1)
    # Assert: FedAvg's weighted mean, computed again with numpy
    for key in ("w", "b"):
        expected = (counts[0] * updates[0][key] + counts[1] * updates[1][key]) / sum(counts)
        np.testing.assert_allclose(arrays[key].numpy(), expected, rtol=1e-6)
    assert metrics["train-loss"] == pytest.approx(1.5)
    assert traffic.train_metrics["num-examples"] == 40
    assert traffic.train_metrics["train-loss"] == pytest.approx(1.5)


def test_only_errors_aggregate_to_nothing():
    strategy = _strategy()
    sent = list(strategy.configure_train(1, _record(_arrays(0)), ConfigRecord({}), FakeGrid()))
    arrays, metrics = strategy.aggregate_train(1, [_error(m) for m in sent])
    assert arrays is None and metrics is None
    assert (strategy.rounds[1].replies_ok, strategy.rounds[1].replies_failed) == (0, 3)
    assert strategy.rounds[1].bytes_up == 0


def test_evaluate_replies_collect_client_accuracies():
    # Prepare
    strategy = _strategy(fraction_evaluate=1.0)
    sent = list(strategy.configure_evaluate(1, _record(_arrays(0)), ConfigRecord({}),
                                            FakeGrid()))
    replies = [_reply(sent[0], None, {"num-examples": 10, "eval-accuracy": 0.5}),
               _reply(sent[1], None, {"num-examples": 30, "eval-accuracy": 0.9}),
               _error(sent[2])]
    # Execute
    metrics = strategy.aggregate_evaluate(1, replies)
    # Assert
    traffic = strategy.rounds[1]
    assert traffic.client_accuracies == [0.5, 0.9]
    assert metrics["eval-accuracy"] == pytest.approx(0.8)
    assert traffic.evaluate_metrics == dict(metrics)
    assert traffic.bytes_up == 0


def test_wrapper_exposes_the_inner_strategy():
    strategy = _strategy(fraction_train=0.3)
    assert strategy.fraction_train == 0.3
    assert strategy.min_available_nodes == len(NODES)
    strategy.summary()  # delegated; must not raise


def test_summarize_sums_counts_and_averages_the_rest():
    # Prepare
    records = [MetricRecord({"num-examples": 30, "samples-seen": 60, "samples-backprop": 40,
                             "train-seconds": 2.0, "train-accuracy": 0.5}),
               MetricRecord({"num-examples": 10, "samples-seen": 20, "samples-backprop": 20,
                             "train-seconds": 5.0, "train-accuracy": 0.9})]
    # Execute
    summary = summarize_client_metrics(records)
    # Assert
    assert summary == pytest.approx({"num-examples": 40, "samples-seen": 80,
                                     "samples-backprop": 60, "train-seconds": 7.0,
                                     "train-seconds-max": 5.0, "train-accuracy": 0.6})
    assert summarize_client_metrics([]) == {}


def test_summarize_averages_a_metric_over_the_clients_that_report_it():
    records = [MetricRecord({"num-examples": 10, "skip/rate": 0.5}),
               MetricRecord({"num-examples": 30})]
    assert summarize_client_metrics(records)["skip/rate"] == pytest.approx(0.5)


def test_train_replies_collect_accuracies_after_local_training():
    strategy = _strategy(fraction_train=1.0)
    sent = list(strategy.configure_train(1, _record(_arrays(0)), ConfigRecord({}), FakeGrid()))
    replies = [_reply(sent[0], _arrays(1), {"num-examples": 30, "trained-eval-accuracy": 0.5}),
               _reply(sent[1], _arrays(2), {"num-examples": 10, "trained-eval-accuracy": 0.9}),
               _error(sent[2])]
    strategy.aggregate_train(1, replies)
    assert strategy.rounds[1].trained_accuracies == [0.5, 0.9]
