"""Node-side reduction: in a cohort simulation a host node sums its clients' training replies
into one, for strategies whose aggregation starts from the example-weighted mean of the replies.

FedAvg aggregates ``sum_k n_k x_k / sum_k n_k``; FedAvgM, FedProx and the FedOpt family
(FedAdam, FedYogi, FedAdagrad) start from the same mean. A host that replies with its clients'
mean ``x_h = sum_{k in h} n_k x_k / N_h`` and weight ``N_h`` gives the strategy the same mean
over hosts, so the driver handles one reply per host instead of one per client. The sum is
taken in float64 and cast back to the dtype that was sent: equal to the unreduced run up to
float rounding. Metrics follow the same rule: counts and ``train-seconds`` are summed, the rest
averaged by ``num-examples`` (lists elementwise), which is what fedlite's round summary and
FedAvg's metric mean compute from per-client replies.

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
from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import (FedAdagrad, FedAdam, FedAvg, FedAvgM, FedProx, FedYogi,
                                     Strategy)

from strategies.array_codec import encode_record
from strategies.reply_check import Spec, problem

REDUCIBLE = (FedAvg, FedAvgM, FedProx, FedAdam, FedYogi, FedAdagrad)
RECORD = "reduction"
SUMMED = frozenset({"num-examples", "samples-seen", "samples-backprop", "train-seconds"})


def reducible(levels: Sequence[Strategy]) -> bool:
    """Whether a strategy nest (the user's strategy and what it wraps) aggregates by the
    example-weighted mean of whole replies, so host-side sums are exact."""
    if len(levels) != 1:
        return False
    (strategy,) = levels
    return (type(strategy) in REDUCIBLE and strategy.weighted_by_key == "num-examples"
            and strategy.arrayrecord_key == "arrays")


class HostSum:
    """A host's reply, summed as its clients' replies come: each is checked and added as soon
    as it is there, so the host holds one reply's arrays at a time, not all of them (a host
    that kept 25 replies of the small CNN before summing touched 20 MB of fresh memory a round).

    A reply that ``problem`` rejects, or an error, stays out of the sum and is named in the
    ``reduction`` record; with no good reply the content holds the record alone.
    """

    def __init__(self, expected: Spec, max_examples: float) -> None:
        self.expected, self.max_examples = expected, max_examples
        self.sums: dict[str, np.ndarray] = {}  # sum of weight * array, in float64
        self.scratch: dict[str, np.ndarray] = {}  # one float64 buffer per key, reused
        self.metrics: list[tuple[float, MetricRecord]] = []
        self.bytes_up = 0
        self.failed: list[tuple[int, str]] = []  # (virtual node id, why), as ``left_out`` reads
        self.rejected: list[tuple[int, str]] = []

    def add(self, node: int, reply: Message) -> None:
        """Add ``node``'s reply (an error reply counts the client as failed)."""
        if reply.has_error():
            self.fail(node, reply.error.reason)
            return
        arrays: dict[str, np.ndarray] = {}
        reason = problem(reply, self.expected, self.max_examples, decoded=arrays)
        if reason is not None:
            self.rejected.append((node, reason))
            return
        self.bytes_up += sum(record.count_bytes()
                             for record in reply.content.array_records.values())
        metrics = next(iter(reply.content.metric_records.values()))
        weight = float(metrics["num-examples"])
        self.metrics.append((weight, metrics))
        for key, array in arrays.items():
            if key not in self.sums:
                self.sums[key] = np.multiply(array, weight, dtype=np.float64)
                continue
            buffer = self.scratch.setdefault(key, np.empty(array.shape, np.float64))
            self.sums[key] += np.multiply(array, weight, out=buffer, dtype=np.float64)

    def fail(self, node: int, reason: str) -> None:
        """``node``'s client produced no reply (``reason``: what stopped it)."""
        self.failed.append((node, str(reason)))

    def content(self) -> RecordDict:
        """The host's reply content: the weighted mean and metrics, and the record."""
        content = RecordDict()
        if self.metrics:
            # all clients without samples: weight 0, which the driver leaves out of the mean
            total = sum(weight for weight, _ in self.metrics) or 1.0
            content["arrays"] = encode_record({
                key: (value / total).astype(self.expected[key][1])
                for key, value in self.sums.items()})
            content["metrics"] = weighted_metrics(self.metrics)
        content[RECORD] = ConfigRecord({
            "replies": len(self.metrics), "bytes-up": self.bytes_up,
            "failed-nodes": [node for node, _ in self.failed],
            "failed-reasons": [reason for _, reason in self.failed],
            "rejected-nodes": [node for node, _ in self.rejected],
            "rejected-reasons": [reason for _, reason in self.rejected]})
        return content


def weighted_metrics(records: list[tuple[float, MetricRecord]]) -> MetricRecord:
    total = sum(weight for weight, _ in records) or 1.0  # every client without samples
    out: dict[str, float | int | list[float]] = {}
    keys = dict.fromkeys(key for _, record in records for key in record)
    for key in keys:
        value = next(record[key] for _, record in records if key in record)
        values = [(weight, record[key]) for weight, record in records if key in record]
        if isinstance(value, list):  # elementwise, a client without the key adding nothing
            stacked = sum(weight * np.asarray(v, dtype=np.float64) for weight, v in values)
            out[key] = (stacked / total).tolist()
            continue
        if not isinstance(value, (int, float)):
            continue
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
