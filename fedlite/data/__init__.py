"""Datasets and their federated split: what each client holds, deterministic from one seed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fedlite.data.dataset import Dataset
from fedlite.data.hf import HFColumns, hf_federated, is_hf
from fedlite.data.partition import (partition_indices, split_tail, split_train_test,
                                    train_cut)
from fedlite.data.sources import download, find_idx_dir, load_dataset, read_idx, resolve_name

__all__ = ["ClientData", "Dataset", "FederatedData", "HFColumns", "download", "federated_data",
           "find_idx_dir", "load_dataset", "partition_indices", "read_idx", "resolve_name",
           "split_tail", "split_train_test"]


@dataclass(frozen=True)
class ClientData:
    """One client's training split and its own held-out test split."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


@dataclass(frozen=True)
class FederatedData:
    dataset: Dataset
    partitions: tuple[np.ndarray, ...]
    test_fraction: float
    seed: int
    train_size: int = 0  # cap on each client's training split (a seeded subset); 0 = all

    @property
    def num_clients(self) -> int:
        return len(self.partitions)

    def train_count(self, client_id: int) -> int:
        """The size of ``client``'s training split, without touching its samples."""
        train = train_cut(len(self.partitions[client_id]), self.test_fraction)
        return min(train, self.train_size) if self.train_size > 0 else train  # as ``client``

    def client(self, client_id: int) -> ClientData:
        if not 0 <= client_id < self.num_clients:
            raise ValueError(f"partition-id {client_id} is outside 0..{self.num_clients - 1}: "
                             "num-clients in the run config must match the number of nodes")
        split = split_tail if self.dataset.ordered else split_train_test
        train, test = split(self.partitions[client_id], self.test_fraction, self.seed, client_id)
        if 0 < self.train_size < len(train):  # smaller benchmarks, same label skew
            rng = np.random.default_rng([self.seed, client_id, 11])
            train = np.sort(rng.choice(train, self.train_size, replace=False))
        d = self.dataset
        return ClientData(d.train_x[train], d.train_y[train], d.train_x[test], d.train_y[test])


DEFAULT_HF_COLUMNS = HFColumns()  # immutable, so one instance serves every call


@lru_cache(maxsize=4)
def federated_data(dataset: str, num_clients: int, partitioner: str, *, alpha: float = 0.5,
                   classes_per_client: int = 2, test_fraction: float = 0.2, seed: int = 0,
                   data_dir: str = "", train_size: int = 0,
                   hf: HFColumns = DEFAULT_HF_COLUMNS) -> FederatedData:
    """Load and partition once per process (Ray workers reuse it across messages).

    ``hf`` names the columns and splits of a Hugging Face dataset (``hf:<name>``), which
    flwr-datasets loads and partitions together.
    """
    if is_hf(dataset):
        data, parts = hf_federated(dataset, hf, data_dir, num_clients, partitioner, alpha=alpha,
                                   classes_per_client=classes_per_client, seed=seed)
    else:
        data = load_dataset(dataset, data_dir or None)
        parts = partition_indices(data.train_y, num_clients, partitioner, alpha=alpha,
                                  classes_per_client=classes_per_client, seed=seed,
                                  owners=data.owners)
    return FederatedData(data, tuple(parts), test_fraction, seed, train_size)
