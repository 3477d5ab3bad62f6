"""Node-side reduction: in a cohort simulation a host node sums its clients' training replies
into one, for strategies whose aggregation starts from the example-weighted mean of the replies.

FedAvg aggregates ``sum_k n_k x_k / sum_k n_k``; FedAvgM, FedProx and the FedOpt family
(FedAdam, FedYogi, FedAdagrad) start from the same mean. A host that replies with its clients'
mean ``x_h = sum_{k in h} n_k x_k / N_h`` and weight ``N_h`` gives the strategy the same mean
over hosts, so the driver handles one reply per host instead of one per client. The sum is
taken in float64 and cast back to the dtype that was sent: equal to the unreduced run up to
float rounding. Metrics follow the same rule: counts and ``train-seconds`` are summed, the rest
averaged by ``num-examples``, which is what fedlite's round summary and FedAvg's metric mean
compute from per-client replies.

Only where that is exact: the user's strategy must be one of ``REDUCIBLE`` exactly (a subclass
may aggregate differently) and unwrapped (Flower's DP wrappers clip each update; robust
strategies and QFedAvg need each update). Each client's reply is checked on the host as the
driver's ``Validation`` checks it (``problem``) before it joins the sum; what the reduction
left out (failed or rejected clients) and the bytes the clients' own replies would have carried
travel in the ``reduction`` ConfigRecord, so the round's records count clients, not hosts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import (FedAdagrad, FedAdam, FedAvg, FedAvgM, FedProx, FedYogi,
                                     Strategy)

from strategies.array_codec import encode_record
from strategies.reply_check import Spec, problem

REDUCIBLE = (FedAvg, FedAvgM, FedProx, FedAdam, FedYogi, FedAdagrad)
RECORD = "reduction"
SUMMED = frozenset({"num-examples", "samples-seen", "samples-backprop", "train-seconds"})
# a good reply as the sums take it: its weight, its metrics, its arrays (decoded once, checked)
Summand = tuple[float, MetricRecord, dict[str, np.ndarray]]


def reducible(levels: Sequence[Strategy]) -> bool:
    """Whether a strategy nest (the user's strategy and what it wraps) aggregates by the
    example-weighted mean of whole replies, so host-side sums are exact."""
    if len(levels) != 1:
        return False
    (strategy,) = levels
    return (type(strategy) in REDUCIBLE and strategy.weighted_by_key == "num-examples"
            and strategy.arrayrecord_key == "arrays")


def reduce_replies(replies: Sequence[tuple[int, Message | None, str | None]], expected: Spec,
                   max_examples: float) -> RecordDict:
    """One host's reply from its clients' ``(virtual node id, reply, error)`` triples.

    A reply that ``problem`` rejects, or an error, stays out of the sum and is named in the
    ``reduction`` record; with no good reply the content holds the record alone.
    """
    good: list[Summand] = []
    rejected_nodes, rejected_reasons, failed_nodes, failed_reasons = [], [], [], []
    bytes_up = 0
    for node, reply, error in replies:
        if reply is None:
            failed_nodes.append(node)
            failed_reasons.append(str(error))
            continue
        arrays: dict[str, np.ndarray] = {}
        reason = problem(reply, expected, max_examples, decoded=arrays)
        if reason is not None:
            rejected_nodes.append(node)
            rejected_reasons.append(reason)
            continue
        bytes_up += sum(record.count_bytes() for record in reply.content.array_records.values())
        metrics = next(iter(reply.content.metric_records.values()))
        good.append((float(metrics["num-examples"]), metrics, arrays))
    content = RecordDict()
    if good:
        content["arrays"] = weighted_arrays(good, expected)
        content["metrics"] = weighted_metrics(good)
    content[RECORD] = ConfigRecord({
        "replies": len(good), "bytes-up": bytes_up,
        "failed-nodes": failed_nodes, "failed-reasons": failed_reasons,
        "rejected-nodes": rejected_nodes, "rejected-reasons": rejected_reasons})
    return content


def weighted_arrays(good: list[Summand], expected: Spec) -> ArrayRecord:
    total = sum(weight for weight, _, _ in good)
    sums: dict[str, np.ndarray] = {}
    scaled: dict[str, np.ndarray] = {}  # one float64 buffer per key, reused for every reply
    for weight, _, arrays in good:
        for key, array in arrays.items():
            if key not in sums:
                sums[key] = np.multiply(array, weight / total, dtype=np.float64)
                continue
            buffer = scaled.setdefault(key, np.empty(array.shape, np.float64))
            sums[key] += np.multiply(array, weight / total, out=buffer, dtype=np.float64)
    return encode_record({key: value.astype(expected[key][1]) for key, value in sums.items()})


def weighted_metrics(good: list[Summand]) -> MetricRecord:
    total = sum(weight for weight, _, _ in good)
    records = [(weight, metrics) for weight, metrics, _ in good]
    out: dict[str, float | int] = {}
    for key, value in records[0][1].items():
        if not isinstance(value, (int, float)):
            continue
        values = [(weight, record[key]) for weight, record in records if key in record]
        if key in SUMMED:
            summed = sum(v for _, v in values)
            out[key] = int(summed) if isinstance(value, int) else float(summed)
        else:
            out[key] = float(sum(weight * v for weight, v in values) / total)
    return MetricRecord(out)


def reduced_count(msg: Message) -> tuple[int, ConfigRecord | None]:
    """How many clients' replies ``msg`` stands for (1 for a client's own), and its record."""
    # read by name: ``content.config_records`` builds a dict of every ConfigRecord on each call,
    # and the driver asks this of every message of a round, sent and received
    record = None if msg.has_error() else msg.content.get(RECORD)
    if not isinstance(record, ConfigRecord):
        return 1, None
    return int(record["replies"]), record


def left_out(record: ConfigRecord, kind: str) -> list[tuple[int, str]]:
    """The (virtual node id, reason) pairs a summed reply left out: ``kind`` is ``"failed"``
    or ``"rejected"``."""
    return list(zip(record[f"{kind}-nodes"], record[f"{kind}-reasons"], strict=True))
