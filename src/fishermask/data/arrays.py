"""Turning in-memory arrays (pickle, IDX, npz, embedded sets) into an ``ImageDataset``.

Index convention: N images, Ch channels, H x W pixels; images ``uint8``
``[N, Ch, H, W]``, labels ``[N]``.
"""

from __future__ import annotations

import numpy as np
import torch

from fishermask.data.base import ImageDataset
from fishermask.data.images import ImageSize, resize_images
from fishermask.data.progress import progress_bar
from fishermask.errors import DataError


def check_labels(y: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    """Integer labels ``y`` as int64 ``[N]``; raise if any is outside ``0..num_classes-1``."""
    y = np.asarray(y)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise DataError(
            f"{where}: labels must be a 1-D integer array, got {y.dtype} {tuple(y.shape)}; "
            "store class indices 0..K-1 (not one-hot vectors or floats)."
        )
    y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(
            f"{where}: labels range over [{y.min()}, {y.max()}] but there are {num_classes} "
            f"classes; labels must be 0..{num_classes - 1}."
        )
    return y


def make_dataset(
    name: str,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: tuple[str, ...],
    image_size: ImageSize | None,
    progress: bool = False,
) -> ImageDataset:
    """Build the data set from ``{"train": (x, y), "test": (x, y)}``, x uint8 ``[N, Ch, H, W]``.

    Labels must already be checked (``check_labels``); images are resized
    (bilinear) to ``image_size`` when given.
    """
    if image_size is not None:
        total = sum(len(x) for x, _ in splits.values())
        with progress_bar(f"resizing {name}", total, progress) as advance:
            splits = {s: (resize_images(x, image_size, advance), y) for s, (x, y) in splits.items()}
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    return ImageDataset(
        name=name,
        x_train=_tensor(x_train, np.uint8),
        y_train=_tensor(y_train, np.int64),
        x_test=_tensor(x_test, np.uint8),
        y_test=_tensor(y_test, np.int64),
        classes=classes,
    )


def _tensor(a: np.ndarray, dtype: type[np.generic]) -> torch.Tensor:
    """A tensor sharing a C-contiguous, writable copy-if-needed of ``a``."""
    return torch.from_numpy(np.require(a, dtype=dtype, requirements=["C", "W"]))
