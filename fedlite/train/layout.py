"""Memory layout for convolutions: channels-last on the CPU, for the span of a call.

On the CPU, PyTorch runs a convolution with channels-last weights through oneDNN's
channels-last kernels. On the 2-core machine the default small CNN then trains 28 % faster on
one thread and 23 % faster on two, and its inference forward costs about a quarter of a
training step instead of 0.42 (``docs/experiments/skip.md``).
The model is put back in the default layout afterwards, so what leaves ``train`` and
``evaluate`` (state dicts, arrays on the wire, checkpoints) never depends on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def prefers_channels_last(x: torch.Tensor, device: str | torch.device) -> bool:
    """Image batches (N, C, H, W) trained or evaluated on the CPU."""
    return x.dim() == 4 and torch.device(device).type == "cpu"


@contextmanager
def channels_last(model: nn.Module, enabled: bool) -> Iterator[nn.Module]:
    """``model`` with its 4-D parameters and buffers channels-last inside the block."""
    if not enabled:
        yield model
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)
