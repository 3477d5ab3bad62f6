"""A federation without Flower: the client's round, the server's model, and a sequential FedAvg.

The ClientApp and the sequential loop both call ``local_round``, so a Flower run and a plain
in-process run over the same data, seeds and order must give the same global weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from fedlite.config import RunConfig
from fedlite.data import ClientData, FederatedData, HFColumns, federated_data
from fedlite.hadamard.convert import ConversionReport
from fedlite.hadamard.settings import apply as apply_fedpara, local_factor_sgd
from fedlite.models import build_model
from fedlite.train import TrainResult, TrainSettings, evaluate, train
from fedlite.train.fsp import fsp_term, round_lr, stage1_optimizer
from fedlite.train.skip import skip_gate


def derive_seed(seed: int, *parts: int) -> int:
    """An independent 63-bit seed for (run seed, round, client, ...)."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(2, np.uint64)[0] >> 1)


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


def build_initial(cfg: RunConfig, data: FederatedData) -> tuple[nn.Module, ConversionReport | None]:
    """``initial_model`` and its FedPara conversion report (``None`` when ``fedpara.mode=none``).

    The factors are drawn from the same seeded stream, so every client and the server build
    identical factors (pFedPara clients thus start from common local factors).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, data.dataset.input_shape, data.dataset.num_classes)
        return model, apply_fedpara(model, cfg.fedpara)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda but this worker sees no GPU: set device=auto or cpu, "
                           "or give clients GPUs with client-resources-num-gpus")
    return torch.device("cuda" if name != "cpu" and torch.cuda.is_available() else "cpu")


def local_round(model: nn.Module, client: ClientData, cfg: RunConfig, server_round: int,
                client_id: int, device: torch.device | str = "cpu",
                state: MutableMapping[str, np.ndarray] | None = None) -> TrainResult:
    """One client's local training for one round, with the configured methods attached.

    ``state`` is the client's persistent method state (small numpy arrays under a
    ``method/`` key prefix); methods read and update it in place. The ClientApp keeps it in
    ``context.state`` between rounds; the sequential loop keeps one dict per client.
    """
    settings = TrainSettings(epochs=cfg.local_epochs, batch_size=cfg.batch_size,
                             lr=round_lr(cfg, server_round), momentum=cfg.momentum,
                             weight_decay=cfg.weight_decay, clip_grad_norm=cfg.clip_grad_norm,
                             seed=derive_seed(cfg.seed, server_round, client_id))
    if cfg.continual.enabled:  # class-incremental tasks on rounds: fedlite.continual
        from fedlite.continual.client import continual_round

        return continual_round(model, client, cfg, server_round, client_id, settings, device,
                               state)
    # FSP stage 1 replaces cross-entropy with the FSP loss (None outside stage 1).
    term = fsp_term(cfg, model, server_round, tuple(client.train_x.shape[1:]), device)
    if term is not None:
        with term:  # labels play no part in stage 1, so neither does skipping
            return train(model, client.train_x, client.train_y, settings, device=device,
                         loss_terms=[term], task_loss=False, callbacks=[term],
                         make_optimizer=stage1_optimizer(cfg))
    gate = skip_gate(cfg, state, server_round)  # None unless skip.enabled
    scale = cfg.fedpara.local_lr_scale  # pFedPara's personal factors (1: plain SGD)
    return train(model, client.train_x, client.train_y, settings, device=device, gate=gate,
                 callbacks=() if gate is None else [gate],
                 make_optimizer=local_factor_sgd(scale) if scale != 1.0 else None)


def state_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_arrays(model: nn.Module, arrays: Mapping[str, np.ndarray], strict: bool = True) -> None:
    """Copy arrays into the model in place; shape mismatches name the layer and both shapes."""
    state = model.state_dict()
    for key, value in arrays.items():
        if key not in state:
            if strict:
                raise KeyError(f"array `{key}` does not belong to this model "
                               f"(it has {len(state)} keys, e.g. {next(iter(state))!r})")
            continue
        if tuple(state[key].shape) != tuple(value.shape):
            raise ValueError(f"shape mismatch for `{key}`: model has {tuple(state[key].shape)}, "
                             f"received {tuple(value.shape)}")
    with torch.no_grad():
        for key, value in arrays.items():
            if key in state:
                state[key].copy_(torch.as_tensor(value))


@dataclass
class SequentialResult:
    arrays: dict[str, np.ndarray]
    accuracy: list[float] = field(default_factory=list)
    round_seconds: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)  # the clients' own, summed per round


def run_sequential_fedavg(cfg: RunConfig, *,
                          on_round: Callable[[int, float, float], None] | None = None,
                          after_round: Callable[[nn.Module, int], None] | None = None
                          ) -> SequentialResult:
    """Plain in-process FedAvg: every client in order, one reused model, a streaming weighted sum.

    Samples every client each round (``fraction-train`` = 1), like the Flower run it is
    compared with. ``after_round(model, round)`` sees the model holding the new global arrays.
    """
    data = data_for(cfg)
    device = resolve_device(cfg.device)
    model = initial_model(cfg, data).to(device)
    global_arrays = state_arrays(model)
    result = SequentialResult(global_arrays)
    states: list[dict[str, np.ndarray]] = [{} for _ in range(cfg.num_clients)]
    for server_round in range(1, cfg.num_rounds + 1):
        start = time.perf_counter()
        total, weights, trained = 0, [], 0.0
        summed: dict[str, np.ndarray] = {}
        for client_id in range(cfg.num_clients):
            load_arrays(model, global_arrays)
            outcome = local_round(model, data.client(client_id), cfg, server_round, client_id,
                                  device, states[client_id])
            weights.append(outcome.num_examples)
            trained += outcome.seconds
            for key, value in state_arrays(model).items():
                summed[key] = summed.get(key, 0) + value * float(outcome.num_examples)
            total += outcome.num_examples
        global_arrays = {k: (v / total).astype(global_arrays[k].dtype) for k, v in summed.items()}
        load_arrays(model, global_arrays)
        if after_round:
            after_round(model, server_round)
        _, accuracy = evaluate(model, data.dataset.test_x, data.dataset.test_y, device=device)
        seconds = time.perf_counter() - start  # with central evaluation, as a Flower round
        result.arrays, result.accuracy, result.round_seconds = global_arrays, \
            result.accuracy + [accuracy], result.round_seconds + [seconds]
        result.train_seconds.append(trained)
        if on_round:
            on_round(server_round, accuracy, seconds)
    return result
