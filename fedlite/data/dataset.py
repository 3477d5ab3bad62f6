"""The in-memory dataset every loader returns: numpy arrays for training and the central test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Samples and int64 labels, split into training and central test sets.

    Images are float32 (N, C, H, W), standardized; Shakespeare's samples are uint8 windows of
    character ids (N, 80) whose label is the next character.
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    # The natural client of each training sample (Shakespeare: its play and role), for the
    # `natural` partitioner; None when the data has no natural owners.
    owners: np.ndarray | None = None
    # Classes when the labels need not show all of them (a character vocabulary: a small
    # subset of the texts may never end a window with `z`); 0 = largest label + 1.
    classes: int = 0
    # Samples are overlapping windows of texts, in text order: a client's own held-out split
    # is then the tail of its samples, so no held-out label sits inside a training window.
    ordered: bool = False

    @property
    def num_classes(self) -> int:
        return self.classes or int(max(self.train_y.max(), self.test_y.max())) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])


def standardize_channels(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, C, H, W) to float32, each channel standardized by the training set's
    mean and std (the per-channel normalization CIFAR models are trained with)."""
    if train.dtype != np.uint8 or train.ndim != 4:
        raise ValueError(f"expected uint8 images (N, C, H, W), got {train.dtype} {train.shape}")
    # Exact statistics from each channel's 256-bin histogram: no float64 copy of the set
    # (CIFAR-10's would be 1.2 GB).
    values = np.arange(256, dtype=np.float64)
    mean, std = np.empty(train.shape[1]), np.empty(train.shape[1])
    for c in range(train.shape[1]):
        counts = np.bincount(train[:, c].ravel(), minlength=256).astype(np.float64)
        counts /= counts.sum()
        mean[c] = counts @ values
        std[c] = np.sqrt(max(counts @ (values - mean[c]) ** 2, 1e-12))
    return _scaled(train, mean, std), _scaled(test, mean, std)


def _scaled(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    x = images.astype(np.float32)  # in place from here: the float32 copy is the only one
    x -= mean.astype(np.float32)[None, :, None, None]
    x /= std.astype(np.float32)[None, :, None, None]
    return x
