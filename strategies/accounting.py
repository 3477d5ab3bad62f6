"""A strategy wrapper that measures the real bytes on the wire and the replies of each round.

A host's summed reply (``strategies.reduction``) counts as the clients it stands for: their
replies, failures and the bytes their own replies would have carried in a deployment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from strategies.reduction import left_out, reduced_count


@dataclass
class RoundTraffic:
    bytes_down: int = 0
    bytes_up: int = 0
    # messages that carried arrays, to price the same traffic with the dense model's arrays
    array_messages_down: int = 0
    array_messages_up: int = 0
    replies_ok: int = 0
    replies_failed: int = 0
    train_metrics: dict[str, Any] = field(default_factory=dict)  # the clients', summarized
    # what the strategy's aggregate_train / aggregate_evaluate returned as metrics
    strategy_train_metrics: dict[str, Any] = field(default_factory=dict)
    evaluate_metrics: dict[str, Any] = field(default_factory=dict)
    first_error: str | None = None  # the first failed reply's reason
    client_accuracies: list[float] = field(default_factory=list)
    # each client's held-out accuracy at the end of its local training, before aggregation
    trained_accuracies: list[float] = field(default_factory=list)


def array_bytes(messages: Iterable[Message]) -> int:
    """Bytes of every ArrayRecord in the messages, as Flower serializes them (for a summed
    reply, what its clients' replies carried)."""
    total = 0
    for msg in messages:
        if msg.has_error():
            continue
        _, reduction = reduced_count(msg)
        total += (int(reduction["bytes-up"]) if reduction is not None else
                  sum(record.count_bytes() for record in msg.content.array_records.values()))
    return total


def array_messages(messages: Iterable[Message]) -> int:
    """How many of the messages carry arrays (Local's empty ArrayRecords do not count)."""
    return sum(reduced_count(msg)[0] for msg in messages if not msg.has_error()
               and any(len(record) for record in msg.content.array_records.values()))


COUNTS = ("num-examples", "samples-seen", "samples-backprop")


def summarize_client_metrics(records: list[MetricRecord]) -> dict[str, float]:
    """Counts are summed, ``train-seconds`` is summed and maxed, the rest is averaged
    weighted by ``num-examples`` (what a strategy's metric average would hide)."""
    if not records:
        return {}
    weights = [float(r.get("num-examples", 1)) for r in records]
    summary: dict[str, float] = {}
    for key in sorted({k for r in records for k, v in r.items() if isinstance(v, (int, float))}):
        values = [float(r[key]) for r in records if key in r]
        if key in COUNTS:
            summary[key] = sum(values)
        elif key == "train-seconds":
            summary["train-seconds"], summary["train-seconds-max"] = sum(values), max(values)
        else:  # over the clients that report the key (a method may run on only some)
            pairs = [(float(r[key]), w) for r, w in zip(records, weights, strict=True) if key in r]
            summary[key] = sum(v * w for v, w in pairs) / (sum(w for _, w in pairs) or 1.0)
    return summary


class Accounting(Strategy):
    """Delegates every hook to ``inner`` and keeps a ``RoundTraffic`` per round."""

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.rounds: dict[int, RoundTraffic] = {}

    def __getattr__(self, name: str) -> Any:  # e.g. fraction_train of the wrapped strategy
        return getattr(self.inner, name)

    def _round(self, server_round: int) -> RoundTraffic:
        return self.rounds.setdefault(server_round, RoundTraffic())

    def _count_down(self, server_round: int, messages: list[Message]) -> None:
        traffic = self._round(server_round)
        traffic.bytes_down += array_bytes(messages)
        traffic.array_messages_down += array_messages(messages)

    def _count_up(self, server_round: int, replies: list[Message]) -> RoundTraffic:
        traffic = self._round(server_round)
        traffic.bytes_up += array_bytes(replies)
        traffic.array_messages_up += array_messages(replies)
        return traffic

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        messages = list(self.inner.configure_train(server_round, arrays, config, grid))
        self._count_down(server_round, messages)
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        traffic = self._count_up(server_round, replies)
        reductions = [record for msg in replies if (record := reduced_count(msg)[1])]
        traffic.replies_failed += (sum(msg.has_error() for msg in replies)
                                   + sum(len(r["failed-nodes"]) for r in reductions))
        traffic.replies_ok += sum(reduced_count(msg)[0] for msg in replies
                                  if not msg.has_error())
        records = [record for msg in replies if not msg.has_error()
                   for record in msg.content.metric_records.values()]
        traffic.train_metrics = summarize_client_metrics(records)
        traffic.trained_accuracies = [float(r["trained-eval-accuracy"]) for r in records
                                      if "trained-eval-accuracy" in r]
        errors = [(msg.metadata.src_node_id, msg.error.reason) for msg in replies
                  if msg.has_error()]
        errors += [pair for r in reductions for pair in left_out(r, "failed")]
        if errors and traffic.first_error is None:
            traffic.first_error = f"node {errors[0][0]}: {errors[0][1]}"
        arrays, metrics = self.inner.aggregate_train(server_round, replies)
        traffic.strategy_train_metrics = dict(metrics or {})
        return arrays, metrics

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        messages = list(self.inner.configure_evaluate(server_round, arrays, config, grid))
        self._count_down(server_round, messages)
        return messages

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]
                           ) -> MetricRecord | None:
        replies = list(replies)
        traffic = self._count_up(server_round, replies)
        traffic.client_accuracies = [
            float(record["eval-accuracy"]) for msg in replies if not msg.has_error()
            for record in msg.content.metric_records.values() if "eval-accuracy" in record]
        metrics = self.inner.aggregate_evaluate(server_round, replies)
        traffic.evaluate_metrics = dict(metrics or {})
        return metrics

    def summary(self) -> None:
        self.inner.summary()
