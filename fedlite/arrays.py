"""A model's state as numpy arrays, and back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn


def state_arrays(model: nn.Module, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Copies of the model's state (of ``keys`` only, if given) as numpy arrays."""
    state = model.state_dict()
    return {k: state[k].detach().cpu().numpy().copy() for k in (state if keys is None else keys)}


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
