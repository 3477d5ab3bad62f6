"""CIFAR-10/100 from tiny python-pickle batches written in the published format."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from fedlite.data import federated_data, load_dataset, sources
from fedlite.data.cifar import LAYOUTS
from fedlite.models import build_model


pytestmark = pytest.mark.usefixtures("fresh_sources")


def _pixels(labels: np.ndarray) -> np.ndarray:
    """N x 3072 rows, channel-major as CIFAR stores them: red = label, green = 100 + label,
    blue varies with the pixel, so the layout and the label alignment can both be checked."""
    rows = np.empty((len(labels), 3, 32, 32), dtype=np.uint8)
    rows[:, 0], rows[:, 1] = labels[:, None, None], 100 + labels[:, None, None]
    rows[:, 2] = (np.arange(1024).reshape(32, 32) % 251)[None]
    return rows.reshape(len(labels), 3072)


def _batch_bytes(labels: np.ndarray, label_key: bytes) -> bytes:
    """Protocol 2 with bytes keys, as the published batches; the array class under numpy 1's
    module name, as numpy 1 wrote it there."""
    batch = {b"batch_label": b"training batch", label_key: labels.tolist(),
             b"data": _pixels(labels), b"filenames": [b"x.png"] * len(labels)}
    raw = pickle.dumps(batch, protocol=2)
    return raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_cifar(directory: Path, name: str = "cifar10", per_batch: int = 40,
                archived: bool = False) -> dict[str, np.ndarray]:
    """The batches of ``name`` in their published folder (or in the published archive)."""
    layout = LAYOUTS[name]
    classes = 10 if name == "cifar10" else 100
    rng = np.random.default_rng(0)
    files = {f: rng.integers(0, classes, per_batch) for f in layout.files}
    directory.mkdir(parents=True, exist_ok=True)
    if archived:
        with tarfile.open(directory / layout.archive, "w:gz") as tar:
            for f, labels in files.items():
                raw = _batch_bytes(labels, layout.label_key)
                info = tarfile.TarInfo(f"{layout.folder}/{f}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
    else:
        (directory / layout.folder).mkdir(exist_ok=True)
        for f, labels in files.items():
            (directory / layout.folder / f).write_bytes(_batch_bytes(labels, layout.label_key))
    return files


@pytest.mark.parametrize("archived", [False, True])
def test_cifar10_batches_in_folder_or_archive(tmp_path, archived):
    # Prepare
    written = write_cifar(tmp_path / "c10", archived=archived)
    # Execute
    data = load_dataset("cifar10", str(tmp_path / "c10"))
    # Assert: five training batches then the test batch, labels in file order
    train_labels = np.concatenate([written[f"data_batch_{i}"] for i in range(1, 6)])
    np.testing.assert_array_equal(data.train_y, train_labels)
    np.testing.assert_array_equal(data.test_y, written["test_batch"])
    assert data.train_x.shape == (200, 3, 32, 32) and data.train_x.dtype == np.float32
    assert data.input_shape == (3, 32, 32)
    # per-channel normalization with the training set's statistics
    np.testing.assert_allclose(data.train_x.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(data.train_x.std(axis=(0, 2, 3)), 1.0, atol=1e-3)
    # channel-major rows: red encodes the label, green the label + 100
    red, green = data.train_x[:, 0, 5, 7], data.train_x[:, 1, 5, 7]
    assert np.corrcoef(red, train_labels)[0, 1] > 0.999
    assert np.corrcoef(green, train_labels)[0, 1] > 0.999
    assert data.train_x[0, 2, 0, 3] < data.train_x[0, 2, 0, 4]  # blue grows along the row


def test_cifar100_fine_labels(tmp_path):
    written = write_cifar(tmp_path / "c100", "cifar100", per_batch=120)
    data = load_dataset("cifar100", str(tmp_path / "c100"))
    np.testing.assert_array_equal(data.train_y, written["train"])
    assert len(data.test_y) == 120 and data.train_y.max() < 100


def test_found_in_the_user_cache_and_in_fedlite_data_dir(tmp_path, monkeypatch):
    write_cifar(sources.CACHE_DIR / "cifar10", archived=True)
    assert len(load_dataset("cifar10").train_y) == 200
    load_dataset.cache_clear()
    monkeypatch.setenv("FEDLITE_DATA_DIR", str(tmp_path / "env"))
    write_cifar(tmp_path / "env" / "cifar10", per_batch=10)
    assert len(load_dataset("cifar10").train_y) == 50  # the environment's comes first


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("cifar100")
    message = str(info.value)
    assert "cifar-100-python.tar.gz" in message and "fedlite download cifar100" in message
    assert str(sources.CACHE_DIR / "cifar100") in message and "data-dir" in message


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    # Prepare: a "batch" whose unpickling would call os.system
    write_cifar(tmp_path / "c10")

    class Evil:
        def __reduce__(self):
            return os.system, ("echo pwned",)

    (tmp_path / "c10" / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(Evil()))
    # Execute / Assert
    with pytest.raises(ValueError, match="test_batch is not a CIFAR python batch.*posix.system"):
        load_dataset("cifar10", str(tmp_path / "c10"))


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
def test_partition_sizes(tmp_path, scheme):
    write_cifar(tmp_path / "c10", per_batch=100)
    fed = federated_data("cifar10", 5, scheme, data_dir=str(tmp_path / "c10"), alpha=0.5)
    sizes = [len(p) for p in fed.partitions]
    assert sum(sizes) == 500 and len(np.unique(np.concatenate(fed.partitions))) == 500
    if scheme == "iid":
        assert sizes == [100] * 5
    else:
        assert min(sizes) >= 10 and max(sizes) > min(sizes)


@pytest.mark.parametrize("model", ["resnet20", "vgg-small", "cnn"])
def test_32x32_models_take_cifar(model):
    net = build_model(model, (3, 32, 32), 100)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
