"""CIFAR-10 and CIFAR-100 from their original python-pickle batches (Krizhevsky, 2009).

A directory holds a set when it has the batch files themselves, their folder as the
published archive unpacks it (``cifar-10-batches-py/``, ``cifar-100-python/``), or the archive
itself (``cifar-10-python.tar.gz``, read in place). The batches are pickles: they are read
with an unpickler that builds only numpy arrays and plain containers, so a file that is not
a CIFAR batch cannot run code.
"""

from __future__ import annotations

import codecs
import io
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedlite.data.dataset import Dataset, standardize_channels


@dataclass(frozen=True)
class CifarLayout:
    folder: str  # the archive's top folder
    archive: str
    train: tuple[str, ...]
    test: str
    label_key: bytes

    @property
    def url(self) -> str:
        return f"https://www.cs.toronto.edu/~kriz/{self.archive}"

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train, self.test)


LAYOUTS = {
    "cifar10": CifarLayout("cifar-10-batches-py", "cifar-10-python.tar.gz",
                           tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", b"labels"),
    "cifar100": CifarLayout("cifar-100-python", "cifar-100-python.tar.gz", ("train",), "test",
                            b"fine_labels"),
}


def holds_cifar(name: str, directory: Path) -> bool:
    """Whether ``directory`` has the batches of ``name``: loose, in their folder, or archived."""
    layout = LAYOUTS[name]
    return ((directory / layout.archive).is_file()
            or any(all((d / f).is_file() for f in layout.files)
                   for d in (directory, directory / layout.folder)))


def read_cifar(name: str, directory: Path) -> Dataset:
    """The training and test batches of ``name`` in ``directory``, normalized per channel."""
    layout = LAYOUTS[name]
    batches = _batches(layout, directory)
    train_x, train_y = _stack([batches[f] for f in layout.train], layout.label_key)
    test_x, test_y = _stack([batches[layout.test]], layout.label_key)
    train_x, test_x = standardize_channels(train_x, test_x)
    return Dataset(name, train_x, train_y, test_x, test_y)


def download_cifar(name: str, target: Path) -> Path:
    """Fetch the published archive of ``name`` into ``target`` (read in place, not unpacked)."""
    layout = LAYOUTS[name]
    target.mkdir(parents=True, exist_ok=True)
    if not holds_cifar(name, target):
        partial = target / f"{layout.archive}.part"
        urllib.request.urlretrieve(layout.url, partial)
        partial.rename(target / layout.archive)
    return target


def _batches(layout: CifarLayout, directory: Path) -> dict[str, dict]:
    for folder in (directory, directory / layout.folder):
        if all((folder / f).is_file() for f in layout.files):
            return {f: read_batch((folder / f).read_bytes(), folder / f) for f in layout.files}
    archive = directory / layout.archive
    with tarfile.open(archive) as tar:
        members = {Path(m.name).name: m for m in tar.getmembers()
                   if m.isfile() and Path(m.name).parent.name == layout.folder}
        missing = [f for f in layout.files if f not in members]
        if missing:
            raise FileNotFoundError(f"{archive} lacks {', '.join(missing)}: it is not the "
                                    f"published {layout.archive}")
        return {f: read_batch(tar.extractfile(members[f]).read(), archive / f)
                for f in layout.files}


def read_batch(raw: bytes, path: Path) -> dict:
    """One pickled batch: a dict with ``data`` (N x 3072 uint8, channel-major rows) and labels."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), path).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ValueError(f"{path} is not a CIFAR python batch ({err})") from None
    if not isinstance(batch, dict) or b"data" not in batch:
        raise ValueError(f"{path} is not a CIFAR python batch (no `data` entry)")
    return batch


def _stack(batches: list[dict], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    data = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8) for b in batches])
    labels = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(f"CIFAR batches hold {data.shape} pixels for {len(labels)} labels; "
                         "expected N x 3072 and N labels")
    return data.reshape(-1, 3, 32, 32), labels


class _BatchUnpickler(pickle.Unpickler):
    # The batches were pickled by Python 2 with numpy arrays inside: allow exactly what
    # rebuilds an array (under numpy 1's and numpy 2's module names) and, for batches
    # pickled again by Python 3 at protocol 2, what turns text into bytes; nothing else.
    _RECONSTRUCT = np.array(0).__reduce__()[0]
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
               ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
               ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): codecs.encode}

    def __init__(self, file, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[module, name]
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR batch "
                                     "never does")
