"""The teacher: a trained checkpoint loaded once per worker process, never sent per round.

A Flower worker answers many messages; the teacher is read-only, so it is cached keyed by
the checkpoint's path, its modification time and the architecture (like the dataset cache).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fedlite.models import build_model

CHECKPOINT = "checkpoint.npz"  # what fedlite.records writes into every run directory


def checkpoint_path(teacher: str | os.PathLike) -> Path:
    """A run directory's checkpoint, or the .npz file itself; a clear error when missing."""
    path = Path(teacher).expanduser()
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(
            f"fsp.teacher: no checkpoint at {path}; give a finished run directory "
            f"(results/<run-id>/ holds {CHECKPOINT}) or the path of a .npz checkpoint")
    return path.resolve()


def load_teacher(teacher: str | os.PathLike, model_name: str, input_shape: tuple[int, ...],
                 num_classes: int, device: str | torch.device = "cpu") -> nn.Module:
    """The teacher in eval mode, frozen; cached per process (path, mtime, architecture)."""
    path = checkpoint_path(teacher)
    return _cached(str(path), path.stat().st_mtime_ns, model_name, tuple(input_shape),
                   num_classes, str(device))


@lru_cache(maxsize=2)
def _cached(path: str, mtime_ns: int, model_name: str, input_shape: tuple[int, ...],
            num_classes: int, device: str) -> nn.Module:
    model = build_model(model_name, input_shape, num_classes)
    if not hasattr(model, "forward_sections"):
        raise ValueError(f"fsp.teacher-model={model_name!r} has no sections; FSP needs a "
                         "ResNet (resnet8, resnet14, resnet20, resnet26)")
    with np.load(path) as stored:
        # "__round__", "__rng__", "__strategy__": a run's bookkeeping (fedlite.records)
        arrays = {k: stored[k] for k in stored.files if not k.startswith("__")}
    state = model.state_dict()
    missing, extra = sorted(set(state) - set(arrays)), sorted(set(arrays) - set(state))
    if missing or extra:
        raise ValueError(
            f"fsp.teacher {path} does not match fsp.teacher-model={model_name!r}: "
            + (f"checkpoint lacks {missing[:3]}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"checkpoint has unknown {extra[:3]}" if extra else ""))
    for key, value in arrays.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise ValueError(
                f"fsp.teacher {path} does not match fsp.teacher-model={model_name!r}: layer "
                f"`{key}` is {tuple(value.shape)} in the checkpoint, {tuple(state[key].shape)} "
                "in the model")
    model.load_state_dict({k: torch.as_tensor(v) for k, v in arrays.items()})
    model.to(device).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model
