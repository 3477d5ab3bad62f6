"""What travels and what stays on the client: the wire/local split of a model's arrays.

- FedPara / low-rank: every array travels (factors, biases, norms, dense layers); the composed
  weight is not a parameter, so it never travels.
- pFedPara: ``fedpara_local_*`` (W2) stays on the client.
- FedPer: the modules named in ``local-modules`` stay on the client.
- Local (``federated = false``): everything stays; nothing travels and clients never load
  the server's arrays, so the server's rounds only schedule training and evaluation.

Arrays that stay live in the client's persistent ``state`` dict under ``local/`` (the dict
``local_round`` gets and the ClientApp keeps in ``context.state``).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import numpy as np
import torch
from torch import nn

from fedlite.config import RunConfig
from fedlite.arrays import load_arrays, state_arrays
from fedlite.methods import table

STATE_PREFIX = "local/"


def local_keys(cfg: RunConfig, model: nn.Module) -> set[str]:
    """The state-dict keys that stay on the client: what any active method keeps there."""
    return {key for method, settings in table.active(cfg)
            for key in method.local_keys(settings, model)}


def personalized(cfg: RunConfig, model: nn.Module) -> bool:
    """True when each client keeps part of its model (pFedPara, FedPer, Local)."""
    return bool(local_keys(cfg, model))


def split_keys(cfg: RunConfig, model: nn.Module) -> tuple[list[str], list[str]]:
    """(wire keys, local keys) of ``model`` under ``cfg``, each in state-dict order."""
    local = local_keys(cfg, model)
    state = list(model.state_dict())
    return [k for k in state if k not in local], [k for k in state if k in local]


def wire_state(cfg: RunConfig, model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a message carries (the server's broadcast, the client's reply), as a
    state-dict subset that Flower's ``ArrayRecord`` takes directly."""
    local = local_keys(cfg, model)
    return {key: value for key, value in model.state_dict().items() if key not in local}


def check_keys(received: Mapping[str, object], expected: list[str]) -> None:
    """Fail clearly when a message's arrays are not exactly the expected wire keys."""
    missing = [k for k in expected if k not in received]
    extra = [k for k in received if k not in set(expected)]
    if missing or extra:
        raise ValueError(f"received arrays do not match this run's wire keys: missing {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}, unexpected {extra[:5]}"
                         f"{' ...' if len(extra) > 5 else ''} (do server and client share the "
                         "same fedpara.*, local-modules and federated settings?)")


def receive(model: nn.Module, cfg: RunConfig, arrays: Mapping[str, np.ndarray],
            state: Mapping[str, np.ndarray], initial: Mapping[str, np.ndarray]) -> bool:
    """Load the server's wire arrays, then this client's own local arrays, into ``model``.

    A client without local state yet starts from ``initial`` (the seeded model every client
    and the server build identically). Returns True in that case so the caller can log it.
    """
    wire, local = split_keys(cfg, model)
    check_keys(arrays, wire)
    load_arrays(model, arrays)
    if not local:
        return False
    own = {k[len(STATE_PREFIX):]: v for k, v in state.items() if k.startswith(STATE_PREFIX)}
    fresh = not own
    if fresh:
        own = {key: initial[key] for key in local}
    check_keys(own, local)
    load_arrays(model, own)
    return fresh


def keep_local(model: nn.Module, cfg: RunConfig, state: MutableMapping[str, np.ndarray]) -> None:
    """Store the model's local arrays in the client's persistent state (copies)."""
    local = local_keys(cfg, model)
    if not local:  # most runs keep nothing: not even the state dict is built
        return
    state.update({STATE_PREFIX + key: value for key, value in state_arrays(model).items()
                  if key in local})
