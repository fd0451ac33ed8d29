"""Builders that write tiny data sets of every format into ``tmp_path``.

Pixel values encode identity: an image written with ``value=v`` is a constant
image of value ``v``, so tests can check which image landed where.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fishermask.data import ImageDataset

# split -> class -> {file name: value}
TreeSpec = dict[str, dict[str, dict[str, int]]]

TINY_TREE: TreeSpec = {
    "train": {
        "cat": {"b.png": 11, "a.png": 10, "c.PNG": 12},
        "ant": {"z.jpg": 200, "y.jpeg": 100},
        "dog": {"1.png": 30},
    },
    "test": {
        "ant": {"q.png": 150},
        "cat": {"q.png": 15},
        "dog": {"p.png": 35, "o.png": 34},
    },
}


@pytest.fixture
def tiny_spec() -> TreeSpec:
    """A three-class tree: classes ant, cat, dog (sorted), mixed extensions and case."""
    return {split: {c: dict(f) for c, f in classes.items()} for split, classes in TINY_TREE.items()}


@pytest.fixture
def encode() -> Callable[..., bytes]:
    """``encode(value, size=(4, 6), mode="L", fmt="PNG")``: bytes of a constant image."""
    return image_bytes


def image_bytes(
    value: int, size: tuple[int, int] = (4, 6), mode: str = "L", fmt: str = "PNG"
) -> bytes:
    """Encoded constant image; ``size`` is (H, W)."""
    color = {"LA": (value, 255), "RGB": (value,) * 3, "RGBA": (value,) * 3 + (255,)}.get(
        mode, value
    )
    img = Image.new(mode, (size[1], size[0]), color)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _fmt(name: str) -> str:
    return "JPEG" if name.lower().endswith((".jpg", ".jpeg")) else "PNG"


@pytest.fixture
def write_tree() -> Callable[..., Path]:
    """``write_tree(root, spec, size=(4, 6), mode="L")``: write an image-folder tree."""

    def write(
        root: Path, spec: TreeSpec = TINY_TREE, size: tuple[int, int] = (4, 6), mode: str = "L"
    ) -> Path:
        for split, classes in spec.items():
            for cls, files in classes.items():
                folder = root / split / cls
                folder.mkdir(parents=True, exist_ok=True)
                for name, value in files.items():
                    (folder / name).write_bytes(image_bytes(value, size, mode, _fmt(name)))
        return root

    return write


@pytest.fixture
def write_tar() -> Callable[..., Path]:
    """``write_tar(path, {member: bytes or None (a directory)})``: write a tar(.gz) archive."""

    def write(path: Path, members: dict[str, bytes | None]) -> Path:
        mode = "w:gz" if path.name.endswith(("gz", ".tgz")) else "w"
        with tarfile.open(path, mode) as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                if data is None:
                    info.type = tarfile.DIRTYPE
                    tf.addfile(info)
                else:
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        return path

    return write


@pytest.fixture
def tree_members() -> Callable[..., dict[str, bytes | None]]:
    """``tree_members(spec, prefix="")``: archive members (with class directory entries)."""
    return _tree_members


def _tree_members(spec: TreeSpec = TINY_TREE, prefix: str = "", **kw) -> dict[str, bytes | None]:
    members: dict[str, bytes | None] = {}
    for split, classes in spec.items():
        for cls, files in classes.items():
            members[f"{prefix}{split}/{cls}"] = None
            for name, value in files.items():
                members[f"{prefix}{split}/{cls}/{name}"] = image_bytes(value, fmt=_fmt(name), **kw)
    return members


@pytest.fixture
def encode_idx() -> Callable[..., bytes]:
    """``encode_idx(arr, magic=None)``: IDX bytes of a uint8 array."""
    return idx_bytes


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """IDX encoding of a uint8 array (magic defaults to 0x08 type, ndim)."""
    magic = (0x0800 | arr.ndim) if magic is None else magic
    header = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


@pytest.fixture
def write_idx() -> Callable[..., Path]:
    """``write_idx(folder, n_train=6, n_test=4, gz=True)``: write the four MNIST IDX files.

    Image i of a split has constant value i; labels are ``i % 10``.
    """

    def write(folder: Path, n_train: int = 6, n_test: int = 4, gz: bool = True) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            x = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, 5, 3))
            y = (np.arange(n) % 10).astype(np.uint8)
            for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
                data = idx_bytes(np.ascontiguousarray(arr))
                name = f"{prefix}-{kind}-ubyte"
                if gz:
                    (folder / f"{name}.gz").write_bytes(gzip.compress(data))
                else:
                    (folder / name).write_bytes(data)
        return folder

    return write


@pytest.fixture
def write_cifar() -> Callable[..., Path]:
    """``write_cifar(folder, per_batch=2, meta=True)``: CIFAR-10 python batches.

    Train batch b (1..5), row j: constant value ``10 * b + j``, label ``(b + j) % 10``;
    test row j: value ``200 + j``, label ``j % 10``.
    """

    def write(folder: Path, per_batch: int = 2, meta: bool = True) -> Path:
        folder.mkdir(parents=True, exist_ok=True)

        def batch(values: list[int], labels: list[int]) -> dict:
            data = np.repeat(np.array(values, dtype=np.uint8)[:, None], 3072, axis=1)
            return {b"batch_label": b"x", b"labels": labels, b"data": data}

        for b in range(1, 6):
            js = range(per_batch)
            d = batch([10 * b + j for j in js], [(b + j) % 10 for j in js])
            (folder / f"data_batch_{b}").write_bytes(pickle.dumps(d, protocol=2))
        d = batch([200 + j for j in range(per_batch)], [j % 10 for j in range(per_batch)])
        (folder / "test_batch").write_bytes(pickle.dumps(d, protocol=2))
        if meta:
            names = [f"c{i}".encode() for i in range(10)]
            m = {b"label_names": names, b"num_cases_per_batch": per_batch}
            (folder / "batches.meta").write_bytes(pickle.dumps(m, protocol=2))
        return folder

    return write


@pytest.fixture
def synthetic() -> Callable[..., ImageDataset]:
    """``synthetic(per_class=(6, 8, 5, 7), n_test=3)``: a small in-memory data set."""
    return _synthetic


def _synthetic(per_class: tuple[int, ...] = (6, 8, 5, 7), n_test: int = 3) -> ImageDataset:
    """A data set whose train image i has constant value i (labels interleaved by class)."""
    y = torch.tensor([c for c, n in enumerate(per_class) for _ in range(n)], dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    y = y[perm]
    x = torch.arange(len(y), dtype=torch.uint8)[:, None, None, None].expand(-1, 1, 2, 2)
    y_test = torch.arange(len(per_class)).repeat_interleave(n_test)
    x_test = (100 + torch.arange(len(y_test), dtype=torch.uint8))[:, None, None, None]
    return ImageDataset(
        name="synthetic",
        x_train=x.contiguous(),
        y_train=y,
        x_test=x_test.expand(-1, 1, 2, 2).contiguous(),
        y_test=y_test,
        classes=tuple(f"class{c}" for c in range(len(per_class))),
    )
