"""CIFAR-10 "python version" pickle batches (Krizhevsky 2009).

A directory (or its ``cifar-10-batches-py`` subfolder) with ``data_batch_1`` ..
``data_batch_5`` (train, in that order) and ``test_batch``: pickled dicts with
``b"data"`` uint8 ``[N, 3072]`` (R, G, B planes of 32 x 32, row-major) and
``b"labels"`` (N ints). Class names come from ``batches.meta``
(``b"label_names"``) if present, else the standard ten.

The batches are unpickled with a restricted unpickler that only rebuilds numpy
arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from fishermask.data.arrays import check_labels, make_dataset
from fishermask.data.base import ImageDataset
from fishermask.data.images import ImageSize, one_line
from fishermask.errors import DataError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
SUBFOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"

_ALLOWED_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


def find_cifar_dir(path: Path) -> Path | None:
    """The folder holding the batches: ``path`` or ``path/cifar-10-batches-py``; else None."""
    for d in (path, path / SUBFOLDER):
        if any((d / f).is_file() for f in (*TRAIN_BATCHES, TEST_BATCH)):
            return d
    return None


def cifar_files(path: Path) -> list[Path]:
    """The files the data set is read from (for the cache key)."""
    d = find_cifar_dir(path) or path
    return [d / f for f in (*TRAIN_BATCHES, TEST_BATCH, META) if (d / f).is_file()]


def load_cifar(path: Path, image_size: ImageSize | None, progress: bool = False) -> ImageDataset:
    """Read the five train batches and the test batch into an ``ImageDataset`` (3 x 32 x 32)."""
    d = find_cifar_dir(path)
    if d is None:
        raise DataError(f"no CIFAR-10 batches ({TEST_BATCH}, data_batch_1..5) in {path}.")
    classes = _read_classes(d)
    splits = {}
    for split, names in (("train", TRAIN_BATCHES), ("test", (TEST_BATCH,))):
        xs, ys = [], []
        for name in names:
            x, y = _read_batch(d / name, len(classes))
            xs.append(x)
            ys.append(y)
        splits[split] = (np.concatenate(xs), np.concatenate(ys))
    return make_dataset(path.name, splits, classes, image_size, progress)


def _read_batch(file: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch: images uint8 ``[N, 3, 32, 32]`` and labels int64 ``[N]``."""
    if not file.is_file():
        raise DataError(
            f"missing CIFAR-10 batch {file}; a CIFAR-10 folder needs "
            f"{', '.join(TRAIN_BATCHES)} and {TEST_BATCH}."
        )
    batch = _unpickle(file)
    data, labels = _get(batch, "data"), _get(batch, "labels")
    if data is None or labels is None:
        raise DataError(
            f"{file} lacks the 'data' or 'labels' entry of a CIFAR-10 batch "
            "(CIFAR-100's 'fine_labels' are not supported)."
        )
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"{file}: 'data' must be uint8 [N, 3072], got {data.dtype} {tuple(data.shape)}."
        )
    y = check_labels(np.asarray(labels), num_classes, str(file))
    if len(y) != len(data):
        raise DataError(f"{file}: {len(data)} images but {len(y)} labels; the batch is corrupt.")
    return data.reshape(-1, 3, 32, 32), y


def _read_classes(d: Path) -> tuple[str, ...]:
    """Class names from ``batches.meta``, else the standard CIFAR-10 names."""
    meta = d / META
    if not meta.is_file():
        return CIFAR10_CLASSES
    names = _get(_unpickle(meta), "label_names")
    if not isinstance(names, list | tuple) or not names:
        raise DataError(f"{meta} has no 'label_names' list; delete it to use the standard names.")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _get(d: Any, key: str) -> Any:
    """``d[b"key"]`` or ``d["key"]`` (Python 2 pickles have bytes keys), else None."""
    if not isinstance(d, dict):
        return None
    return d.get(key.encode(), d.get(key))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and numpy arrays only; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        new = module.replace("numpy.core.", "numpy._core.")  # NumPy 1 wrote numpy.core
        if (new, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        try:
            return getattr(importlib.import_module(new), name)
        except ModuleNotFoundError:  # NumPy 1 has no numpy._core
            return getattr(importlib.import_module(new.replace("._core.", ".core.")), name)


def _unpickle(file: Path) -> Any:
    try:
        with open(file, "rb") as f:
            return _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # a corrupt pickle can raise almost anything
        raise DataError(
            f"cannot read CIFAR-10 batch {file}: {one_line(exc)}; re-download the "
            "'CIFAR-10 python version' archive."
        ) from None
