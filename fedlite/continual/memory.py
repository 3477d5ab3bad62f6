"""The prototype memory a client keeps after each task: one prototype per old class, nothing else
from old data.

The prototype is the REAL sample whose embedding lies nearest the class mean in embedding space
(KR 10-2024-0141487, claim 3); memory keeps the sample and its representation, the embedding
(the space the augmentation vectors live in). The feature vector (the embedding module's input)
is not stored for a real sample: the client has the sample and the extractor, and recomputes it
when needed. With ``continual.augment-centre = class-mean`` the adaptive method also keeps the
class's mean features, which its augmented points then surround. The PASS-style baseline keeps
the class mean of the features instead, and no sample. All of it lives in the client's
``state`` under ``continual/``; per class, for Fashion-MNIST and the continual CNN: the sample
(784 floats), its embedding (64) and the label (plus 128 floats of mean features with the
class-mean centre, and 128 of feature spreads for a distilled student; the baseline: 128 + 64
floats and the label).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from fedlite.continual.model import Branch

PREFIX = "continual/"
KEYS = ("proto-embeddings", "proto-labels")
FEATURES = "proto-features"  # class-mean features (the PASS-style baseline only)
SAMPLES = "proto-samples"  # the prototype inputs themselves (adaptive only)
CENTRES = "proto-centres"  # class-mean features the adaptive augmentation surrounds
SPREADS = "proto-spreads"  # per-dimension std of a class's features: the student's probes


def scalar(value) -> float:
    """A scalar of the client's state. Scalars are stored as shape-(1,) arrays: a 0-d array
    does not survive Flower's ArrayRecord round trip through context.state as 0-d."""
    return float(np.asarray(value).reshape(-1)[0])


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


def spread(features: Tensor) -> Tensor:
    """The per-dimension standard deviation of one class's features (0 for a single sample):
    what the memory keeps per class, and what a client reports of its current classes."""
    return features.std(0) if len(features) > 1 else torch.zeros_like(features[0])


def nearest_to_mean(embeddings: Tensor) -> int:
    """Index of the sample nearest the mean of ``embeddings`` (Euclidean)."""
    mean = embeddings.mean(0, keepdim=True)
    return int(torch.cdist(embeddings, mean).squeeze(1).argmin())


@dataclass
class Prototypes:
    features: Tensor | None  # (K, feature_dim); None where samples stand for them
    embeddings: Tensor  # (K, embed_dim)
    labels: Tensor  # (K,) int64
    samples: Tensor | None = None  # (K, *input_shape): the real samples (None for PASS means)
    # (K, feature_dim): the classes' mean features at their task's end, which the adaptive
    # method's augmented points surround (augment-centre = class-mean); None otherwise
    centres: Tensor | None = None
    # (K, feature_dim): the per-dimension standard deviation of each class's features at its
    # task's end, the shape of the distilled student's probes; None otherwise
    spreads: Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Radii:
    """The PASS radius sqrt(mean_k tr(Sigma_k) / D) of one task's classes, in the feature space
    (the embedding module's input) and in the embedding space."""

    feature: float
    embedding: float


def select(branch: Branch, x: np.ndarray, y: np.ndarray, classes: Sequence[int], *,
           class_mean: bool = False, centres: bool = False, spreads: bool = False,
           device: torch.device | str = "cpu") -> tuple[Prototypes, list[int], Radii]:
    """One prototype per class of ``classes`` that the data holds (with ``centres``, also each
    class's mean features beside its prototype sample; with ``spreads``, each class's
    per-dimension feature standard deviation).

    Returns the prototypes, the classes that had no sample (the caller logs and counts them)
    and the PASS radii of the classes' features and embeddings (0 without data).
    """
    feats, embeds, labels, missing, samples, means, stds = [], [], [], [], [], [], []
    traces: dict[str, list[float]] = {"feature": [], "embedding": []}
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
            embeds.append(z[j])
            samples.append(torch.as_tensor(x[index[j]]))
            if centres:
                means.append(f.mean(0))
            if spreads:
                stds.append(spread(f))
        labels.append(int(c))
        if len(index) > 1:
            traces["feature"].append(float(f.var(0, unbiased=True).sum()))
            traces["embedding"].append(float(z.var(0, unbiased=True).sum()))
    dims = {"feature": branch.embed[0].in_features, "embedding": branch.classifier.in_features}
    radii = Radii(**{space: float(np.sqrt(np.mean(t) / dims[space])) if t else 0.0
                     for space, t in traces.items()})
    if not labels:
        empty = Prototypes(torch.zeros(0, dims["feature"]) if class_mean else None,
                           torch.zeros(0, dims["embedding"]), torch.zeros(0, dtype=torch.long))
        return empty, missing, radii
    return (Prototypes(torch.stack(feats) if class_mean else None, torch.stack(embeds),
                       torch.tensor(labels), torch.stack(samples) if samples else None,
                       torch.stack(means) if means else None,
                       torch.stack(stds) if stds else None),
            missing, radii)


def load(state: MutableMapping[str, np.ndarray]) -> Prototypes | None:
    if PREFIX + "proto-labels" not in state:
        return None
    z, y = (torch.as_tensor(state[PREFIX + k]) for k in KEYS)
    def optional(key: str) -> Tensor | None:
        value = state.get(PREFIX + key)
        return None if value is None else torch.as_tensor(value).float()

    return Prototypes(optional(FEATURES), z.float(), y.long(), optional(SAMPLES),
                      optional(CENTRES), optional(SPREADS))


def store(state: MutableMapping[str, np.ndarray], memory: Prototypes) -> None:
    for key, value in zip(KEYS, (memory.embeddings, memory.labels), strict=True):
        state[PREFIX + key] = value.detach().cpu().numpy().copy()
    # never leave features or samples that belong to another set of labels
    for key, value in ((FEATURES, memory.features), (SAMPLES, memory.samples),
                       (CENTRES, memory.centres), (SPREADS, memory.spreads)):
        if value is not None:
            state[PREFIX + key] = value.detach().cpu().numpy().copy()
        else:
            state.pop(PREFIX + key, None)


def merge(old: Prototypes | None, new: Prototypes) -> Prototypes:
    if old is None or len(old) == 0:
        return new
    if len(new) == 0:  # a client holding no sample of the classes just finished: keeps its own
        return old

    def both(a: Tensor | None, b: Tensor | None) -> Tensor | None:
        return torch.cat([a, b]) if a is not None and b is not None else None

    return Prototypes(both(old.features, new.features),
                      torch.cat([old.embeddings, new.embeddings]),
                      torch.cat([old.labels, new.labels]), both(old.samples, new.samples),
                      both(old.centres, new.centres), both(old.spreads, new.spreads))


@torch.no_grad()
def features_of(branch: Branch, memory: Prototypes) -> Tensor:
    """The prototypes' feature vectors: stored (class means) or the samples' through the
    branch's extractor as it is now (in eval mode; the extractor is frozen after task 0 by
    default, and then these equal the features at the task boundary)."""
    if memory.features is not None:
        return memory.features
    was = branch.training
    branch.eval()
    device = next(branch.parameters()).device
    features = branch.features(memory.samples.to(device)).cpu()
    branch.train(was)
    return features


def centres_of(branch: Branch, memory: Prototypes, features: Tensor | None = None) -> Tensor:
    """What the adaptive method's augmented points surround, in the feature space: the stored
    class means (augment-centre = class-mean), else the prototypes' own features (``features``
    where the caller has just computed them with ``features_of``). The means are the features
    at each task's end; with the extractor frozen after task 0 (the default) they stay exact."""
    if memory.centres is not None:
        return memory.centres
    return features if features is not None else features_of(branch, memory)
