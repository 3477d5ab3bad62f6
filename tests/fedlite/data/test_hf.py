"""Hugging Face datasets (``hf:<name>``) from local copies the test writes with ``datasets``:
a ``save_to_disk`` directory and a parquet directory (read by flwr-datasets' FederatedDataset)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fedlite.data import HFColumns, federated_data

N_TRAIN, N_TEST, CLASSES = 120, 30, 4


def _split(n: int, seed: int, grey: bool):
    """Images whose every pixel is 40 * label + (row index mod 7), so that images and labels
    can be matched after the shuffle and the normalization."""
    from datasets import ClassLabel, Dataset, Features, Image

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    shape = (6, 5) if grey else (6, 5, 3)
    images = [np.full(shape, 40 * y + i % 7, dtype=np.uint8) for i, y in enumerate(labels)]
    features = Features({"img": Image(), "fine": ClassLabel(num_classes=CLASSES)})
    return Dataset.from_dict({"img": images, "fine": labels.tolist()}, features=features)


@pytest.fixture(params=["save_to_disk", "parquet"])
def hf_copy(request, tmp_path):
    """A local copy of a tiny image-classification DatasetDict with splits train and validation."""
    from datasets import DatasetDict

    splits = DatasetDict({"train": _split(N_TRAIN, 0, grey=False),
                          "validation": _split(N_TEST, 1, grey=False)})
    directory = tmp_path / request.param
    if request.param == "save_to_disk":
        splits.save_to_disk(str(directory))
    else:
        directory.mkdir()
        for name, split in splits.items():
            split.to_parquet(str(directory / f"{name}-00000-of-00001.parquet"))
    return directory


COLUMNS = HFColumns(image="img", label="fine", train_split="train", test_split="validation")


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    federated_data.cache_clear()
    yield
    federated_data.cache_clear()


def _load(directory, scheme="iid", clients=4, columns=COLUMNS, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyarrow's and flwr-datasets' notes
        return federated_data("hf:me/tiny", clients, scheme, data_dir=str(directory), seed=seed,
                              hf=columns)


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
def test_arrays_and_partition_sizes(hf_copy, scheme):
    # Execute
    fed = _load(hf_copy, scheme)
    data = fed.dataset
    # Assert: arrays
    assert data.name == "hf:me/tiny"
    assert data.train_x.shape == (N_TRAIN, 3, 6, 5) and data.test_x.shape == (N_TEST, 3, 6, 5)
    assert data.train_x.dtype == np.float32 and data.train_y.dtype == np.int64
    np.testing.assert_allclose(data.train_x.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    # every image still sits next to its own label after the shuffle: pixel 40 * label + 0..6
    # grows with the label, and the normalization keeps the order
    order = np.argsort(data.train_x[:, 0, 0, 0], kind="stable")
    assert np.all(np.diff(data.train_y[order]) >= 0), "labels and images were shuffled apart"
    # Assert: the run's partitioner split every row exactly once
    sizes = [len(p) for p in fed.partitions]
    assert sum(sizes) == N_TRAIN
    np.testing.assert_array_equal(np.sort(np.concatenate(fed.partitions)), np.arange(N_TRAIN))
    if scheme == "iid":
        assert sizes == [N_TRAIN // 4] * 4
        assert all(len(np.unique(data.train_y[p])) >= 3 for p in fed.partitions)
    else:
        assert min(sizes) >= 10 and max(sizes) > min(sizes)


def test_same_seed_same_split_other_seed_other_order(hf_copy):
    first, again, other = _load(hf_copy), _load(hf_copy, clients=4, seed=0), _load(hf_copy, seed=1)
    np.testing.assert_array_equal(first.dataset.train_y, again.dataset.train_y)
    assert not np.array_equal(first.dataset.train_y, other.dataset.train_y)


def test_grey_images_get_one_channel(tmp_path):
    from datasets import DatasetDict

    DatasetDict({"train": _split(40, 0, grey=True), "validation": _split(10, 1, grey=True)}
                ).save_to_disk(str(tmp_path / "grey"))
    assert _load(tmp_path / "grey").dataset.input_shape == (1, 6, 5)


@pytest.mark.parametrize(("change", "key"), [
    ({"image": "image"}, "hf-image-column"), ({"label": "label"}, "hf-label-column"),
    ({"test_split": "test"}, "hf-test-split"), ({"train_split": "training"}, "hf-train-split")])
def test_missing_column_or_split_names_the_key(hf_copy, change, key):
    columns = HFColumns(**{**COLUMNS.__dict__, **change})
    with pytest.raises(ValueError, match=f"run config `{key}`") as info:
        _load(hf_copy, columns=columns)
    message = str(info.value)
    wrong = next(iter(change.values()))
    assert repr(wrong) in message or f"'{wrong}'" in message
    if "column" in key:
        assert "img" in message and "fine" in message  # the columns there are
    else:
        assert "train" in message and "validation" in message  # the splits there are


def test_directory_without_a_copy_names_data_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError,
                       match="run config `data-dir`.*dataset_dict.json.*parquet"):
        _load(tmp_path / "empty")


def test_natural_partitioner_is_refused(hf_copy):
    with pytest.raises(ValueError, match="partitioner `natural`.*choose iid, dirichlet"):
        _load(hf_copy, "natural")


def test_pathological_needs_enough_clients(hf_copy):
    with pytest.raises(ValueError, match="cannot cover 4 classes"):
        federated_data("hf:me/tiny", 1, "pathological", data_dir=str(hf_copy), hf=COLUMNS)
