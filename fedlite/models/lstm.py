"""The next-character LSTM of the FedAvg (arXiv:1602.05629) and FedPara (arXiv:2108.06098)
Shakespeare experiments: an 8-dimensional embedding, two LSTM layers of 256 units and a linear
head on the last step's output.

Each layer computes its four gates with two maps, ``input_to_hidden`` (I -> 4H) and
``hidden_to_hidden`` (H -> 4H), held as ``nn.Linear`` modules, so FedPara's conversion
replaces them as it replaces any Linear layer. The forward pass takes each map's weight once
per batch (a factorized map composes it) and runs PyTorch's fused LSTM kernel with those
weights: the arithmetic of a step-by-step loop over the two maps, 5x faster on the CPU.
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.func import functional_call


class LSTMLayer(nn.Module):
    """The two gate maps of one LSTM layer, gates in PyTorch's order
    (input, forget, cell, output)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.input_to_hidden = nn.Linear(input_size, 4 * hidden_size)
        self.hidden_to_hidden = nn.Linear(hidden_size, 4 * hidden_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each map's weight at He's variance (Var W = 2 / fan-in), the variance FedPara's
        layers give their composed weight, so that dense, low-rank and FedPara LSTMs start
        from the same statistics; biases as nn.LSTM's, U(+-1/sqrt(H)). On held-out seed 1
        (``shakespeare`` scenario settings, 4 roles a round) this reached 35.9 % after 6
        rounds where nn.LSTM's U(+-1/sqrt(H)) weights reached 24.7 %."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for linear in (self.input_to_hidden, self.hidden_to_hidden):
            nn.init.normal_(linear.weight, 0.0, math.sqrt(2.0 / linear.in_features))
            nn.init.uniform_(linear.bias, -bound, bound)

    def kernel_parameters(self, index: int) -> dict[str, Tensor]:
        """This layer's weights under ``nn.LSTM``'s names for layer ``index``."""
        return {f"weight_ih_l{index}": weight(self.input_to_hidden),
                f"weight_hh_l{index}": weight(self.hidden_to_hidden),
                f"bias_ih_l{index}": self.input_to_hidden.bias,
                f"bias_hh_l{index}": self.hidden_to_hidden.bias}


def weight(linear: nn.Module) -> Tensor:
    """A gate map's (4H, I) weight: an ``nn.Linear``'s own, or a factorized replacement's
    composed one (``fedlite.hadamard`` layers compose it from their factors)."""
    compose = getattr(linear, "compose", None)
    return compose() if compose is not None else linear.weight


class CharLSTM(nn.Module):
    """Embedding, stacked LSTM layers and a linear head; input: (N, T) character ids."""

    def __init__(self, vocabulary: int, embedding: int = 8, hidden: int = 256,
                 layers: int = 2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, embedding)
        self.layers = nn.ModuleList(LSTMLayer(embedding if i == 0 else hidden, hidden)
                                    for i in range(layers))
        self.fc = nn.Linear(hidden, vocabulary)
        # The kernel's own parameters are never used (every forward passes the maps'), so it
        # lives on the meta device, outside the module tree: no memory, no state-dict keys.
        object.__setattr__(self, "_kernel", nn.LSTM(embedding, hidden, layers, batch_first=True,
                                                    device="meta"))

    def forward(self, x: Tensor) -> Tensor:
        inputs = self.embedding(x.long())  # windows travel as uint8
        weights: dict[str, Tensor] = {}
        for index, layer in enumerate(self.layers):
            weights |= layer.kernel_parameters(index)
        outputs, _ = functional_call(self._kernel, weights, (inputs,))
        return self.fc(outputs[:, -1])

