"""Data held in memory (arrays, tensors, a torch ``Dataset``) as an ``ImageDataset``.

Index convention: N images, Ch channels, H x W pixels. What is accepted is what an
``.npz`` data set accepts (``fishermask.data.npz``), converted by the same function:

- arrays: ``(x, y)`` with x a NumPy array or torch tensor ``[N, H, W]``,
  ``[N, H, W, C]`` or ``[N, C, H, W]`` (C in {1, 3}; a shape where both ends could be
  the channel axis is refused), dtype uint8, uint16 (scaled by ``round(v / 257)``) or
  float in [0, 1] (scaled by 255 and rounded; NaN, inf and normalised values are
  refused); y integer class indices ``[N]``.
- a map-style ``torch.utils.data.Dataset`` (``len`` and ``ds[i]``) whose items are
  ``(image, label)``: a PIL image of mode L or RGB, or an array/tensor ``[H, W]``,
  ``[C, H, W]`` or ``[H, W, C]`` of the dtypes above (``ToTensor()`` output is fine,
  ``Normalize`` output is not: the runner normalises itself); the label an int, a
  NumPy integer or a 0-d integer tensor. Every image must have the shape of the first.

Images are converted once to uint8 ``[N, Ch, H, W]``, the runner's own representation.
:func:`dataset_sha256` is the content hash recorded as ``data.sha256``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fishermask.data.arrays import check_labels, make_dataset
from fishermask.data.base import ImageDataset
from fishermask.data.npz import to_nchw_uint8
from fishermask.data.progress import progress_bar
from fishermask.errors import DataError
from fishermask.text import ELIDED, counted, listed

SPLITS = ("train", "test")
_PROGRESS_MIN = 1000  # items of a Dataset from which the conversion shows a progress bar
_ACCEPTED = "(x, y) arrays/tensors, or a map-style torch Dataset whose items are (image, label)"


def from_memory(
    train: Any,
    test: Any,
    classes: Sequence[str] | None = None,
    *,
    name: str = "memory",
    progress: bool = False,
) -> ImageDataset:
    """Convert in-memory ``train`` and ``test`` splits (module docstring) to an ``ImageDataset``.

    ``classes``: one name per class; else a Dataset's ``classes`` attribute (torchvision's
    convention), else ``"0" .. "K-1"`` with K = largest label + 1 (as for ``.npz``). Given
    for a Dataset that has ``classes``, they must be the same names in the same order.
    Raises ``DataError`` with one line naming the split, the item and the fix.
    """
    _check_same_classes(train, test)
    _check_given_classes(classes, train, test)
    raw = {s: _split(s, v, progress) for s, v in zip(SPLITS, (train, test), strict=True)}
    if classes is None:
        classes = getattr(train, "classes", None) if _is_dataset(train) else None
        if not (isinstance(classes, Sequence) and all(isinstance(c, str) for c in classes)):
            classes = None
    if classes is None:
        top = max(
            (int(y.max()) for _, y in raw.values() if y.size and y.dtype.kind in "iu"), default=0
        )
        names = tuple(str(i) for i in range(top + 1))
    else:
        if isinstance(classes, str) or not len(classes):
            raise DataError(
                f"classes={classes!r}: give one name per class, e.g. classes=['cat', 'dog']."
            )
        names = tuple(str(c) for c in classes)
    splits = {s: (x, check_labels(y, len(names), f"{s} labels")) for s, (x, y) in raw.items()}
    for s, (x, _) in splits.items():
        if min(x.shape[2:]) < 4:  # [N, Ch, H, W]: a width of 1 or 3 would read back ambiguously
            raise DataError(
                f"{s} images are {x.shape[2]}x{x.shape[3]} pixels; images need at least 4x4."
            )
    return make_dataset(name, splits, names, None)


def dataset_sha256(ds: ImageDataset) -> str:
    """SHA-256 of a data set's content: both splits' images and labels (dtype, shape and
    bytes) and the class names; the name and where it came from do not enter."""
    h = hashlib.sha256()
    for key in ("x_train", "y_train", "x_test", "y_test"):
        t = getattr(ds, key).contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.numpy().tobytes())
    h.update(json.dumps(list(ds.classes)).encode())
    return h.hexdigest()


def _is_dataset(obj: Any) -> bool:
    plain = (tuple, list, dict, str, np.ndarray, torch.Tensor)
    return isinstance(obj, torch.utils.data.Dataset) or (
        hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not isinstance(obj, plain)
    )


def _split(split: str, value: Any, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """One split as (uint8 [N, Ch, H, W], raw labels [N])."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return _arrays(split, *value)
    if isinstance(value, torch.utils.data.IterableDataset):
        raise DataError(
            f"{split}: an IterableDataset has no random access; pass a map-style Dataset "
            "(__len__ and __getitem__) or (x, y) arrays."
        )
    if _is_dataset(value):
        return _from_dataset(split, value, progress)
    if isinstance(value, (tuple, list)):  # (x,), (x, y, y), (x, y, classes), ...
        items = listed(value, 4, show=_describe, more=ELIDED)
        raise DataError(
            f"{split}: got a {type(value).__name__} of {counted(len(value), 'value')} ({items}); "
            f"pass {_ACCEPTED}."
        )
    raise DataError(f"{split}: got {_describe(value)}; pass {_ACCEPTED}.")


def _describe(value: Any) -> str:
    """``ndarray [40, 8, 8]``, ``Tensor [40]``, ``list``: what a split was given."""
    if isinstance(value, np.ndarray | torch.Tensor):
        return f"{type(value).__name__} [{', '.join(map(str, value.shape))}]"
    return type(value).__name__


def _numpy(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _arrays(split: str, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _numpy(x), _numpy(y)
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise DataError(
            f"{split}: x has {len(x) if x.ndim else 0} images but y has "
            f"{len(y) if y.ndim else 0} labels; give one label per image."
        )
    _check_finite(x, f"{split} images")
    return to_nchw_uint8(x, f"{split} images"), _label_array(y, f"{split} labels")


def _label_array(y: np.ndarray, where: str) -> np.ndarray:
    """Integer labels as they are; refuse floats (even whole ones) and one-hot rows."""
    if y.ndim != 1 or not (y.dtype.kind in "iu" or not y.size):
        raise DataError(
            f"{where}: labels must be a 1-D integer array, got {y.dtype} {tuple(y.shape)}; "
            "give class indices 0..K-1 (not one-hot rows, floats or strings)."
        )
    return y


def _dataset_classes(ds: Any) -> list[str] | None:
    names = getattr(ds, "classes", None) if _is_dataset(ds) else None
    ok = isinstance(names, Sequence) and not isinstance(names, str)
    return list(names) if ok and all(isinstance(c, str) for c in names) else None


def _check_same_classes(train: Any, test: Any) -> None:
    """Refuse train and test Datasets whose ``classes`` differ: their labels index different
    class lists (an ImageFolder whose test folder lacks a class shifts every later label)."""
    a, b = _dataset_classes(train), _dataset_classes(test)
    if a is None or b is None or a == b:
        return
    same = zip(a, b, strict=False)  # the shorter list may be a prefix of the longer
    i = next((k for k, (x, y) in enumerate(same) if x != y), min(len(a), len(b)))
    first, second = (repr(n[i]) if i < len(n) else "nothing" for n in (a, b))
    raise DataError(
        f"the train and test Datasets name different classes ({len(a)} and {len(b)}; at index "
        f"{i}: {first} in train, {second} in test), so the same label means different classes "
        "in the two splits; give both the same classes (an ImageFolder: the same class folders)."
    )


def _check_given_classes(classes: Any, train: Any, test: Any) -> None:
    """Refuse ``classes=`` that differ from a Dataset's own ``classes`` (names or order): the
    Dataset's labels index its own list, so other names would silently rename the classes."""
    if classes is None or isinstance(classes, str):
        return  # a str is refused (one name per class) after the splits are read
    for split, ds in zip(SPLITS, (train, test), strict=True):
        own = _dataset_classes(ds)
        given = [str(c) for c in classes]
        if own is None or given == own:
            continue
        i = next(
            (k for k, (a, b) in enumerate(zip(given, own, strict=False)) if a != b),
            min(len(given), len(own)),
        )
        first, second = (repr(n[i]) if i < len(n) else "nothing" for n in (given, own))
        raise DataError(
            f"classes= differ from the {split} Dataset's own classes ({len(given)} and "
            f"{len(own)} names; at index {i}: {first} in classes=, {second} in the Dataset), "
            f"so label {i} would get the wrong name; drop classes= (the Dataset's classes are "
            "used) or give the same names in the same order."
        )
        return  # train and test name the same classes (checked above)


def _check_finite(x: np.ndarray, where: str) -> None:
    if x.dtype.kind != "f" or not x.size:
        return
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)  # [N]
    if n := int(bad.sum()):
        first = int(np.flatnonzero(bad)[0])
        which = f"image {first} holds" if n == 1 else f"{n} images hold"
        first_of = "" if n == 1 else f" (the first is image {first})"
        them = "it" if n == 1 else "them"  # the images, not their values
        raise DataError(f"{where}: {which} NaN or infinite values{first_of}; fix or drop {them}.")


def _from_dataset(split: str, ds: Any, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Read every ``(image, label)`` of a map-style Dataset once, into uint8 ``[N, Ch, H, W]``."""
    n = len(ds)
    if n == 0:
        raise DataError(f"{split}: the Dataset is empty; give it at least one item.")
    out: np.ndarray | None = None  # [N, Ch, H, W] uint8, allocated from the first item
    labels = np.empty(n, dtype=np.int64)
    with progress_bar(f"reading the {split} Dataset", n, progress and n >= _PROGRESS_MIN) as adv:
        for i in range(n):
            try:
                item = ds[i]
            except Exception as exc:  # the Dataset's own error: say which item raised it
                exc.add_note(f"fishermask.run: raised by {split} Dataset item {i} (ds[{i}])")
                raise
            image, labels[i] = _item(split, item, i)
            where = f"{split} item {i}"
            _check_finite(image[None], where)
            if (
                image.dtype.kind == "f"
                and image.size
                and not (0 <= image.min() and image.max() <= 1)
            ):
                raise DataError(
                    f"{where}: float image values lie in [{image.min():g}, {image.max():g}], not "
                    "[0, 1]; drop transforms.Normalize (the runner normalises per channel itself) "
                    "or give uint8 images."
                )
            x = to_nchw_uint8(image[None], where)[0]  # [Ch, H, W]
            if out is None:
                out = np.empty((n, *x.shape), dtype=np.uint8)
            elif x.shape != out.shape[1:]:
                raise DataError(
                    f"{where} is {x.shape[0]}x{x.shape[1]}x{x.shape[2]} but item 0 is "
                    f"{'x'.join(map(str, out.shape[1:]))}; give every image one size "
                    "(e.g. transforms.Resize((32, 32)) in the Dataset's transform)."
                )
            out[i] = x
            adv(1)
    assert out is not None
    return out, labels


def _item(split: str, item: Any, i: int) -> tuple[np.ndarray, int]:
    """An item of a Dataset as (image array as given, int label)."""
    where = f"{split} item {i}"
    if isinstance(item, dict):
        raise DataError(
            f"{where} is a dict (keys {', '.join(map(str, list(item)[:4]))}); wrap the Dataset "
            "so that ds[i] returns (image, label)."
        )
    if not (isinstance(item, (tuple, list)) and len(item) == 2):
        raise DataError(
            f"{where} is {type(item).__name__}"
            + (f" of {len(item)} values" if isinstance(item, (tuple, list)) else "")
            + "; ds[i] must return (image, label)."
        )
    image, label = item
    return _image(where, image), _label(where, label)


def _image(where: str, image: Any) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with the label tool's deps
        Image = None  # noqa: N806
    if Image is not None and isinstance(image, Image.Image):
        if image.mode not in ("L", "RGB"):
            raise DataError(
                f"{where} is a PIL image of mode {image.mode}; give mode L or RGB "
                "(add img.convert('RGB') to the Dataset's transform)."
            )
        return np.asarray(image)
    if isinstance(image, (np.ndarray, torch.Tensor)):
        a = _numpy(image)
        if a.ndim not in (2, 3):
            raise DataError(
                f"{where}: image shape {tuple(a.shape)}; give [H, W], [C, H, W] or [H, W, C]."
            )
        return a
    raise DataError(
        f"{where}: image is {type(image).__name__}; give a PIL image, a NumPy array or a tensor."
    )


def _label(where: str, label: Any) -> int:
    if isinstance(label, torch.Tensor) and label.numel() == 1 and label.dim() <= 1:
        label = label.reshape(()).item() if not label.dtype.is_floating_point else label.item()
    elif isinstance(label, np.ndarray) and label.ndim == 0:
        label = label.item()
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise DataError(
            f"{where}: label {label!r} is not an integer class index; return labels 0..K-1 "
            "(not one-hot vectors, floats or names)."
        )
    return int(label)
