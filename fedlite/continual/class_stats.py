"""Per-class statistics of the first model's features: what the clients report and what the
server's head step draws its probes from (``continual.server-head-steps``).

Each client distils the student's head towards its own, locally trained first model, and the
server then averages those heads; the average is not the head that fits the averaged first
model (on tuning seed 3 the student ended 5.75 points behind, 2.29 after a head step on the
aggregate; docs/experiments/continual.md). So after aggregation the server takes head steps
itself, and it needs probes of every seen class's feature region: each client that holds a
class reports that class's centre (the centre its own probes surround: the class mean) and its
second moment (spread² + centre² per dimension), and the server pools them, every holder of a
class weighing the same. The report is divided by the client's ``num-examples``, so a host that
averages its clients' metrics by ``num-examples`` (node-side reduction) loses nothing: the
server multiplies each reply back by its own ``num-examples``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fedlite.continual.memory import spread

KEY = "continual-class-stats"  # the reply's metric: a flat list, classes x (1 + 2 x dim)


def client_stats(num_classes: int, dim: int, centres: Tensor, spreads: Tensor,
                 labels: Sequence[int]) -> np.ndarray:
    """(num_classes, 1 + 2 dim): per class 1 (held) or 0, the centre, the second moment."""
    table = np.zeros((num_classes, 1 + 2 * dim), dtype=np.float64)
    for centre, std, label in zip(centres.double(), spreads.double(), labels, strict=True):
        table[int(label)] = np.concatenate([[1.0], centre.numpy(),
                                            (std.square() + centre.square()).numpy()])
    return table


@torch.no_grad()
def current_class_stats(features: Tensor, y: Tensor) -> tuple[Tensor, Tensor, list[int]]:
    """Each class's mean and per-dimension standard deviation of ``features`` (of the client's
    current samples, labels ``y``): the same figures the memory keeps of a finished class."""
    labels = torch.unique(y).tolist()
    return (torch.stack([features[y == c].mean(0) for c in labels]),
            torch.stack([spread(features[y == c]) for c in labels]), [int(c) for c in labels])


def report(table: np.ndarray, num_examples: int) -> list[float]:
    """The metric value a client sends: its table per example (see the module's docstring)."""
    return (table / max(num_examples, 1)).ravel().tolist()


def pooled(replies: Iterable[tuple[float, Mapping[str, Any]]], num_classes: int, dim: int
           ) -> tuple[Tensor, Tensor, Tensor] | None:
    """Centres, spreads and labels of every class some reply holds, from (num-examples,
    metrics) pairs; None when no reply reports statistics."""
    total = np.zeros((num_classes, 1 + 2 * dim), dtype=np.float64)
    seen = False
    for weight, metrics in replies:
        value = metrics.get(KEY)
        if value is None:
            continue
        seen = True
        total += float(weight) * np.asarray(value, dtype=np.float64).reshape(total.shape)
    holders = total[:, 0]
    held = np.flatnonzero(holders > 0.5)  # counts come back as sums of 1s, up to rounding
    if not seen or len(held) == 0:
        return None
    centres = total[held, 1:1 + dim] / holders[held, None]
    second = total[held, 1 + dim:] / holders[held, None]
    spreads = np.sqrt(np.clip(second - centres ** 2, 0.0, None))
    return (torch.as_tensor(centres, dtype=torch.float32),
            torch.as_tensor(spreads, dtype=torch.float32), torch.as_tensor(held))
