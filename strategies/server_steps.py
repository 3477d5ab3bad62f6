"""A strategy wrapper for the methods' steps after aggregation (``Method.server_step``).

Continual learning's distilled student takes head steps on the server once the round's replies
are averaged (``continual.server-head-steps``). The wrapper sits inside ``Validation``, so it
sees only the replies that joined the aggregate, and calls the same ``ServerSteps`` as the
sequential loop. Strategies that keep server state built from the arrays they returned (FedAvgM's
momentum, the FedOpt family's moments) would take the step for a client update in the next
round; they are refused (``refusal``).
"""

from __future__ import annotations

from collections.abc import Iterable
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAdagrad, FedAdam, FedAvgM, FedYogi, Strategy

from fedlite.federation import ServerSteps
from strategies.array_codec import decode, encode_record
from strategies.delegating import Delegating

STATEFUL = (FedAvgM, FedAdam, FedYogi, FedAdagrad)


def refusal(levels: Iterable[Strategy]) -> str | None:
    """Why a strategy nest cannot carry server steps, or None."""
    for level in levels:
        if isinstance(level, STATEFUL):
            return (f"{type(level).__name__} keeps server state built from the arrays it "
                    "returned, so a step after its aggregation would reach it as a client "
                    "update; use FedAvg, FedProx, FedMedian or another stateless strategy, "
                    "or set continual.server-head-steps = 0")
    return None


class AfterAggregation(Delegating):
    """Delegates to ``inner``; ``steps`` change the arrays its ``aggregate_train`` returns."""

    def __init__(self, inner: Strategy, steps: ServerSteps) -> None:
        super().__init__(inner)
        self.steps = steps
        self.figures: dict[int, dict[str, float]] = {}

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        arrays, metrics = self.inner.aggregate_train(server_round, replies)
        if arrays is None:
            return arrays, metrics
        reports = [(float(record["num-examples"]), record) for msg in replies
                   if not msg.has_error() for record in msg.content.metric_records.values()]
        changed, self.figures[server_round] = self.steps.apply(
            server_round, {key: decode(array) for key, array in arrays.items()}, reports)
        if metrics is not None:  # the steps' inputs (long lists) are not round figures
            metrics = MetricRecord({key: value for key, value in metrics.items()
                                    if key not in self.steps.report_keys})
        return encode_record(changed), metrics
