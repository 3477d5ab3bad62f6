"""The MLP 784-256-C of the FedPara paper's personalization experiments."""

from __future__ import annotations

from torch import nn


class MLP(nn.Module):
    """Flatten, one hidden ReLU layer, a linear classifier."""

    def __init__(self, in_features: int = 784, num_classes: int = 10, hidden: int = 256) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(in_features, hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(self.flatten(x))))
