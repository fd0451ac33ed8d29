"""NumPy ``.npz`` archives with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (+ ``classes``).

Images: ``[N, H, W]`` (grey), ``[N, H, W, C]`` or ``[N, C, H, W]`` with C in
{1, 3}; dtype ``uint8``, ``uint16`` (16-bit data, scaled to 0..255 as
``round(v / 257)``), or float with every value in [0, 1] (scaled by 255 and
rounded). Labels: integers ``[N]``. ``classes`` (optional): a string array with
one name per class; without it the classes are "0" .. "K-1", K = largest
label + 1. The file is opened with ``allow_pickle=False``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from fishermask.data.arrays import check_labels, make_dataset
from fishermask.data.base import ImageDataset
from fishermask.data.images import ImageSize, one_line, to_uint8
from fishermask.errors import DataError

KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: Path, image_size: ImageSize | None, progress: bool = False) -> ImageDataset:
    """Read an ``.npz`` data set (see the module docstring for the accepted layouts)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise DataError(
                    f"{path} lacks {', '.join(missing)}; an .npz data set needs "
                    f"{', '.join(KEYS)} (and optionally classes). Found: {', '.join(z.files)}."
                )
            arrays = {k: z[k] for k in KEYS}
            raw_classes = z["classes"] if "classes" in z.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"cannot read {path}: {one_line(exc)}; save it with np.savez(path, x_train=..., "
            "y_train=..., x_test=..., y_test=..., classes=np.array(names)) (strings, no objects)."
        ) from None
    ys = [arrays[k] for k in ("y_train", "y_test")]
    y_max = max((int(y.max()) for y in ys if y.size and y.dtype.kind in "iub"), default=0)
    classes = _classes(raw_classes, y_max + 1, path)
    splits = {}
    for split in ("train", "test"):
        x = to_nchw_uint8(arrays[f"x_{split}"], f"{path}: x_{split}")
        y = check_labels(arrays[f"y_{split}"], len(classes), f"{path}: y_{split}")
        if len(x) != len(y):
            raise DataError(f"{path}: x_{split} has {len(x)} images but y_{split} {len(y)} labels.")
        splits[split] = (x, y)
    return make_dataset(path.stem, splits, classes, image_size, progress)


def to_nchw_uint8(x: np.ndarray, where: str) -> np.ndarray:
    """Images in any accepted layout/dtype as uint8 ``[N, Ch, H, W]``; raise on anything else."""
    if x.ndim == 3:
        x = x[:, None]  # [N, H, W] -> [N, 1, H, W]
    elif x.ndim == 4:
        last, first = x.shape[3] in (1, 3), x.shape[1] in (1, 3)
        if last and first:
            raise DataError(
                f"{where}: shape {tuple(x.shape)} is ambiguous ([N, H, W, C] or [N, C, H, W]); "
                "store the images with H and W larger than 3."
            )
        if not (last or first):
            raise DataError(
                f"{where}: shape {tuple(x.shape)} has no channel axis of size 1 or 3; "
                "use [N, H, W], [N, H, W, C] or [N, C, H, W] with C in 1, 3."
            )
        if last:
            x = x.transpose(0, 3, 1, 2)
    else:
        raise DataError(
            f"{where}: images must be [N, H, W], [N, H, W, C] or [N, C, H, W], "
            f"got shape {tuple(x.shape)}."
        )
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.uint16:
        return to_uint8(x, 65535)
    if np.issubdtype(x.dtype, np.floating):
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if not (0.0 <= lo and hi <= 1.0):  # also catches NaN
            raise DataError(
                f"{where}: float images must lie in [0, 1], found [{lo:g}, {hi:g}]; "
                "store uint8 0..255 or divide by 255."
            )
        return np.rint(x * 255.0).astype(np.uint8)
    raise DataError(
        f"{where}: images have dtype {x.dtype}; use uint8 (0..255), uint16 (0..65535) "
        "or float in [0, 1]."
    )


def _classes(raw: np.ndarray | None, default_count: int, path: Path) -> tuple[str, ...]:
    if raw is None:
        return tuple(str(i) for i in range(default_count))
    if raw.ndim != 1 or raw.dtype.kind not in "US" or not len(raw):
        raise DataError(
            f"{path}: classes must be a 1-D string array, got {raw.dtype} {tuple(raw.shape)}; "
            "save np.array(['cat', 'dog', ...])."
        )
    return tuple(c.decode() if isinstance(c, bytes) else str(c) for c in raw.tolist())
