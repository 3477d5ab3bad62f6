"""Node-side reduction: a host's summed training reply gives the strategy the weighted mean the
clients' own replies give (allclose), the records still count clients, and only strategies
whose aggregation is that mean get it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import (DifferentialPrivacyServerSideFixedClipping, FedAdam,
                                     FedAvg, FedAvgM, FedMedian, FedProx, FedTrimmedAvg,
                                     QFedAvg)

from fedlite.config import RunConfig
from fedlite.records import load_checkpoint
from strategies.cohort import CohortGrid
from strategies.loading import nested
from strategies.reduction import HostSum, reducible
from strategies.reply_check import spec_of
from strategies.validation import Validation

BASE = {"dataset": "digits", "num-clients": 7, "num-rounds": 3, "partitioner": "dirichlet",
        "dirichlet-alpha": 0.3, "model": "mlp", "central-eval-size": 50, "seed": 4,
        "simulation-nodes": 2}
CASES = {
    "fedavg": {},
    "fedadam": {"strategy": "flwr.serverapp.strategy:FedAdam",
                "strategy-kwargs": '{"eta": 0.01}'},
    "fedprox": {"strategy": "flwr.serverapp.strategy:FedProx",
                "strategy-kwargs": '{"proximal_mu": 0.5}'},
    "pfedpara": {"fedpara.mode": "pfedpara", "fedpara.gamma": 0.5},  # W2 stays per client
    "skip": {"skip.enabled": True, "skip.min-threshold": 0.0},  # tau, histogram per client
    "attack": {"attack.fraction": 0.3, "attack.scale": 3.0},  # a Flower mod on the reply
}


def rounds_of(summary: dict) -> list[dict]:
    return [json.loads(line) for line in
            (Path(summary["run-dir"]) / "rounds.jsonl").read_text().splitlines()][1:]


@pytest.mark.parametrize("case", list(CASES))
def test_summed_replies_give_the_arrays_and_records_of_every_reply(case, tmp_path, in_process):
    def run(reduce: bool) -> dict:
        return in_process(RunConfig.from_mapping({
            **BASE, **CASES[case], "node-reduction": reduce,
            "results-dir": str(tmp_path / str(reduce))}))

    every, summed = run(False), run(True)
    expected, got = load_checkpoint(every["run-dir"])[1], load_checkpoint(summed["run-dir"])[1]
    assert expected.keys() == got.keys()
    for key in expected:
        assert got[key].dtype == expected[key].dtype, key
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-4, atol=1e-5, err_msg=key)
    for plain, reduced in zip(rounds_of(every), rounds_of(summed), strict=True):
        for key in ("replies-ok", "replies-failed", "replies-rejected", "bytes-up",
                    "bytes-down", "train/num-examples", "train/samples-seen",
                    "train/samples-backprop"):
            assert reduced[key] == plain[key], key
        assert reduced["replies-ok"] == 7
        assert reduced["train/train-loss"] == pytest.approx(plain["train/train-loss"], rel=1e-6)
        # two hosts send two summed replies (and each client's state, which still travels),
        # where every client's reply travelled before
        assert reduced["transport-bytes-up"] < plain["transport-bytes-up"]
        assert reduced["accuracy"] == pytest.approx(plain["accuracy"], abs=0.021)


def test_strategies_that_need_each_update_get_every_reply(tmp_path, in_process):
    summary = in_process(RunConfig.from_mapping({
        **BASE, "strategy": "flwr.serverapp.strategy:FedMedian", "num-rounds": 1,
        "results-dir": str(tmp_path)}))
    (line,) = rounds_of(summary)
    assert line["replies-ok"] == 7 and line["transport-bytes-up"] == line["bytes-up"]


class Mean(FedAvg):
    """A user's FedAvg subclass: it may aggregate otherwise, so it is never reduced."""


@pytest.mark.parametrize("strategy,expected", [
    (FedAvg(), True), (FedAvgM(), True), (FedProx(proximal_mu=0.1), True), (FedAdam(), True),
    (FedAvg(weighted_by_key="samples"), False), (FedMedian(), False),
    (FedTrimmedAvg(), False), (QFedAvg(client_learning_rate=0.1), False), (Mean(), False),
    (DifferentialPrivacyServerSideFixedClipping(FedAvg(), 1.0, 1.0, 2), False)])
def test_only_an_example_weighted_mean_of_whole_replies_is_reduced(strategy, expected):
    assert reducible(list(nested(strategy))) is expected


def reply(values, examples: int, **metrics) -> Message:
    content = RecordDict({"arrays": ArrayRecord({"w": Array(np.asarray(values, np.float32))}),
                          "metrics": MetricRecord({"num-examples": examples, **metrics})})
    return Message(content, dst_node_id=1, message_type="train")


def reduce_replies(replies, expected, max_examples):
    """A host's reply content from ``(virtual node id, reply or None, error)`` triples."""
    total = HostSum(expected, max_examples)
    for node, message, error in replies:
        if message is None:
            total.fail(node, error)
        else:
            total.add(node, message)
    return total.content()


def test_a_host_sums_its_good_replies_and_names_the_rest(server_identity):
    expected = {"w": ((2,), "float32")}
    content = reduce_replies([
        (1, reply([1.0, 2.0], 10, **{"train-loss": 1.0, "samples-seen": 10}), None),
        (2, reply([3.0, 6.0], 30, **{"train-loss": 3.0, "samples-seen": 30}), None),
        (3, reply([np.nan, 0.0], 5, **{"train-loss": 0.5, "samples-seen": 5}), None),
        (4, None, "ValueError: out of memory")], expected, max_examples=100)
    np.testing.assert_allclose(content["arrays"]["w"].numpy(), [2.5, 5.0])
    assert content["arrays"]["w"].numpy().dtype == np.float32
    assert dict(content["metrics"]) == {"num-examples": 40, "train-loss": 2.5,
                                        "samples-seen": 40}
    record = content["reduction"]
    assert record["replies"] == 2 and record["failed-nodes"] == [4]
    assert record["rejected-nodes"] == [3] and "NaN" in record["rejected-reasons"][0]
    assert record["bytes-up"] == 2 * ArrayRecord(
        {"w": Array(np.zeros(2, np.float32))}).count_bytes()


def test_the_driver_counts_a_hosts_rejections_and_fails_clients_it_could_not_sum(
        server_identity):
    expected = {"w": ((2,), "float32")}
    content = reduce_replies([(1, reply([1.0, 1.0], 10), None),
                              (2, reply([1.0, 1.0], 10**6), None)], expected, max_examples=100)
    validation = Validation(FedAvg())
    validation.sent = {1: {1: expected}}
    validation.model_spec = expected
    arrays, _ = validation.aggregate_train(1, [Message(content, reply_to=reply([0, 0], 1))])
    assert validation.rejected[1] == [(2, "'num-examples' = 1e+06 is more than the 100 samples "
                                          "there are")]
    np.testing.assert_allclose(arrays["w"].numpy(), [1.0, 1.0])
    nothing = reduce_replies([(1, None, "RuntimeError: boom"), (2, reply([np.inf, 0], 3), None)],
                             expected, max_examples=100)
    group = [Message(RecordDict(), dst_node_id=node, message_type="train") for node in (1, 2)]
    errors = CohortGrid.reduced(Message(RecordDict(), dst_node_id=9, message_type="train"),
                                group, nothing["reduction"])
    assert [e.error.reason for e in errors] == [
        "RuntimeError: boom", "rejected on its host node: 'w' holds NaN or Inf"]
    assert spec_of(ArrayRecord({"w": Array(np.zeros(2, np.float32))})) == expected


def test_clients_with_nothing_to_train_on_weigh_nothing_on_their_host(server_identity):
    # a continual client without a sample of the task replies with weight 0
    expected = {"w": ((2,), "float32")}
    mixed = reduce_replies([(1, reply([1.0, 2.0], 10, **{"train-loss": 1.0}), None),
                            (2, reply([100.0, 100.0], 0, **{"train-loss": 9.0}), None)],
                           expected, max_examples=100)
    np.testing.assert_allclose(mixed["arrays"]["w"].numpy(), [1.0, 2.0])
    assert dict(mixed["metrics"]) == {"num-examples": 10, "train-loss": 1.0}
    assert mixed["reduction"]["replies"] == 2 and mixed["reduction"]["rejected-nodes"] == []
    # a host whose every client had nothing: a reply of weight 0, which the driver leaves out
    empty = reduce_replies([(3, reply([5.0, 5.0], 0), None)], expected, max_examples=100)
    assert empty["metrics"]["num-examples"] == 0
    validation = Validation(FedAvg())
    validation.sent = {1: {1: expected, 2: expected}}
    validation.model_spec = expected
    replies = [Message(empty, reply_to=reply([0, 0], 1)), Message(mixed, reply_to=reply([0, 0], 1))]
    arrays, _ = validation.aggregate_train(1, replies)
    np.testing.assert_allclose(arrays["w"].numpy(), [1.0, 2.0])
    assert validation.rejected[1] == []
