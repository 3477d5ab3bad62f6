"""One ResNet trained centrally on Fashion-MNIST under the FSP protocol's step schedule, to see
whether depth matters on this data before any federated FSP arm runs. Prints one JSON line per
epoch and the curve at the end.

    python -m simulations.bench.fsp_central MODEL EPOCHS SEED
    e.g. python -m simulations.bench.fsp_central resnet20 10 3
"""

from __future__ import annotations

import json
import sys

import torch

from fedlite.data import federated_data
from fedlite.models import build_model
from fedlite.threads import torch_threads
from fedlite.train import TrainSettings, evaluate, train


def step_lr(epoch: int, epochs: int, lr: float = 0.1) -> float:
    """×0.1 at half and at three quarters of the epochs, as Yim et al. schedule."""
    return lr * (0.1 if epoch >= epochs // 2 else 1) * (0.1 if epoch >= 3 * epochs // 4 else 1)


def main(argv: list[str]) -> list[float]:
    name, epochs, seed = argv[0], int(argv[1]), int(argv[2])
    data = federated_data("fashion-mnist", 1, "iid", seed=seed)  # one client: all of it
    client = data.client(0)
    torch.manual_seed(seed)
    model = build_model(name, data.dataset.input_shape, data.dataset.num_classes)
    curve: list[float] = []
    with torch_threads(1):
        for epoch in range(epochs):
            settings = TrainSettings(epochs=1, batch_size=128, lr=step_lr(epoch, epochs),
                                     momentum=0.9, weight_decay=5e-4, seed=seed * 1000 + epoch)
            result = train(model, client.train_x, client.train_y, settings)
            curve.append(round(100 * evaluate(model, data.dataset.test_x,
                                              data.dataset.test_y)[1], 2))
            print(json.dumps({"model": name, "epoch": epoch + 1, "lr": settings.lr,
                              "train_accuracy": round(result.accuracy, 4),
                              "test_accuracy": curve[-1], "seconds": round(result.seconds, 1)}),
                  flush=True)
    print(json.dumps({"model": name, "epochs": epochs, "train_images": len(client.train_y),
                      "curve": curve}))
    return curve


if __name__ == "__main__":
    main(sys.argv[1:])
