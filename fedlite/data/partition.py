"""Split a labelled training set among clients with flwr-datasets' partitioners.

The partitioners run on an index-only ``datasets.Dataset`` (pixels stay in numpy). The
result is cached on disk, keyed by everything that defines it, so Ray workers and repeated
runs read the indices instead of importing ``datasets`` and partitioning again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

CACHE_VERSION = 2  # bump when a scheme's output changes, so stale cached splits are not reused
CACHE_DIR = Path(os.environ.get("FEDLITE_CACHE_DIR", Path.home() / ".cache" / "fedlite")) / "partitions"


def partition_indices(labels: np.ndarray, num_clients: int, scheme: str, *, alpha: float = 0.5,
                      classes_per_client: int = 2, seed: int = 0) -> list[np.ndarray]:
    """Indices into ``labels`` for each client; deterministic from ``seed``."""
    if num_clients > len(labels):
        raise ValueError(f"num-clients={num_clients} is more than the {len(labels)} training "
                         "samples: lower `num-clients` or use a larger dataset")
    key = _cache_key(labels, num_clients, scheme, alpha, classes_per_client, seed)
    cached = CACHE_DIR / f"{key}.npz"
    if cached.is_file():
        with np.load(cached) as stored:
            return [stored[f"client{i}"] for i in range(num_clients)]
    parts = _partition(labels, num_clients, scheme, alpha, classes_per_client, seed)
    empty = [i for i, part in enumerate(parts) if len(part) == 0]
    if empty:
        raise ValueError(f"partitioner `{scheme}` left clients {empty[:5]} without data: "
                         "use fewer clients, a larger `dirichlet-alpha`, or more classes per client")
    _store(cached, parts)
    return parts


def split_train_test(indices: np.ndarray, test_fraction: float, seed: int,
                     client: int) -> tuple[np.ndarray, np.ndarray]:
    """A client's own held-out split (personalized models are evaluated on it)."""
    rng = np.random.default_rng([seed, client, 7])
    shuffled = rng.permutation(indices)
    cut = len(shuffled) - int(round(test_fraction * len(shuffled)))
    return np.sort(shuffled[:cut]), np.sort(shuffled[cut:])


def _partition(labels, num_clients, scheme, alpha, classes_per_client, seed) -> list[np.ndarray]:
    # Deferred: `datasets` takes seconds to import and the cache usually makes it unnecessary.
    from datasets import Dataset
    from flwr_datasets.partitioner import (DirichletPartitioner, IidPartitioner,
                                           PathologicalPartitioner)

    if scheme == "iid":
        partitioner = IidPartitioner(num_partitions=num_clients)
    elif scheme == "dirichlet":
        partitioner = DirichletPartitioner(
            num_partitions=num_clients, partition_by="label", alpha=alpha,
            min_partition_size=min(10, len(labels) // num_clients), self_balancing=True, seed=seed)
    elif scheme == "pathological":
        num_classes = int(labels.max()) + 1
        if not 1 <= classes_per_client <= num_classes:
            raise ValueError(f"classes-per-client={classes_per_client} must be in 1..{num_classes}")
        if num_clients * classes_per_client < num_classes:
            raise ValueError(f"{num_clients} clients x classes-per-client={classes_per_client} "
                             f"cannot cover {num_classes} classes: raise num-clients or "
                             "classes-per-client")
        partitioner = PathologicalPartitioner(
            num_partitions=num_clients, partition_by="label",
            num_classes_per_partition=classes_per_client, class_assignment_mode="first-deterministic",
            seed=seed)
    else:
        raise ValueError(f"unknown partitioner {scheme!r}: choose iid, dirichlet or pathological")
    # IidPartitioner cuts contiguous shards in dataset order and takes no seed: shuffle the
    # rows first so an iid split is random and follows `seed` like the other schemes.
    order = (np.random.default_rng(seed).permutation(len(labels)) if scheme == "iid"
             else np.arange(len(labels)))
    partitioner.dataset = Dataset.from_dict({"label": labels[order].tolist(),
                                             "idx": order.tolist()})
    try:
        return [np.sort(np.asarray(partitioner.load_partition(i)["idx"], dtype=np.int64))
                for i in range(num_clients)]
    except ValueError as err:
        raise ValueError(f"partitioner `{scheme}` failed for {num_clients} clients: {err}. "
                         "Use fewer clients or a larger `dirichlet-alpha`") from None


def _cache_key(labels, *settings) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(labels).tobytes())
    digest.update(repr((CACHE_VERSION, *settings)).encode())
    return digest.hexdigest()[:24]


def _store(path: Path, parts: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(partial, **{f"client{i}": part for i, part in enumerate(parts)})
    os.replace(partial, path)  # atomic: a concurrent reader sees all or nothing
