"""FedPara on recurrent models: an LSTM layer's two gate maps are what gets factorized.

The FedPara paper's Shakespeare experiment (arXiv:2108.06098, Sec. 3.1) re-parameterizes the
LSTM's input-to-hidden and hidden-to-hidden weights and keeps the embedding and the output
layer as they are. A layer exposes the two maps as ``nn.Linear`` children named
``input_to_hidden`` (I -> 4H) and ``hidden_to_hidden`` (H -> 4H) (``fedlite.models.lstm``), so
each becomes one FedPara Linear layer of shape 4H x I or 4H x H: rank R**2 for all four gates
together, at 2R(4H + I) parameters.
"""

from __future__ import annotations

from torch import nn

GATE_MAPS = ("input_to_hidden", "hidden_to_hidden")


def gate_maps(model: nn.Module) -> list[str]:
    """Names of the model's LSTM gate maps (``layers.0.input_to_hidden``, ...), in order."""
    return [name for name, module in model.named_modules()
            if type(module) is nn.Linear and name.rpartition(".")[2] in GATE_MAPS]


def non_gate_linears(model: nn.Module) -> tuple[str, ...]:
    """The Linear layers of a recurrent model that stay dense by default (its output layer)."""
    maps = set(gate_maps(model))
    return tuple(name for name, module in model.named_modules()
                 if type(module) is nn.Linear and name not in maps)
