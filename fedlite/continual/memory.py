"""The prototype memory a client keeps after each task: one prototype per old class, nothing else
from old data.

The prototype is the REAL sample whose embedding lies nearest the class mean in embedding space
(KR 10-2024-0141487, claim 3); memory keeps the sample and its representation: the feature
vector (the embedding module's input, so an adjusted embedding module can re-embed it) and its
embedding.
The PASS-style baseline keeps the class mean of the features instead, and no sample. All of it
lives in the client's ``state`` under ``continual/`` (a few KB a class: 128 + 64 floats and
the sample, 784 floats for Fashion-MNIST).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fedlite.continual.model import Branch

PREFIX = "continual/"
KEYS = ("proto-features", "proto-embeddings", "proto-labels")
SAMPLES = "proto-samples"  # the prototype inputs themselves (adaptive only)


@torch.no_grad()
def represent(branch: Branch, x: np.ndarray | Tensor, batch_size: int = 512,
              device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """(features, embeddings) of every sample, in eval mode."""
    branch.eval()
    x = torch.as_tensor(x)
    feats, embeds = [], []
    for start in range(0, len(x), batch_size):
        f = branch.features(x[start:start + batch_size].to(device))
        feats.append(f.cpu())
        embeds.append(branch.embed(f).cpu())
    return torch.cat(feats), torch.cat(embeds)


def nearest_to_mean(embeddings: Tensor) -> int:
    """Index of the sample nearest the mean of ``embeddings`` (Euclidean)."""
    mean = embeddings.mean(0, keepdim=True)
    return int(torch.cdist(embeddings, mean).squeeze(1).argmin())


@dataclass
class Prototypes:
    features: Tensor  # (K, feature_dim)
    embeddings: Tensor  # (K, embed_dim)
    labels: Tensor  # (K,) int64
    samples: Tensor | None = None  # (K, *input_shape): the real samples (None for PASS means)

    def __len__(self) -> int:
        return len(self.labels)


def select(branch: Branch, x: np.ndarray, y: np.ndarray, classes: Sequence[int], *,
           class_mean: bool = False, device: torch.device | str = "cpu"
           ) -> tuple[Prototypes, list[int], float]:
    """One prototype per class of ``classes`` that the data holds.

    Returns the prototypes, the classes that had no sample (the caller logs and counts them)
    and the PASS radius sqrt(mean_k tr(Sigma_k) / D) of the features (0 without data).
    """
    feats, embeds, labels, missing, traces, samples = [], [], [], [], [], []
    y = np.asarray(y)
    for c in classes:
        index = np.flatnonzero(y == c)
        if len(index) == 0:
            missing.append(int(c))
            continue
        f, z = represent(branch, x[index], device=device)
        if class_mean:  # PASS: the mean feature, no real sample
            feats.append(f.mean(0))
            embeds.append(branch.embed(f.mean(0, keepdim=True).to(device)).detach().cpu()[0])
        else:
            j = nearest_to_mean(z)
            feats.append(f[j])
            embeds.append(z[j])
            samples.append(torch.as_tensor(x[index[j]]))
        labels.append(int(c))
        if len(index) > 1:
            traces.append(float(f.var(0, unbiased=True).sum()))
    dim = branch.embed[0].in_features
    radius = float(np.sqrt(np.mean(traces) / dim)) if traces else 0.0
    if not labels:
        empty = Prototypes(torch.zeros(0, dim), torch.zeros(0, branch.classifier.in_features),
                           torch.zeros(0, dtype=torch.long))
        return empty, missing, radius
    return (Prototypes(torch.stack(feats), torch.stack(embeds), torch.tensor(labels),
                       torch.stack(samples) if samples else None), missing, radius)


def load(state: MutableMapping[str, np.ndarray]) -> Prototypes | None:
    if PREFIX + "proto-labels" not in state:
        return None
    f, z, y = (torch.as_tensor(state[PREFIX + k]) for k in KEYS)
    samples = state.get(PREFIX + SAMPLES)
    return Prototypes(f.float(), z.float(), y.long(),
                      None if samples is None else torch.as_tensor(samples).float())


def store(state: MutableMapping[str, np.ndarray], memory: Prototypes) -> None:
    for key, value in zip(KEYS, (memory.features, memory.embeddings, memory.labels), strict=True):
        state[PREFIX + key] = value.detach().cpu().numpy().copy()
    if memory.samples is not None:
        state[PREFIX + SAMPLES] = memory.samples.detach().cpu().numpy().copy()
    else:  # never leave samples that belong to another set of labels
        state.pop(PREFIX + SAMPLES, None)


def merge(old: Prototypes | None, new: Prototypes) -> Prototypes:
    if old is None or len(old) == 0:
        return new
    both = old.samples is not None and new.samples is not None
    return Prototypes(torch.cat([old.features, new.features]),
                      torch.cat([old.embeddings, new.embeddings]),
                      torch.cat([old.labels, new.labels]),
                      torch.cat([old.samples, new.samples]) if both else None)
