"""Bad replies are rejected before aggregation, each with a log line naming the node and reason.

One NaN, one wrong shape or one ``num-examples = 1e12`` is enough to ruin a weighted average
(or crash it), and Flower's FedAvg checks only that a reply has one ArrayRecord and one
MetricRecord. A training reply must carry exactly the keys that were sent, with the same
shapes and dtypes, finite values, and a ``num-examples`` from 0 to ``max_examples``. Rejected
replies are left out, and so are well-formed replies of weight 0 (a client with nothing to
train on); the rest go to the wrapped strategy, with the metric keys they all carry.

What the wrapped strategy returns is cast back to the dtypes that were sent: Flower's FedOpt
family and DP wrappers compute in float64, and the model's arrays keep their own dtype on the
wire in both directions (so the next round's replies match and the bytes stay the model's).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from strategies.array_codec import decode
from strategies.delegating import Delegating
from strategies.reduction import left_out, reduced_count
from strategies.reply_check import Spec, problem, spec_of

log = logging.getLogger("flwr")


def cast_to(arrays: ArrayRecord, expected: Spec) -> ArrayRecord:
    """``arrays`` with each array in the dtype ``expected`` names (unchanged if all match)."""
    if all(str(a.dtype) == expected.get(k, (None, str(a.dtype)))[1] for k, a in arrays.items()):
        return arrays
    return ArrayRecord({k: Array(np.ascontiguousarray(decode(a).astype(expected[k][1])))
                        if k in expected and str(a.dtype) != expected[k][1] else a
                        for k, a in arrays.items()})


def contributing(replies: list[Message], weight_key: str = "num-examples") -> list[Message]:
    """The replies that carry something to aggregate: errors (the strategy counts them) and
    replies with a positive weight. A reply of weight 0 (a client with no sample to train on)
    adds nothing to a weighted mean, and a robust strategy must not take its arrays, which no
    data moved, for an update."""
    return [msg for msg in replies if msg.has_error() or any(
        record.get(weight_key, 1) > 0 for record in msg.content.metric_records.values())]


def shared_metric_keys(replies: list[Message]) -> list[Message]:
    """``replies`` with each MetricRecord cut to the keys that every reply's record of that
    name carries. Flower's strategies average client metrics only when all replies carry the
    same keys (FedAvg stops the round otherwise), while a client reports some metrics only
    where they apply: a continual client with an empty prototype memory, one that missed a
    task boundary. fedlite's own round summary has read every key before this."""
    good = [msg for msg in replies if not msg.has_error()]
    names = {name for msg in good for name in msg.content.metric_records}
    for name in names:
        records = [msg.content.metric_records.get(name) for msg in good]
        keys = [set(record) for record in records if record is not None]
        shared = set.intersection(*keys)
        if all(len(k) == len(shared) for k in keys):
            continue
        for msg, record in zip(good, records, strict=True):
            if record is not None:
                msg.content[name] = MetricRecord({k: v for k, v in record.items() if k in shared})
    return replies


def host_rejections(msg: Message) -> list[tuple[int, str]]:
    """The replies a host's summed reply left out as ``problem`` rejected them."""
    _, record = reduced_count(msg)
    if record is None:
        return []
    return left_out(record, "rejected")


class Validation(Delegating):
    """Delegates to ``inner``; drops malformed training replies and counts them per round."""

    def __init__(self, inner: Strategy, max_examples: float = 1e9) -> None:
        super().__init__(inner)
        self.max_examples = max_examples
        self.sent: dict[int, dict[int, Spec]] = {}  # round -> node -> what it was sent
        self.model_spec: Spec = {}
        self.rejected: dict[int, list[tuple[int, str]]] = {}

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        # Replies must match what went out to their node; what the strategy returns is cast
        # back to what came in (the model's dtypes).
        self.model_spec = spec_of(arrays)
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        self.sent = {server_round: {msg.metadata.dst_node_id: spec_of(msg.content["arrays"])
                                    for msg in messages if "arrays" in msg.content}}
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        kept, rejected = [], self.rejected.setdefault(server_round, [])
        sent = self.sent.get(server_round, {})
        for msg in replies:
            for node, reason in host_rejections(msg):  # checked on its host before summing
                rejected.append((node, reason))
                log.warning("fedlite: round %d: rejected the reply of node %d on its host: %s",
                            server_round, node, reason)
            expected = sent.get(msg.metadata.src_node_id, self.model_spec)
            reason = None if msg.has_error() else problem(msg, expected, self.max_examples)
            if reason is None:
                kept.append(msg)  # errors pass: the inner strategy counts and drops them
                continue
            node = msg.metadata.src_node_id
            rejected.append((node, reason))
            log.warning("fedlite: round %d: rejected the reply of node %d: %s", server_round,
                        node, reason)
        arrays, metrics = self.inner.aggregate_train(
            server_round, shared_metric_keys(contributing(kept)))
        return (None if arrays is None else cast_to(arrays, self.model_spec)), metrics

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]
                           ) -> MetricRecord | None:
        return self.inner.aggregate_evaluate(server_round, shared_metric_keys(list(replies)))
