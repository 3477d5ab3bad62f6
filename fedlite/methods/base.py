"""What a method is to fedlite: the protocol every entry of the method table follows.

A method declares its settings (a dataclass of run-config keys under its section), checks them
against the model and data before any worker starts, attaches its parts to a client's round
(``ClientRound``: a batch gate, loss terms, callbacks, an optimizer factory, a narrowed model
or training set, steps after training), names the state-dict keys it keeps on the client,
may transform what a client sends, adds to the server's round (metrics, an evaluation that
replaces central evaluation) and says what the progress line shows. Every hook has a neutral
default, so a method implements only what it changes; with its settings at their defaults a
method attaches nothing and training is exactly plain training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from fedlite.errors import ConfigError
from fedlite.schedule import LrSchedule


@dataclass(frozen=True)
class RunSetup:
    """What the server side of a method sees of a run: the initial model (after every method
    prepared it), the federated data, and the run's scale."""

    model: Any  # torch.nn.Module
    data: Any  # fedlite.data.FederatedData
    num_rounds: int
    num_clients: int
    seed: int
    model_name: str


@dataclass
class ClientRound:
    """One client's round as methods assemble it; ``fedlite.federation.local_round`` then runs
    the one training loop on it.

    Methods may narrow ``model`` (the module the loop trains) and ``x``/``y`` (the round's
    training set), replace ``settings`` (``dataclasses.replace``), append loss terms,
    callbacks, ``after`` steps (run with the training result; return metrics) and ``cleanup``
    steps (always run, also after an error: the model object is reused by the next client).
    The gate and the optimizer factory have one owner each: a second method claiming one is
    an error naming both.
    """

    model: Any  # the module the loop trains
    x: Any
    y: Any
    client: Any  # fedlite.data.ClientData: the client's whole data
    server_round: int
    client_id: int
    num_rounds: int
    num_clients: int
    seed: int
    device: Any
    state: MutableMapping[str, np.ndarray]
    settings: Any  # fedlite.train.TrainSettings
    lr_at: LrSchedule  # the run's learning-rate schedule, called by round; restartable
    config: Mapping[str, Any] = field(default_factory=dict)  # the server's train ConfigRecord
    wire_keys: frozenset[str] = frozenset()  # state-dict keys received from the server
    gate: Any = None
    loss_terms: list = field(default_factory=list)
    task_loss: bool = True
    callbacks: list = field(default_factory=list)
    make_optimizer: Callable | None = None
    after: list[Callable[[Any], dict[str, float]]] = field(default_factory=list)
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    root: Any = None  # the whole model, whatever ``model`` is narrowed to

    def __post_init__(self) -> None:
        if self.root is None:
            self.root = self.model

    def claim(self, part: str, value: Any, by: str) -> None:
        """Set the single-owner part ``gate`` or ``make_optimizer`` for method ``by``."""
        if part in self.owners:
            raise ConfigError(f"{by} and {self.owners[part]} both replace the round's {part}; "
                              "turn one of them off")
        self.owners[part] = by
        setattr(self, part, value)


class Evaluator(Protocol):
    """A server-side evaluation that replaces central evaluation (continual learning judges the
    classes seen so far)."""

    def round_metrics(self, model: Any, server_round: int) -> dict[str, Any]: ...
    def summary(self) -> dict[str, Any]: ...


class Method:
    """An entry of the method table. Subclasses set ``name`` and ``settings`` and override the
    hooks they need; ``settings`` instances are what every hook receives as ``s``."""

    name: ClassVar[str]  # the section: keys "<name>.<field>" ("" = top-level keys)
    settings: ClassVar[type | None] = None  # frozen dataclass of ``fedlite.fields.setting``s
    label: ClassVar[str] = ""  # what messages call it, e.g. "backprop skipping"
    # reply metrics only ``server_step`` reads (kept out of the aggregated metrics and logs)
    server_report_keys: ClassVar[tuple[str, ...]] = ()

    def active(self, s: Any) -> bool:
        """Whether the method changes anything in a run with these settings."""
        return True

    def refuses(self, s: Any, other: str, other_settings: Any) -> str | None:
        """Why this method cannot run beside the active method ``other``, naming both keys."""
        return None

    def prepare_model(self, s: Any, model: Any) -> Any:
        """Change a freshly built model in place (server and clients build it alike); may
        return a report with ``describe() -> dict`` for the run's records."""
        return None

    def check(self, s: Any, setup: RunSetup) -> None:
        """Preflight: raise ``ConfigError`` for settings that cannot work with this model/data."""

    def local_keys(self, s: Any, model: Any) -> Iterable[str]:
        """State-dict keys that stay on the client (never on the wire)."""
        return ()

    def attach(self, s: Any, rnd: ClientRound) -> None:
        """Attach this method's parts to a client's round."""

    def outgoing(self, s: Any, client_id: int, num_clients: int, sent: Mapping[str, np.ndarray],
                 reply: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What the client sends instead of its trained wire arrays ``reply``."""
        return reply

    def evaluator(self, s: Any, setup: RunSetup) -> Evaluator | None:
        """A server evaluation that replaces central evaluation, or None."""
        return None

    def round_metrics(self, s: Any, server_round: int) -> dict[str, Any]:
        """What the server records for this method after each round."""
        return {}

    def has_server_step(self, s: Any) -> bool:
        """Whether ``server_step`` changes the global model after aggregation."""
        return False

    def server_step(self, s: Any, model: Any, server_round: int, setup: RunSetup,
                    replies: Sequence[tuple[float, Mapping[str, Any]]]) -> dict[str, float]:
        """After aggregation, before the round's evaluation and the next round: change the
        global ``model`` in place, given the round's (num-examples, metrics) replies; returns
        figures for the round's record."""
        return {}

    def progress(self, line: Mapping[str, Any]) -> list[str]:
        """Parts of the progress line for a recorded round (empty when it did nothing)."""
        return []
