"""Split a labelled training set among clients with flwr-datasets' partitioners.

The partitioners run on an index-only ``datasets.Dataset`` (pixels stay in numpy). The
result is cached on disk, keyed by everything that defines it, so Ray workers and repeated
runs read the indices instead of importing ``datasets`` and partitioning again. A dataset
whose samples have natural owners (Shakespeare's roles) also splits by owner (``natural``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

CACHE_VERSION = 2  # bump when a scheme's output changes, so stale cached splits are not reused
CACHE_DIR = (Path(os.environ.get("FEDLITE_CACHE_DIR", Path.home() / ".cache" / "fedlite"))
             / "partitions")


def partition_indices(labels: np.ndarray, num_clients: int, scheme: str, *, alpha: float = 0.5,
                      classes_per_client: int = 2, seed: int = 0,
                      owners: np.ndarray | None = None) -> list[np.ndarray]:
    """Indices into ``labels`` for each client; deterministic from ``seed``.

    ``owners`` (one integer per sample) names each sample's natural client, for the
    ``natural`` scheme.
    """
    if num_clients > len(labels):
        raise ValueError(f"num-clients={num_clients} is more than the {len(labels)} training "
                         "samples: lower `num-clients` or use a larger dataset")
    if scheme == "natural" and owners is None:
        raise ValueError("partitioner `natural` needs a dataset whose samples have natural "
                         "clients (shakespeare: one per play and role); choose iid, dirichlet "
                         "or pathological for this one")
    natural = (_digest(owners),) if scheme == "natural" else ()
    key = _cache_key(labels, num_clients, scheme, alpha, classes_per_client, seed, *natural)
    cached = CACHE_DIR / f"{key}.npz"
    if cached.is_file():
        with np.load(cached) as stored:
            return [stored[f"client{i}"] for i in range(num_clients)]
    if scheme == "natural":
        parts = natural_partitions(owners, num_clients, seed)
    else:
        parts = _partition(labels, num_clients, scheme, alpha, classes_per_client, seed)
    check_nonempty(parts, scheme)
    _store(cached, parts)
    return parts


def check_nonempty(parts: list[np.ndarray], scheme: str) -> None:
    empty = [i for i, part in enumerate(parts) if len(part) == 0]
    if empty:
        raise ValueError(f"partitioner `{scheme}` left clients {empty[:5]} without data: "
                         "use fewer clients, a larger `dirichlet-alpha`, "
                         "or more classes per client")


def natural_partitions(owners: np.ndarray, num_clients: int, seed: int) -> list[np.ndarray]:
    """One client per natural owner; with fewer clients than owners, a seeded sample of them.

    Written in numpy rather than with flwr-datasets' NaturalIdPartitioner, which walks every
    row in Python (8 s for 160,000 rows on 2 cores, so minutes for Shakespeare's 3.18 M
    windows).
    """
    present = np.unique(owners)
    if num_clients > len(present):
        raise ValueError(f"num-clients={num_clients} is more than the {len(present)} natural "
                         "clients of this dataset (partitioner `natural`): lower `num-clients`")
    chosen = np.sort(np.random.default_rng([seed, 13]).choice(present, num_clients, replace=False))
    order = np.argsort(owners, kind="stable")
    bounds = np.searchsorted(owners[order], np.stack([chosen, chosen + 1]))
    return [np.sort(order[start:end]).astype(np.int64) for start, end in bounds.T]


def train_cut(size: int, test_fraction: float) -> int:
    """How many of a client's ``size`` samples train: the rest, rounded, are its test split."""
    return size - int(round(test_fraction * size))


def split_train_test(indices: np.ndarray, test_fraction: float, seed: int,
                     client: int) -> tuple[np.ndarray, np.ndarray]:
    """A client's own held-out split (personalized models are evaluated on it)."""
    rng = np.random.default_rng([seed, client, 7])
    shuffled = rng.permutation(indices)
    cut = train_cut(len(shuffled), test_fraction)
    return np.sort(shuffled[:cut]), np.sort(shuffled[cut:])


def make_partitioner(scheme: str, num_clients: int, *, alpha: float, classes_per_client: int,
                     seed: int, min_partition_size: int, label_column: str = "label"):
    """The flwr-datasets partitioner a run's ``partitioner`` names (``natural`` excepted)."""
    from flwr_datasets.partitioner import (DirichletPartitioner, IidPartitioner,
                                           PathologicalPartitioner)

    if scheme == "iid":
        return IidPartitioner(num_partitions=num_clients)
    if scheme == "dirichlet":
        return DirichletPartitioner(
            num_partitions=num_clients, partition_by=label_column, alpha=alpha,
            min_partition_size=min_partition_size, self_balancing=True, seed=seed)
    if scheme == "pathological":
        return PathologicalPartitioner(
            num_partitions=num_clients, partition_by=label_column,
            num_classes_per_partition=classes_per_client,
            class_assignment_mode="first-deterministic", seed=seed)
    raise ValueError(f"unknown partitioner {scheme!r}: choose iid, dirichlet, pathological "
                     "or natural")


def check_classes(labels: np.ndarray, num_clients: int, scheme: str,
                  classes_per_client: int) -> None:
    """The pathological split needs 1..C classes per client and enough clients for C classes."""
    if scheme != "pathological":
        return
    num_classes = int(labels.max()) + 1
    if not 1 <= classes_per_client <= num_classes:
        raise ValueError(f"classes-per-client={classes_per_client} must be in 1..{num_classes}")
    if num_clients * classes_per_client < num_classes:
        raise ValueError(f"{num_clients} clients x classes-per-client={classes_per_client} "
                         f"cannot cover {num_classes} classes: raise num-clients or "
                         "classes-per-client")


def read_partitions(partitioner, num_clients: int, scheme: str, column: str) -> list[np.ndarray]:
    """Each partition's ``column`` (the row indices it holds), sorted, as int64; ``partitioner``
    is a flwr-datasets Partitioner or FederatedDataset (anything with ``load_partition``)."""
    try:
        return [np.sort(np.asarray(partitioner.load_partition(i)[column], dtype=np.int64))
                for i in range(num_clients)]
    except ValueError as err:
        fix = {"dirichlet": "fewer clients or a larger `dirichlet-alpha`",
               "pathological": "fewer clients or a larger `classes-per-client`"}
        raise ValueError(f"partitioner `{scheme}` could not split the data among {num_clients} "
                         f"clients (flwr-datasets: {str(err).rstrip('. ')}): use "
                         f"{fix.get(scheme, 'fewer clients')}") from None


def split_tail(indices: np.ndarray, test_fraction: float, seed: int,
               client: int) -> tuple[np.ndarray, np.ndarray]:
    """A client's held-out split as the tail of its (sorted) samples: for windows of a text,
    where a random split would test on windows shifted one character from training ones."""
    del seed, client  # the same signature as split_train_test; nothing is drawn
    cut = train_cut(len(indices), test_fraction)
    return indices[:cut], indices[cut:]


def _partition(labels, num_clients, scheme, alpha, classes_per_client, seed) -> list[np.ndarray]:
    # Deferred: `datasets` takes seconds to import and the cache usually makes it unnecessary.
    from datasets import Dataset

    partitioner = make_partitioner(scheme, num_clients, alpha=alpha,
                                   classes_per_client=classes_per_client, seed=seed,
                                   min_partition_size=min(10, len(labels) // num_clients))
    check_classes(labels, num_clients, scheme, classes_per_client)
    # IidPartitioner cuts contiguous shards in dataset order and takes no seed: shuffle the
    # rows first so an iid split is random and follows `seed` like the other schemes.
    order = (np.random.default_rng(seed).permutation(len(labels)) if scheme == "iid"
             else np.arange(len(labels)))
    partitioner.dataset = Dataset.from_dict({"label": labels[order].tolist(),
                                             "idx": order.tolist()})
    return read_partitions(partitioner, num_clients, scheme, "idx")


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:24]


def _cache_key(labels, *settings) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(labels).tobytes())
    digest.update(repr((CACHE_VERSION, *settings)).encode())
    return digest.hexdigest()[:24]


def _store(path: Path, parts: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(partial, **{f"client{i}": part for i, part in enumerate(parts)})
    os.replace(partial, path)  # atomic: a concurrent reader sees all or nothing
