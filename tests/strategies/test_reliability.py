"""Dropouts and stragglers: bounded waits, and too few replies skip the round unchanged."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from strategies.reliability import Reliability, unwrap


pytestmark = pytest.mark.usefixtures("server_identity")


ARRAYS = ArrayRecord({"w": Array(np.ones(3, np.float32))})


def _reply(msg: Message, value: float) -> Message:
    return Message(RecordDict({"arrays": ArrayRecord({"w": Array(np.full(3, value, np.float32))}),
                               "metrics": MetricRecord({"num-examples": 5})}), reply_to=msg)


def test_fewer_nodes_than_min_available_do_not_hang_sampling(grid):
    # FedAvg alone would sleep forever in sample_nodes: 2 nodes online, 5 required.
    strategy = Reliability(FedAvg(min_available_nodes=5, min_train_nodes=5), min_replies=2,
                           node_wait=1.0)
    started = time.monotonic()
    sent = list(strategy.configure_train(1, ARRAYS, ConfigRecord({}), grid([1, 2])))
    assert time.monotonic() - started < 1.0
    assert sorted(m.metadata.dst_node_id for m in sent) == [1, 2]
    assert strategy.min_available_nodes == 5  # restored after the call


def test_too_few_nodes_skip_the_round_after_the_bounded_wait(caplog, grid):
    strategy = Reliability(FedAvg(min_available_nodes=3), min_replies=2, node_wait=0.3, poll=0.05)
    started = time.monotonic()
    sent = list(strategy.configure_train(1, ARRAYS, ConfigRecord({}), grid([7])))
    assert sent == [] and 0.3 <= time.monotonic() - started < 2.0
    with caplog.at_level(logging.WARNING, logger="flwr"):
        assert strategy.aggregate_train(1, []) == (None, None)
    assert strategy.skipped == {1} and "round 1 skipped" in caplog.text


def test_too_few_good_replies_leave_the_model_unchanged(caplog, grid):
    strategy = Reliability(FedAvg(min_available_nodes=3), min_replies=2, node_wait=0.1)
    sent = list(strategy.configure_train(1, ARRAYS, ConfigRecord({}), grid([1, 2, 3])))
    replies = [_reply(sent[0], 2.0), Message(Error(code=0, reason="gone"), reply_to=sent[1])]
    with caplog.at_level(logging.WARNING, logger="flwr"):
        assert strategy.aggregate_train(1, replies) == (None, None)
    assert "1 usable reply within round-timeout, min-replies=2" in caplog.text


def test_enough_replies_aggregate_those_that_arrived(grid):
    strategy = Reliability(FedAvg(min_available_nodes=3), min_replies=2, node_wait=0.1)
    sent = list(strategy.configure_train(1, ARRAYS, ConfigRecord({}), grid([1, 2, 3])))
    arrays, _ = strategy.aggregate_train(1, [_reply(sent[0], 2.0), _reply(sent[1], 4.0)])
    np.testing.assert_allclose(arrays["w"].numpy(), 3.0)
    assert strategy.skipped == set()


def test_a_node_that_comes_back_is_sampled_again(grid):
    nodes = grid([1, 2])
    strategy = Reliability(FedAvg(min_available_nodes=3), min_replies=1, node_wait=0.1)
    assert len(list(strategy.configure_train(1, ARRAYS, ConfigRecord({}), nodes))) == 2
    nodes.nodes.append(3)  # the restarted SuperNode registers again
    sent = list(strategy.configure_train(2, ARRAYS, ConfigRecord({}), nodes))
    assert sorted(m.metadata.dst_node_id for m in sent) == [1, 2, 3]


def test_unwrap_finds_the_user_strategy():
    inner = FedAvg()
    assert unwrap(Reliability(inner)) is inner
