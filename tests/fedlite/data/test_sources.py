"""Dataset sources: digits, the IDX parser, the directory search and its error message."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from fedlite.data import sources
from fedlite.data.sources import (IDX_FILES, find_idx_dir, load_dataset, read_idx, resolve_name,
                                  search_dirs)


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx_set(directory: Path, n_train: int = 6, n_test: int = 4, side: int = 28,
                   gz: bool = False) -> dict[str, np.ndarray]:
    """Write the four IDX files of a tiny fake MNIST-style dataset; return what was written."""
    rng = np.random.default_rng(0)
    arrays = {"train-x": rng.integers(0, 256, (n_train, side, side)),
              "train-y": np.arange(n_train) % 10,
              "test-x": rng.integers(0, 256, (n_test, side, side)),
              "test-y": np.arange(n_test) % 10}
    directory.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_FILES.items():
        raw = _idx_bytes(arrays[key])
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / stem).write_bytes(raw)
    return arrays


@pytest.fixture
def isolated_dirs(tmp_path, monkeypatch):
    """No real dataset directory is searched: system and cache dirs are empty temp dirs."""
    monkeypatch.setattr(sources, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setattr(sources, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv("FEDLITE_DATA_DIR", raising=False)
    load_dataset.cache_clear()
    yield tmp_path
    load_dataset.cache_clear()


def test_digits_shapes_dtypes_and_standardization(digits):
    assert digits.name == "digits"
    assert digits.train_x.shape == (1437, 1, 8, 8) and digits.test_x.shape == (360, 1, 8, 8)
    assert digits.train_x.dtype == np.float32 and digits.train_y.dtype == np.int64
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert digits.train_x.min() >= -1.0 and digits.train_x.max() <= 1.0
    np.testing.assert_allclose(digits.train_x.min(), -1.0)
    np.testing.assert_allclose(digits.train_x.max(), 1.0)
    assert set(np.unique(digits.train_y)) == set(range(10))


def test_digits_is_deterministic(digits):
    # Execute: bypass the in-process cache
    again = sources._load_digits()
    # Assert
    np.testing.assert_array_equal(again.train_x, digits.train_x)
    np.testing.assert_array_equal(again.test_y, digits.test_y)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_plain_and_gzip(tmp_path, gz):
    # Prepare
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    raw = _idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    # Execute
    read = read_idx(path)
    # Assert
    assert read.dtype == np.uint8
    np.testing.assert_array_equal(read, array)


def test_read_idx_one_dimensional_labels(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(_idx_bytes(np.array([3, 1, 4, 1, 5])))
    np.testing.assert_array_equal(read_idx(path), [3, 1, 4, 1, 5])


def test_read_idx_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(_idx_bytes(np.zeros((2, 3, 4)))[:-5])
    with pytest.raises(ValueError, match=r"short is truncated: header says \(2, 3, 4\)"):
        read_idx(path)


@pytest.mark.parametrize("raw", [b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00", b"PK\x03\x04....",
                                 b"\x00"])
def test_read_idx_bad_magic_is_a_clear_error(tmp_path, raw):
    path = tmp_path / "bad"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx(path)


def test_load_idx_dataset_from_explicit_dir(isolated_dirs):
    # Prepare
    written = _write_idx_set(isolated_dirs / "mine", gz=True)
    # Execute
    data = load_dataset("mnist", str(isolated_dirs / "mine"))
    # Assert
    assert data.name == "mnist"
    assert data.train_x.shape == (6, 1, 28, 28) and data.test_x.shape == (4, 1, 28, 28)
    assert data.train_x.dtype == np.float32 and data.train_y.dtype == np.int64
    np.testing.assert_allclose(data.train_x[:, 0], (written["train-x"] / 255.0 - 0.5) / 0.5,
                               atol=1e-6)
    np.testing.assert_array_equal(data.test_y, written["test-y"])


def test_search_order(isolated_dirs, monkeypatch):
    # Prepare
    env = isolated_dirs / "env"
    monkeypatch.setenv("FEDLITE_DATA_DIR", str(env))
    explicit = isolated_dirs / "explicit"
    # Assert: explicit dir, $FEDLITE_DATA_DIR/<name>, the system dir, the user cache
    assert search_dirs("mnist", explicit) == [explicit, env / "mnist", sources.SYSTEM_DIR / "mnist",
                                              sources.CACHE_DIR / "mnist"]
    assert search_dirs("mnist") == [env / "mnist", sources.SYSTEM_DIR / "mnist",
                                    sources.CACHE_DIR / "mnist"]


def test_find_idx_dir_search_order_and_explicit_dir(isolated_dirs, monkeypatch):
    # Prepare: files in the cache and in $FEDLITE_DATA_DIR; an incomplete explicit dir
    _write_idx_set(sources.CACHE_DIR / "mnist")
    assert find_idx_dir("mnist") == sources.CACHE_DIR / "mnist"
    _write_idx_set(sources.SYSTEM_DIR / "mnist", gz=True)
    assert find_idx_dir("mnist") == sources.SYSTEM_DIR / "mnist"
    monkeypatch.setenv("FEDLITE_DATA_DIR", str(isolated_dirs / "env"))
    _write_idx_set(isolated_dirs / "env" / "mnist")
    assert find_idx_dir("mnist") == isolated_dirs / "env" / "mnist"
    incomplete = isolated_dirs / "explicit"
    _write_idx_set(incomplete)
    (incomplete / IDX_FILES["test-y"]).unlink()
    # Execute / Assert: an explicit directory is the only place looked in
    assert find_idx_dir("mnist", incomplete) is None
    _write_idx_set(incomplete)
    assert find_idx_dir("mnist", incomplete) == incomplete


def test_missing_files_name_dataset_dirs_and_fix(isolated_dirs):
    explicit = isolated_dirs / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("fashion-mnist", str(explicit))
    assert str(explicit) in str(info.value)  # an explicit data-dir is the only place looked in
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("fashion-mnist")
    message = str(info.value)
    assert message.startswith("fashion-mnist IDX files not found")
    for directory in (sources.SYSTEM_DIR / "fashion-mnist", sources.CACHE_DIR / "fashion-mnist"):
        assert str(directory) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "fedlite download fashion-mnist" in message and "data-dir" in message


def test_missing_mnist_has_no_apt_hint(isolated_dirs):
    with pytest.raises(FileNotFoundError, match="mnist IDX files not found") as info:
        load_dataset("mnist")
    assert "apt-get" not in str(info.value)
    assert "fedlite download mnist" in str(info.value)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'.*digits, fashion-mnist, mnist, "
                                         "cifar10, cifar100, shakespeare or hf:<name>"):
        load_dataset("cifar")


def test_resolve_name(isolated_dirs, monkeypatch):
    assert resolve_name("digits") == "digits"
    assert resolve_name("mnist") == "mnist"
    assert resolve_name("auto") == "digits"  # nothing found
    _write_idx_set(isolated_dirs / "fm")
    with pytest.raises(ValueError, match="dataset=auto cannot be combined with data-dir"):
        resolve_name("auto", str(isolated_dirs / "fm"))  # MNIST and Fashion-MNIST look alike
    monkeypatch.setenv("FEDLITE_DATA_DIR", str(isolated_dirs / "env"))
    _write_idx_set(isolated_dirs / "env" / "fashion-mnist", gz=True)
    assert resolve_name("auto") == "fashion-mnist"


def test_standardize_maps_pixels_to_minus_one_to_one_exactly():
    from fedlite.data.sources import _standardize

    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    expected = (pixels.astype(np.float32)[:, None] / 255.0 - 0.5) / 0.5
    out = _standardize(pixels)
    assert out.dtype == np.float32 and out.shape == (1, 1, 16, 16)
    np.testing.assert_array_equal(out, expected)
