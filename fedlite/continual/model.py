"""The first model (feature extractor -> embedding module -> classifier) and a smaller second
model with the same three parts, held together so both travel as one state dict
(keys ``teacher.*`` and ``student.*``).

The classifier "grows" by masking: it is allocated for every class of the dataset, and logits of
classes not yet seen are replaced by a large negative constant. Growing = unmasking the new
classes; it touches no weight, so old-class logits are unchanged at the moment of growth, and
FedAvg always averages arrays of one fixed shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

UNSEEN_LOGIT = -1e4  # finite, so cross-entropy and softmax stay free of NaN


class Branch(nn.Module):
    """Conv feature extractor -> embedding module -> masked linear classifier.

    ``forward`` keeps ``cache = (features, embedding)`` of its last call, so loss terms of the
    training loop reuse them instead of a second forward.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int, *, width: int,
                 feature_dim: int, embed_dim: int) -> None:
        super().__init__()
        pool = 2 if image_size >= 16 else 1  # 8x8 digits keep their resolution
        side = image_size // pool // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(pool),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * side * side, feature_dim), nn.ReLU())
        self.embed = nn.Sequential(nn.Linear(feature_dim, embed_dim), nn.ReLU(),
                                   nn.Linear(embed_dim, embed_dim))
        self.classifier = nn.Linear(embed_dim, num_classes)
        self.num_classes = num_classes
        self.seen: Tensor | None = None  # None: every class is active (a plain classifier)
        self.cache: tuple[Tensor, Tensor] | None = None

    def set_seen(self, classes: Sequence[int] | None) -> None:
        if classes is None:
            self.seen = None
            return
        mask = torch.zeros(self.num_classes, dtype=torch.bool)
        mask[list(classes)] = True
        self.seen = mask

    def head(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """(embedding, masked logits) of feature vectors (real or augmented)."""
        z = self.embed(features)
        return z, self.mask(self.classifier(z))

    def mask(self, logits: Tensor) -> Tensor:
        if self.seen is None:
            return logits
        seen = self.seen.to(logits.device)
        return logits.masked_fill(~seen, UNSEEN_LOGIT)

    def forward(self, x: Tensor) -> Tensor:
        f = self.features(x)
        z, logits = self.head(f)
        self.cache = (f, z)
        return logits


class ContinualNet(nn.Module):
    """Teacher (first model) and student (second, smaller model); ``forward`` is the teacher's."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int,
                 feature_dim: int = 128, embed_dim: int = 64) -> None:
        super().__init__()
        channels, size = input_shape[0], input_shape[1]
        self.teacher = Branch(channels, size, num_classes, width=16,
                              feature_dim=feature_dim, embed_dim=embed_dim)
        # Same feature and embedding widths (so the student can consume the teacher's
        # prototypes and match its embeddings), a narrower conv stack: about 1/4 the parameters.
        self.student = Branch(channels, size, num_classes, width=4,
                              feature_dim=feature_dim, embed_dim=embed_dim)

    def set_seen(self, classes: Sequence[int] | None) -> None:
        self.teacher.set_seen(classes)
        self.student.set_seen(classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.teacher(x)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
