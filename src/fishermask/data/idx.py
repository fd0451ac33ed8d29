"""MNIST / FashionMNIST IDX files (LeCun et al. 1998; Xiao et al. 2017).

A directory (or its ``raw`` subfolder, torchvision's layout) with
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally
gzipped (``.gz``; a plain file wins over a gzipped one). IDX format: two zero
bytes, a type code (``0x08`` = uint8), the number of dimensions, then each
dimension as a big-endian uint32, then the data. Images must be uint8
``[N, H, W]`` (magic ``0x00000803``), labels uint8 ``[N]`` (magic ``0x00000801``).
Class names are the FashionMNIST names if the folder (or its parent) has
"fashion" in its name, else the digits "0" .. "9".
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from fishermask.data.arrays import check_labels, make_dataset
from fishermask.data.base import ImageDataset
from fishermask.data.images import ImageSize, one_line
from fishermask.errors import DataError

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_IMAGES_MAGIC, _LABELS_MAGIC = 0x0803, 0x0801  # uint8 with 3 dims / 1 dim
_ALL_NAMES = [n for pair in FILES.values() for n in pair]


def find_idx_dir(path: Path) -> Path | None:
    """The folder holding the IDX files: ``path`` or ``path/raw``; else None."""
    for d in (path, path / "raw"):
        if any(_find(d, n) is not None for n in _ALL_NAMES):
            return d
    return None


def idx_files(path: Path) -> list[Path]:
    """The files the data set is read from (for the cache key)."""
    d = find_idx_dir(path) or path
    return [f for n in _ALL_NAMES if (f := _find(d, n)) is not None]


def idx_classes(d: Path) -> tuple[str, ...]:
    """FashionMNIST names if the folder or its parent mentions "fashion", else digits."""
    d = d.resolve()
    is_fashion = any("fashion" in p.name.lower() for p in (d, d.parent))
    return FASHION_CLASSES if is_fashion else DIGIT_CLASSES


def load_idx(path: Path, image_size: ImageSize | None, progress: bool = False) -> ImageDataset:
    """Read the four IDX files into an ``ImageDataset`` (1 x H x W)."""
    d = find_idx_dir(path)
    if d is None:
        raise DataError(f"no IDX files ({', '.join(_ALL_NAMES)}[.gz]) in {path}.")
    classes = idx_classes(d)
    splits = {}
    for split, (images_name, labels_name) in FILES.items():
        images_file, labels_file = _require(d, images_name), _require(d, labels_name)
        x = read_idx(images_file, _IMAGES_MAGIC)  # [N, H, W]
        y = check_labels(read_idx(labels_file, _LABELS_MAGIC), len(classes), str(labels_file))
        if len(x) != len(y):
            raise DataError(
                f"{images_file.name} holds {len(x)} images but {labels_file.name} holds "
                f"{len(y)} labels; the {split} files do not belong together."
            )
        splits[split] = (x[:, None], y)
    name = d.parent.name if d.name == "raw" else d.name
    return make_dataset(name, splits, classes, image_size, progress)


def read_idx(file: Path, magic: int) -> np.ndarray:
    """Parse one IDX file, checking its magic number and that its size matches its header."""
    try:
        raw = gzip.decompress(file.read_bytes()) if file.suffix == ".gz" else file.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read IDX file {file}: {one_line(exc)}.") from None
    kind = "image" if magic == _IMAGES_MAGIC else "label"
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        shown = "none (file too short)" if found is None else f"0x{found:08x}"
        raise DataError(
            f"{file}: IDX magic {shown} but an {kind} file needs 0x{magic:08x} (uint8, "
            f"{magic & 0xFF} dims); check that the file is an uncorrupted {kind} file."
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{file}: {len(raw)} bytes, shorter than its {header}-byte IDX header.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise DataError(
            f"{file}: {len(raw)} bytes but its IDX header (dims {list(dims)}) implies "
            f"{expected}; the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find(d: Path, name: str) -> Path | None:
    for f in (d / name, d / f"{name}.gz"):
        if f.is_file():
            return f
    return None


def _require(d: Path, name: str) -> Path:
    f = _find(d, name)
    if f is None:
        raise DataError(
            f"missing IDX file {d / name}[.gz]; an MNIST/FashionMNIST folder needs "
            f"{', '.join(_ALL_NAMES)} (each optionally .gz)."
        )
    return f
