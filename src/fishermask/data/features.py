"""Features you bring: active learning on embeddings instead of pixels.

Index convention: N = N_train + N_test images of the data set as loaded (before any
preset), D feature values per image.

A features file is a ``.npy`` array ``[N, D]`` (or ``[N, ...]``, flattened) whose rows
follow the data set's images: the N_train training images in the loader's order, then the
N_test test images. :func:`attach_features` puts the rows in place of the images, as
float32 "images" ``[N, D, 1, 1]``; presets then select rows exactly as they select
images, and the ``linear`` and ``mlp`` models train a head on them (standardised per
feature, no augmentation).

A backbone is a module in a local file, saved with ``torch.jit.save`` (TorchScript),
``torch.export.save`` (a ``.pt2`` file) or ``torch.save(module)`` (unpickled with
``weights_only=False``: load only files you trust). It receives float32 images
``[B, Ch, H, W]`` scaled to [0, 1] (put any normalisation it needs inside it) and returns
one row of features per image. :func:`backbone_features` runs it once over the whole data
set and caches the result as ``.npy`` in the data cache, keyed by the backbone file's and
the images' SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fishermask.data.base import ImageDataset
from fishermask.data.cache_dir import resolve_cache_dir
from fishermask.data.images import one_line
from fishermask.errors import DataError


def attach_features(ds: ImageDataset, path: str | os.PathLike[str]) -> ImageDataset:
    """``ds`` with its images replaced by the rows of the ``.npy`` file at ``path``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"Features file {p} does not exist; give a .npy array [N, D].")
    try:
        arr = np.load(p, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError) as exc:
        raise DataError(f"Cannot read features file {p} as .npy: {one_line(exc)}.") from None
    return with_features(ds, np.asarray(arr), str(p))


def with_features(ds: ImageDataset, arr: np.ndarray, source: str = "features") -> ImageDataset:
    """``ds`` with its images replaced by the rows of ``arr [N_train + N_test, ...]``."""
    n_train, n_test = len(ds.y_train), len(ds.y_test)
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu" or arr.ndim < 2:
        raise DataError(
            f"{source}: features must be a numeric array [N, D], got "
            f"{getattr(arr, 'dtype', type(arr))} with shape {getattr(arr, 'shape', '?')}."
        )
    if len(arr) != n_train + n_test:
        raise DataError(
            f"{source}: {len(arr)} rows of features, but {ds.name} has {n_train} train + "
            f"{n_test} test = {n_train + n_test} images; the rows must follow its images "
            "(train, then test, before any preset)."
        )
    x = torch.from_numpy(np.array(arr, dtype=np.float32).reshape(len(arr), -1))  # a copy
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{source}: the features hold NaN or infinite values.")
    x = x[:, :, None, None]  # [N, D, 1, 1]
    return replace(ds, name=f"{ds.name}+features", x_train=x[:n_train], x_test=x[n_train:])


def load_backbone(path: str | os.PathLike[str]) -> nn.Module:
    """A module from a TorchScript file or a ``torch.save``-d module (see module docstring)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"Backbone file {p} does not exist.")
    if p.suffix == ".pt2":  # torch.export.save
        try:
            return torch.export.load(str(p)).module()
        except Exception as exc:  # noqa: BLE001 - loader errors vary
            raise DataError(f"Cannot load exported program {p}: {one_line(exc)}.") from None
    try:
        with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript, still loads it
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(p), map_location="cpu")
    except (RuntimeError, ValueError):
        pass
    try:
        obj = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - unpickling errors vary
        raise DataError(
            f"Cannot load backbone {p}: {one_line(exc)}; save it with "
            "torch.jit.save(torch.jit.script(model), path) or torch.save(model, path)."
        ) from None
    if not isinstance(obj, nn.Module):
        raise DataError(
            f"Backbone file {p} holds a {type(obj).__name__}, not a module; save the module "
            "itself (torch.save(model, path)), not its state_dict."
        )
    return obj


def _sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@torch.no_grad()
def compute_features(
    module: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 256
) -> np.ndarray:
    """``[N, D]`` float32 features of uint8 ``images [N, Ch, H, W]`` (scaled to [0, 1])."""
    module = module.to(device).eval()
    parts = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device=device, dtype=torch.float32) / 255.0
        out = module(x)
        if not isinstance(out, torch.Tensor) or out.dim() < 1 or len(out) != len(x):
            raise DataError(
                f"The backbone returned {type(out).__name__} "
                f"{tuple(getattr(out, 'shape', ()))} for a batch of {len(x)} images; it must "
                "return a tensor with one row of features per image."
            )
        parts.append(out.reshape(len(x), -1).float().cpu())
    return torch.cat(parts).numpy()


def backbone_features(
    ds: ImageDataset,
    path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> ImageDataset:
    """``ds`` with its images replaced by a backbone's features, computed once and cached."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"Backbone file {p} does not exist.")
    h = hashlib.sha256(_sha256_file(p).encode())
    for t in (ds.x_train, ds.x_test):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    entry = resolve_cache_dir(cache_dir) / f"features-{p.stem}-{h.hexdigest()[:20]}.npy"
    if entry.is_file():
        try:
            return with_features(ds, np.load(entry, allow_pickle=False), str(entry))
        except (ValueError, OSError, DataError):
            pass  # unreadable entry: compute again
    images = torch.cat([ds.x_train, ds.x_test])
    arr = compute_features(load_backbone(p), images, torch.device(device), batch_size)
    out = with_features(ds, arr, f"backbone {p}")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".features-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr)
        os.replace(tmp, entry)
    except OSError as exc:  # caching is an optimisation; the features are in memory
        warnings.warn(f"could not write the features cache {entry}: {one_line(exc)}", stacklevel=2)
    return out
