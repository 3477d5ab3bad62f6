"""Any Hugging Face image-classification dataset, through flwr-datasets: ``dataset = "hf:<name>"``.

From the hub (needs internet) or from a parquet directory in ``data-dir`` the split is loaded by
``flwr_datasets.FederatedDataset`` with the run's partitioner on the training split; a copy
written by ``datasets.save_to_disk`` is read with ``datasets.load_from_disk`` and given to the
same partitioner. Either way each split is shuffled with the run's seed (IidPartitioner cuts
contiguous shards), a row-index column ties every partition to the numpy arrays, and the
images are normalized per channel as CIFAR's are.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedlite.data.dataset import Dataset, standardize_channels
from fedlite.data.partition import check_classes, check_nonempty, make_partitioner, read_partitions

PREFIX = "hf:"
ROW = "__fedlite_row__"  # the row-index column added to every split


@dataclass(frozen=True)
class HFColumns:
    """Run-config keys ``hf-image-column``, ``hf-label-column``, ``hf-train-split``,
    ``hf-test-split``: where a Hugging Face dataset keeps its images, labels and splits."""

    image: str = "image"
    label: str = "label"
    train_split: str = "train"
    test_split: str = "test"


def is_hf(name: str) -> bool:
    return name.startswith(PREFIX)


def hf_federated(name: str, columns: HFColumns, data_dir: str, num_clients: int, scheme: str, *,
                 alpha: float, classes_per_client: int, seed: int
                 ) -> tuple[Dataset, list[np.ndarray]]:
    """The dataset's arrays and each client's row indices into its training split."""
    repo = name.removeprefix(PREFIX)
    if not repo:
        raise ValueError("run config `dataset`: give the Hugging Face dataset after the "
                         "prefix, e.g. hf:uoft-cs/cifar10")
    if scheme == "natural":
        raise ValueError(f"partitioner `natural` is for datasets with natural clients "
                         f"(shakespeare); for {name} choose iid, dirichlet or pathological")
    partitioner = make_partitioner(scheme, num_clients, alpha=alpha,
                                   classes_per_client=classes_per_client, seed=seed,
                                   min_partition_size=10, label_column=columns.label)
    with _quiet():
        train, test, partitions = _splits(repo, columns, data_dir, partitioner, seed)
        for split, key in ((train, columns.train_split), (test, columns.test_split)):
            for column, config_key in ((columns.image, "hf-image-column"),
                                       (columns.label, "hf-label-column")):
                if column not in split.column_names:
                    present = ", ".join(c for c in split.column_names if c != ROW)
                    raise ValueError(f"run config `{config_key}`: split {key!r} of {name} has "
                                     f"no column {column!r}; its columns are {present}: set "
                                     f"`{config_key}` to one of them")
        train_x, test_x = standardize_channels(_images(train, columns.image, name),
                                               _images(test, columns.image, name))
        train_y, test_y = _labels(train, test, columns.label, name)
        if num_clients > len(train_y):
            raise ValueError(f"num-clients={num_clients} is more than the {len(train_y)} "
                             f"training samples of {name}: lower `num-clients`")
        check_classes(train_y, num_clients, scheme, classes_per_client)
        parts = read_partitions(partitions, num_clients, scheme, ROW)
    check_nonempty(parts, scheme)
    return Dataset(name, train_x, train_y, test_x, test_y), parts


def _splits(repo: str, columns: HFColumns, data_dir: str, partitioner, seed: int):
    """The (shuffled, row-indexed) training and test splits, and what loads the partitions of
    the first: the FederatedDataset, or the partitioner given the split."""
    import datasets
    from flwr_datasets import FederatedDataset

    if data_dir:
        directory = Path(data_dir)
        if (directory / "dataset_dict.json").is_file():  # datasets.save_to_disk of a DatasetDict
            splits = datasets.load_from_disk(str(directory))
            for split, key in ((columns.train_split, "hf-train-split"),
                               (columns.test_split, "hf-test-split")):
                _check_split(split, key, list(splits), f"{directory}")
            splits = _with_rows(splits.shuffle(seed=seed))
            partitioner.dataset = splits[columns.train_split]
            return splits[columns.train_split], splits[columns.test_split], partitioner
        if not any(directory.rglob("*.parquet")):
            raise FileNotFoundError(
                f"run config `data-dir`: {directory} holds neither a datasets.save_to_disk "
                "copy (dataset_dict.json) nor parquet files (train-*.parquet, test-*.parquet)")
        source = {"dataset": "parquet", "data_dir": str(directory)}
    else:
        source = {"dataset": repo}
    federated = FederatedDataset(**source, partitioners={columns.train_split: partitioner},
                                 shuffle=True, seed=seed, preprocessor=_with_rows)
    loaded = []
    for split, key in ((columns.train_split, "hf-train-split"),
                       (columns.test_split, "hf-test-split")):
        try:
            loaded.append(federated.load_split(split))
        except ValueError as err:  # flwr-datasets names the splits there are
            raise ValueError(f"run config `{key}`: {err} Set `{key}` to one of them") from None
    return (*loaded, federated)


def _check_split(split: str, key: str, present: list[str], where: str) -> None:
    if split not in present:
        raise ValueError(f"run config `{key}`: {where} has no split {split!r}; its splits are "
                         f"{', '.join(present)}: set `{key}` to one of them")


def _with_rows(splits):
    from datasets import DatasetDict

    return DatasetDict({name: split.add_column(ROW, np.arange(len(split)))
                        for name, split in splits.items()})


def _images(split, column: str, name: str) -> np.ndarray:
    """uint8 images (N, C, H, W) from an ``Image`` column (decoded with one mode for all) or an
    array column (H, W) / (H, W, C)."""
    from datasets import Image

    feature = split.features[column]
    if isinstance(feature, Image) and len(split):
        # e.g. a stray L image in an RGB split
        split = split.cast_column(column, Image(mode=split[0][column].mode))
    try:
        images = np.asarray(split.with_format("numpy")[column])
    except (TypeError, ValueError) as err:
        raise ValueError(f"run config `hf-image-column`: {name}'s column {column!r} does not "
                         f"stack into one array ({err}); its images must share one size") from None
    if images.dtype == object or images.ndim not in (3, 4):
        raise ValueError(f"run config `hf-image-column`: {name}'s column {column!r} holds "
                         f"{images.dtype} of shape {images.shape[1:]}, not images of one size")
    if not np.issubdtype(images.dtype, np.integer) or images.min() < 0 or images.max() > 255:
        raise ValueError(f"run config `hf-image-column`: {name}'s column {column!r} holds "
                         f"{images.dtype} values, not 8-bit pixels")
    images = images.astype(np.uint8, copy=False)
    return images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)


def _labels(train, test, column: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """int64 class ids; string labels are numbered in sorted order."""
    raw = [np.asarray(split.with_format("numpy")[column]) for split in (train, test)]
    if all(np.issubdtype(r.dtype, np.integer) for r in raw):
        if min(r.min() for r in raw if len(r)) < 0:
            raise ValueError(f"run config `hf-label-column`: {name}'s column {column!r} has "
                             "negative labels (unlabelled rows?)")
        return tuple(r.astype(np.int64) for r in raw)
    if not all(r.dtype.kind in "UO" for r in raw):
        raise ValueError(f"run config `hf-label-column`: {name}'s column {column!r} holds "
                         f"{raw[0].dtype}, not class labels")
    names = np.unique(np.concatenate(raw).astype(str))
    return tuple(np.searchsorted(names, r.astype(str)).astype(np.int64) for r in raw)


@contextmanager
def _quiet():
    """No progress bars from `datasets` while a run loads its data."""
    import datasets
    from datasets.utils import logging as datasets_logging

    shown = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    level = datasets_logging.get_verbosity()
    datasets_logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets_logging.set_verbosity(level)
        if shown:
            datasets.enable_progress_bars()
