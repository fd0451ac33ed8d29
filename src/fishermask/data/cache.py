"""On-disk cache of decoded data sets, so slow formats are decoded once.

Location: the ``cache_dir`` argument, else ``$FISHERMASK_CACHE``, else
``~/.cache/fishermask``. An entry is a torch ``.pt`` file (``torch.save`` of a
dict of tensors; it loaded as fast as an uncompressed ``.npz`` of the same
arrays and keeps dtypes exactly) written atomically (temporary file, then
``os.replace``). Its key hashes the loader format, the resolved source path, the
size and mtime (ns) of every file the source consists of (the archive, or each
file of a folder tree) and ``image_size``; changing any of them makes a new
entry, and writing it deletes stale entries of the same source. An unreadable
entry is rebuilt; a cache directory that cannot be written only warns.

A source that knows its content (``fishermask label``'s images: each file's SHA-256 is
stored when it is scanned) is keyed by that instead, wherever its files lie
(:func:`content_entry`, :func:`read_entry`, :func:`write_entry`): a copy of it in another
folder or on another machine finds the same entries.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

from fishermask.data.base import ImageDataset
from fishermask.data.cache_dir import CACHE_ENV
from fishermask.data.images import ImageSize, one_line
from fishermask.errors import DataError
from fishermask.text import slug

CACHE_VERSION = 2  # bump when the decoded content of any loader changes
_TENSORS = ("x_train", "y_train", "x_test", "y_test")


def cache_path(
    cache_dir: Path, fmt: str, source: Path, files: Sequence[Path], image_size: ImageSize | None
) -> Path:
    """The entry file for ``source`` decoded by loader ``fmt`` (see the module docstring)."""
    return entry_path(cache_dir, fmt, source, file_stats(files), image_size)


def file_stats(files: Sequence[Path]) -> list[tuple[Path, int, int]]:
    """``(file, size, mtime_ns)`` of each file, as the cache key uses them."""
    out = []
    for f in files:
        try:
            st = f.stat()
        except OSError as exc:
            raise DataError(f"cannot read {f}: {exc.strerror or one_line(exc)}.") from None
        out.append((f, st.st_size, st.st_mtime_ns))
    return out


def entry_path(
    cache_dir: Path,
    fmt: str,
    source: Path,
    stats: Sequence[tuple[Path, int, int]],
    image_size: ImageSize | None,
) -> Path:
    """:func:`cache_path` from given ``(file, size, mtime_ns)`` instead of the files' own."""
    source = source.resolve()
    digest = hashlib.sha256(f"v{CACHE_VERSION}\0{fmt}\0{source}\0{image_size}\n".encode())
    for f, size, mtime_ns in sorted(stats):
        digest.update(f"{f.resolve()}\0{size}\0{mtime_ns}\n".encode())
    return cache_dir / f"{_source_stem(source)}-{digest.hexdigest()[:20]}.pt"


def cached(
    cache_dir: Path,
    fmt: str,
    source: Path,
    files: Sequence[Path],
    image_size: ImageSize | None,
    build: Callable[[], ImageDataset],
) -> ImageDataset:
    """Return the cached data set for this key, or ``build()`` it and store it."""
    entry = cache_path(cache_dir, fmt, source, files, image_size)
    if entry.is_file():
        ds = _read(entry)
        if ds is not None and not (fmt == "folder" and ds.train_files is None):
            return ds  # (a folder entry cached before file names were kept is rebuilt)
    ds = build()
    _write(entry, ds)
    return ds


def content_entry(cache_dir: Path, stem: str, key: Iterable[str]) -> Path:
    """The entry ``<stem>-<hash>.pt`` of a source keyed by what it holds, not by where it lies:
    ``key`` names the content (e.g. the decoding, the size and each file's SHA-256, in row
    order), so entries of other content never share a name. ``stem`` groups the entries of
    one source (writing one deletes the others, :func:`write_entry`); it must not end in
    ``-`` followed by 20 hex digits of another source's stem."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}\0content\n".encode())
    for part in key:
        digest.update(f"{part}\n".encode())
    return cache_dir / f"{stem}-{digest.hexdigest()[:20]}.pt"


def read_entry(entry: Path) -> ImageDataset | None:
    """The data set stored in ``entry``; None when there is none or it cannot be read (with
    a warning)."""
    return _read(entry) if entry.is_file() else None


def write_entry(entry: Path, ds: ImageDataset) -> None:
    """Store ``ds`` in ``entry`` atomically and delete the other entries of its stem; a cache
    that cannot be written only warns."""
    _write(entry, ds)


def drop_entries(cache_dir: Path, source: Path) -> int:
    """Delete every entry of ``source`` (whatever its key); returns how many were deleted.

    For a source whose files left or changed in a way the key cannot see (the same size and
    modification time): the next :func:`cached` builds it again.
    """
    stem = _source_stem(source.resolve())
    n = 0
    for old in cache_dir.glob(f"{glob_escape(stem)}-*.pt"):
        if old.name.rsplit("-", 1)[0] == stem:
            old.unlink(missing_ok=True)
            n += 1
    return n


def _source_stem(source: Path) -> str:
    """``<readable name>-<hash of the path>``: entries of one source share this prefix."""
    name = slug(source.name, keep="._-")[:40] or "root"
    return f"{name}-{hashlib.sha256(str(source).encode()).hexdigest()[:8]}"


def _read(entry: Path) -> ImageDataset | None:
    """Load an entry; None (with a warning) if it is unreadable or malformed."""
    try:
        d = torch.load(entry, map_location="cpu", weights_only=True)
        return ImageDataset(
            name=str(d["name"]),
            classes=tuple(str(c) for c in d["classes"]),
            **{k: d[k] for k in _TENSORS},
            train_files=tuple(d["train_files"]) if "train_files" in d else None,
        )
    except (
        OSError,
        RuntimeError,
        KeyError,
        TypeError,
        ValueError,
        EOFError,
        pickle.UnpicklingError,
        DataError,
    ) as exc:
        warnings.warn(f"ignoring unreadable cache entry {entry}: {one_line(exc)}", stacklevel=3)
        return None


def _write(entry: Path, ds: ImageDataset) -> None:
    """Store ``ds`` atomically and delete older entries of the same source; warn on failure."""
    payload = {k: getattr(ds, k).contiguous() for k in _TENSORS}
    payload.update(name=ds.name, classes=list(ds.classes), version=CACHE_VERSION)
    if ds.train_files is not None:
        payload["train_files"] = list(ds.train_files)
    tmp: str | None = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=f".{entry.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; let other users of a shared cache read it
        os.replace(tmp, entry)
        tmp = None
        stem = entry.name.rsplit("-", 1)[0]
        for old in entry.parent.glob(f"{glob_escape(stem)}-*.pt"):
            if old != entry and old.name.rsplit("-", 1)[0] == stem:
                old.unlink(missing_ok=True)
    except OSError as exc:
        warnings.warn(
            f"could not write the data cache {entry}: {one_line(exc)}; set cache_dir or "
            f"${CACHE_ENV} to a writable folder to avoid decoding again.",
            stacklevel=3,
        )
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def glob_escape(text: str) -> str:
    """Escape glob metacharacters (``*?[``) in ``text``."""
    return re.sub(r"([*?\[])", r"[\1]", text)
