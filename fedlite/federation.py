"""A federation without Flower: the client's round, the server's model, and a sequential FedAvg.

The ClientApp and the sequential loop both call ``local_round``, so a Flower run and a plain
in-process run over the same data, seeds and order give the same global weights, bit for bit:
``weighted_mean`` does the arithmetic of Flower's FedAvg in the same order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from fedlite.arrays import load_arrays, state_arrays
from fedlite.config import RunConfig
from fedlite.data import ClientData, FederatedData, HFColumns, federated_data
from fedlite.methods import ClientRound, RunSetup, table
from fedlite.models import build_model
from fedlite.seeding import derive_seed
from fedlite.train import TrainResult, TrainSettings, evaluate, train
from fedlite.wire import keep_local, receive, split_keys, wire_state


def data_for(cfg: RunConfig) -> FederatedData:
    return federated_data(cfg.dataset, cfg.num_clients, cfg.partitioner, alpha=cfg.dirichlet_alpha,
                          classes_per_client=cfg.classes_per_client,
                          test_fraction=cfg.client_test_fraction, seed=cfg.seed,
                          data_dir=cfg.data_dir, train_size=cfg.client_train_size,
                          hf=HFColumns(cfg.hf_image_column, cfg.hf_label_column,
                                       cfg.hf_train_split, cfg.hf_test_split))


def initial_model(cfg: RunConfig, data: FederatedData) -> nn.Module:
    """The model every run starts from: built under the run's seed, so it is reproducible."""
    return build_initial(cfg, data)[0]


def build_initial(cfg: RunConfig, data: FederatedData) -> tuple[nn.Module, list[Any]]:
    """``initial_model`` and the reports of the methods that changed it (FedPara's conversion).

    Methods draw from the same seeded stream, so every client and the server build identical
    models (pFedPara clients thus start from common local factors).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, data.dataset.input_shape, data.dataset.num_classes)
        reports = [method.prepare_model(settings, model)
                   for method, settings in table.active(cfg)]
    return model, [report for report in reports if report is not None]


def dense_model(cfg: RunConfig, data: FederatedData) -> nn.Module:
    """The model as built before any method changed it (what FedPara's saving is priced
    against)."""
    return build_model(cfg.model, data.dataset.input_shape, data.dataset.num_classes)


def run_setup(cfg: RunConfig, data: FederatedData, model: nn.Module) -> RunSetup:
    return RunSetup(model=model, data=data, num_rounds=cfg.num_rounds,
                    num_clients=cfg.num_clients, seed=cfg.seed, model_name=cfg.model)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but this worker sees no GPU: set device=auto or cpu, "
                           "or give clients GPUs with client-resources-num-gpus")
    return torch.device("cuda" if name != "cpu" and torch.cuda.is_available() else "cpu")


def use_deterministic_kernels(on: bool) -> None:
    """``deterministic = true``: cuDNN and cuBLAS pick deterministic kernels (slower). On the
    CPU fedlite's kernels are deterministic already; on GPUs some are not without this."""
    if not on:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True)


def local_round(model: nn.Module, client: ClientData, cfg: RunConfig, server_round: int,
                client_id: int, device: torch.device | str = "cpu",
                state: MutableMapping[str, np.ndarray] | None = None,
                config: Mapping[str, Any] | None = None,
                wire_keys: Sequence[str] = ()) -> TrainResult:
    """One client's local training for one round, with every active method attached.

    ``state`` is the client's persistent method state (small numpy arrays under a
    ``method/`` key prefix); methods read and update it in place. The ClientApp keeps it in
    ``context.state`` between rounds; the sequential loop keeps one dict per client.
    ``config`` is the server's train ConfigRecord (e.g. FedProx's ``proximal-mu``) and
    ``wire_keys`` the state-dict keys that came from the server.
    """
    rates = cfg.rates()
    settings = TrainSettings(epochs=cfg.local_epochs, batch_size=cfg.batch_size,
                             lr=rates(server_round), momentum=cfg.momentum,
                             weight_decay=cfg.weight_decay, clip_grad_norm=cfg.clip_grad_norm,
                             seed=derive_seed(cfg.seed, server_round, client_id))
    rnd = ClientRound(model=model, x=client.train_x, y=client.train_y, client=client,
                      server_round=server_round, client_id=client_id, num_rounds=cfg.num_rounds,
                      num_clients=cfg.num_clients, seed=cfg.seed, device=device,
                      state={} if state is None else state, settings=settings,
                      lr_at=rates, config=dict(config or {}),
                      wire_keys=frozenset(wire_keys))
    try:
        for method, method_settings in table.active(cfg):
            method.attach(method_settings, rnd)
        gate = rnd.gate
        result = train(rnd.model, rnd.x, rnd.y, rnd.settings, device=device, gate=gate,
                       loss_terms=rnd.loss_terms, task_loss=rnd.task_loss,
                       callbacks=rnd.callbacks, make_optimizer=rnd.make_optimizer)
        for step in rnd.after:
            rnd.metrics |= step(result)
    finally:
        for step in rnd.cleanup:
            step()
    result.method_metrics.update(rnd.metrics)
    return result


class ServerSteps:
    """The active methods' steps after aggregation (``Method.server_step``), on a model of the
    server's own: ``apply(round, arrays, replies)`` returns the arrays with the steps applied
    (same keys and dtypes) and the steps' figures. Both the ServerApp (a strategy wrapper) and
    ``SequentialFedAvg`` call it, so the two stay the same run."""

    def __init__(self, cfg: RunConfig, data: FederatedData) -> None:
        self.steps = table.server_steps(cfg)
        self.report_keys = frozenset(key for method, _ in self.steps
                                     for key in method.server_report_keys)
        self.model = initial_model(cfg, data) if self.steps else None
        self.setup = run_setup(cfg, data, self.model) if self.steps else None

    def __bool__(self) -> bool:
        return bool(self.steps)

    def apply(self, server_round: int, arrays: Mapping[str, np.ndarray],
              replies: Sequence[tuple[float, Mapping[str, Any]]]
              ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        if not self.steps:
            return dict(arrays), {}
        load_arrays(self.model, arrays)
        figures: dict[str, float] = {}
        for method, settings in self.steps:
            figures |= method.server_step(settings, self.model, server_round, self.setup,
                                          replies)
        state = self.model.state_dict()
        return ({key: state[key].detach().cpu().numpy().astype(value.dtype, copy=True)
                 for key, value in arrays.items()}, figures)


class WeightedMean:
    """The example-weighted mean of client arrays, accumulated client by client in the given
    order with the arithmetic of Flower's FedAvg (``aggregate_arrayrecords``): each client's
    arrays times ``n_k / n``, summed in float32. Bit-identical to it for the same order."""

    def __init__(self, weights: Sequence[float]) -> None:
        total = sum(weights)
        self.factors = [w / total for w in weights]
        self.index = 0
        self.sum: dict[str, np.ndarray] = {}

    def add(self, arrays: Mapping[str, np.ndarray]) -> None:
        factor = self.factors[self.index]
        self.index += 1
        for key, value in arrays.items():
            if key not in self.sum:
                self.sum[key] = value * factor
            else:
                self.sum[key] += value * factor

    def result(self) -> dict[str, np.ndarray]:
        return {key: np.asarray(value) for key, value in self.sum.items()}


@dataclass
class SequentialResult:
    arrays: dict[str, np.ndarray]
    accuracy: list[float] = field(default_factory=list)
    round_seconds: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)  # the clients' own, summed per round


@dataclass
class SequentialRound:
    """One round of ``SequentialFedAvg``: central accuracy, the round's wall clock (central
    evaluation included, as a Flower round) and every client's result in partition order."""

    server_round: int
    accuracy: float
    seconds: float
    clients: list[TrainResult]

    @property
    def train_seconds(self) -> float:
        return sum(result.seconds for result in self.clients)


class SequentialFedAvg:
    """Plain in-process FedAvg, one round per ``step()``: every client in partition order, one
    reused model.

    Samples every client each round (``fraction-train`` = 1), like the Flower run it is
    compared with. Stepping lets two federations run round by round in turns (a benchmark's
    arms, interleaved so that a drift of the machine's speed falls on both alike). Training and
    then averaging keeps one round's trained arrays per client in memory (the weights of the
    mean are known only once every client has trained).
    """

    def __init__(self, cfg: RunConfig) -> None:
        use_deterministic_kernels(cfg.deterministic)
        self.cfg = cfg
        self.data = data_for(cfg)
        self.device = resolve_device(cfg.device)
        self.model = initial_model(cfg, self.data).to(self.device)
        self.initial = state_arrays(self.model)
        self.local = split_keys(cfg, self.model)[1]
        self.global_arrays = {k: v.detach().cpu().numpy().copy()
                              for k, v in wire_state(cfg, self.model).items()}
        self.states: list[dict[str, np.ndarray]] = [{} for _ in range(cfg.num_clients)]
        self.server_round = 0
        self.server_steps = ServerSteps(cfg, self.data)

    def step(self, after_round: Callable[[nn.Module, int], None] | None = None
             ) -> SequentialRound:
        """Train every client on the global arrays, average, evaluate centrally.
        ``after_round(model, round)`` sees the model holding the new global arrays."""
        cfg, model, device = self.cfg, self.model, self.device
        self.server_round += 1
        start = time.perf_counter()
        replies, outcomes = [], []
        for client_id in range(cfg.num_clients):
            state = self.states[client_id]
            receive(model, cfg, self.global_arrays, state, self.initial)
            outcome = local_round(model, self.data.client(client_id), cfg, self.server_round,
                                  client_id, device, state, wire_keys=self.global_arrays)
            keep_local(model, cfg, state)
            outcomes.append(outcome)
            replies.append({k: v.detach().cpu().numpy().copy()
                            for k, v in wire_state(cfg, model).items()})
        mean = WeightedMean([outcome.num_examples for outcome in outcomes])
        for reply in replies:
            mean.add(reply)
        self.global_arrays, _ = self.server_steps.apply(
            self.server_round, mean.result(),
            [(outcome.num_examples, outcome.method_metrics) for outcome in outcomes])
        # what the server holds: the new global arrays, and the initial local ones
        load_arrays(model, {**{k: self.initial[k] for k in self.local}, **self.global_arrays})
        if after_round:
            after_round(model, self.server_round)
        _, accuracy = evaluate(model, self.data.dataset.test_x, self.data.dataset.test_y,
                               device=device)
        return SequentialRound(self.server_round, accuracy, time.perf_counter() - start,
                               outcomes)


def run_sequential_fedavg(cfg: RunConfig, *,
                          on_round: Callable[[int, float, float], None] | None = None,
                          after_round: Callable[[nn.Module, int], None] | None = None
                          ) -> SequentialResult:
    """``SequentialFedAvg`` for the run's rounds; ``on_round(round, accuracy, seconds)``."""
    federation = SequentialFedAvg(cfg)
    result = SequentialResult(federation.global_arrays)
    for _ in range(cfg.num_rounds):
        outcome = federation.step(after_round)
        result.arrays = federation.global_arrays
        result.accuracy.append(outcome.accuracy)
        result.round_seconds.append(outcome.seconds)
        result.train_seconds.append(outcome.train_seconds)
        if on_round:
            on_round(outcome.server_round, outcome.accuracy, outcome.seconds)
    return result
