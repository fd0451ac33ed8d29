"""Image-folder trees, from a directory or straight from a ``.tar[.gz]`` archive.

Layout: ``<root>/train/<class>/<image>`` and ``<root>/test/<class>/<image>``
(``.png``/``.jpg``/``.jpeg``, any case), optionally under one leading folder
(``cifar10/train/...``). Class names are the sorted folder names of ``train``
(label = position in that order); ``test`` must hold the same class folders.
Images are ordered by class, then file name. Hidden entries (``.*``) and
``__MACOSX`` folders are skipped; top-level folders other than ``train`` and
``test`` are skipped with a warning. An archive is read in one streaming pass
(its image bytes are held in memory, never written to disk), then decoded.
"""

from __future__ import annotations

import os
import tarfile
import warnings
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from fishermask.data.base import ImageDataset
from fishermask.data.images import (
    IMAGE_EXTENSIONS,
    UNSUPPORTED_IMAGE_EXTENSIONS,
    ImageSize,
    decode_image,
    one_line,
    stack_images,
)
from fishermask.data.progress import progress_bar
from fishermask.errors import DataError
from fishermask.text import ELIDED, counted, listed

SPLITS = ("train", "test")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_MAX_DEPTH = 5  # leading folder / split / class / (nested folder) / file
_LAYOUT = "<root>/train/<class>/*.png and <root>/test/<class>/*.png (or .jpg/.jpeg)"

Entry = tuple[tuple[str, ...], bool]  # (path parts relative to the root, is a directory)


@dataclass(frozen=True)
class TreeLayout:
    """Where the images of a tree are: class names and, per split, ``(label, member)`` pairs."""

    classes: tuple[str, ...]
    files: dict[str, list[tuple[int, str]]]  # split -> [(label, relative POSIX path)], ordered


def is_archive(path: Path) -> bool:
    """True if ``path`` is a file with a tar suffix (or, failing that, readable as a tar)."""
    if not path.is_file():
        return False
    if path.name.lower().endswith(TAR_SUFFIXES):
        return True
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def looks_like_tree(path: Path) -> bool:
    """True if folder ``path`` has a ``train``/``test`` folder, directly or in its only folder."""

    def has_split(d: Path) -> bool:
        return any(c.is_dir() and c.name.lower() in SPLITS for c in d.iterdir())

    if has_split(path):
        return True
    subdirs = [c for c in path.iterdir() if c.is_dir() and not _hidden(c.name)]
    return len(subdirs) == 1 and has_split(subdirs[0])


def tree_files(path: Path) -> list[Path]:
    """Files whose size and mtime key the decoded cache: the archive, or every file of the tree."""
    if not path.is_dir():
        return [path]
    return [path / "/".join(parts) for parts, is_dir in _scan_dir(path) if not is_dir]


def load_folder(path: Path, image_size: ImageSize | None, progress: bool) -> ImageDataset:
    """Decode an image-folder tree (directory or tar archive) into an ``ImageDataset``."""
    if path.is_dir():
        entries = _scan_dir(path)

        def read(rel: str) -> bytes | Path:
            return path / rel

        def describe(rel: str) -> str:
            return str(path / rel)
    else:
        blobs: dict[str, bytes] = {}
        entries = _scan_tar(path, blobs, progress)

        def read(rel: str) -> bytes | Path:
            return blobs.pop(rel)  # free the encoded bytes once decoded

        def describe(rel: str) -> str:
            return f"'{rel}' in archive {path}"

    layout = resolve_layout(entries, str(path), describe)
    images: list[np.ndarray] = []
    names: list[str] = []
    failed: list[tuple[str, DataError]] = []  # every file that cannot be decoded, said at once
    total = sum(len(v) for v in layout.files.values())
    with progress_bar(f"decoding {path.name}", total, progress) as advance:
        for split in SPLITS:
            for _, rel in layout.files[split]:
                names.append(describe(rel))
                try:
                    images.append(decode_image(read(rel), names[-1], image_size))
                except DataError as exc:
                    failed.append((names[-1], exc))
                advance(1)
    if failed:
        message = str(failed[0][1])
        if len(failed) > 1:
            more = [name for name, _ in failed[1:]]
            message = (
                f"{message.removesuffix('.')}, and the {len(more)} more that cannot be decoded "
                f"either: {listed(more, 5, more=ELIDED)}."
            )
        raise DataError(message)
    x = torch.from_numpy(stack_images(images, names))  # [N_train + N_test, Ch, H, W]
    n_train = len(layout.files["train"])
    labels = {
        s: torch.tensor([lab for lab, _ in layout.files[s]], dtype=torch.int64) for s in SPLITS
    }
    return ImageDataset(
        name=dataset_name(path),
        x_train=x[:n_train].clone(),
        y_train=labels["train"],
        x_test=x[n_train:].clone(),
        y_test=labels["test"],
        classes=layout.classes,
        train_files=tuple(rel for _, rel in layout.files["train"]),
    )


def dataset_name(path: Path) -> str:
    """The data set's name from its path: the file or folder name without archive suffixes."""
    name = path.name
    for suffix in (*TAR_SUFFIXES, ".npz"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def list_archive(path: Path) -> list[Entry]:
    """The entries of a tar archive without decoding images (a cheap listing)."""
    return _scan_tar(path, None, progress=False)


def resolve_layout(
    entries: Iterable[Entry], where: str, describe: Callable[[str], str]
) -> TreeLayout:
    """Find the splits, classes and images of a tree from its entries; raise on any bad layout."""
    items = list(entries)
    prefix = _find_prefix(items, where)
    found: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}  # split -> class -> files
    seen: set[str] = set()
    ignored: set[str] = set()
    unsupported: list[tuple[str, str]] = []  # (relative path, suffix): all said at once
    for parts, is_dir in items:
        rest = parts[len(prefix) :]
        if parts[: len(prefix)] != prefix or not rest:
            continue
        split, rel, ext = rest[0].lower(), "/".join(parts), PurePosixPath(parts[-1]).suffix.lower()
        if split not in SPLITS:
            if not is_dir and ext in IMAGE_EXTENSIONS:
                ignored.add(rest[0])
            continue
        seen.add(split)
        if len(rest) == 1:
            continue
        if len(rest) == 2 and not is_dir:
            if ext in IMAGE_EXTENSIONS:
                raise DataError(
                    f"image {describe(rel)} is not inside a class folder; "
                    f"move it to {split}/<class>/{rest[1]}."
                )
            continue
        files = found[split].setdefault(rest[1], [])
        if is_dir or len(rest) == 2:
            continue
        if ext in UNSUPPORTED_IMAGE_EXTENSIONS:
            unsupported.append((rel, ext))
            continue
        if ext in IMAGE_EXTENSIONS:
            if len(rest) > 3:
                raise DataError(
                    f"image {describe(rel)} is nested below its class folder; images must sit "
                    f"directly in {split}/<class>/."
                )
            files.append(rel)
    if unsupported:
        (first, ext), more = unsupported[0], len(unsupported) - 1
        if more:
            counts: dict[str, int] = {}
            for _, e in unsupported:
                counts[e] = counts.get(e, 0) + 1
            kinds = ", ".join(f"{c} {e}" for e, c in counts.items())
            also = f", and so have {counted(more, 'more file')} ({kinds} in all)"
        raise DataError(
            f"image {describe(first)} has unsupported type {ext}"
            + (also if more else "")
            + f"; convert {'them' if more else 'it'} to .png or .jpg "
            f"(read: {', '.join(IMAGE_EXTENSIONS)})."
        )
    for name in sorted(ignored):
        warnings.warn(
            f"{where}: ignoring folder {name!r}; only 'train' and 'test' are read.", stacklevel=3
        )
    return _check_classes(found, seen, prefix, where, describe)


def _check_classes(
    found: dict[str, dict[str, list[str]]],
    seen: set[str],
    prefix: tuple[str, ...],
    where: str,
    describe: Callable[[str], str],
) -> TreeLayout:
    """Check that both splits exist, no class folder is empty and the class sets agree."""
    for split in SPLITS:
        if split == "test" and "train" in seen and split not in seen:
            raise DataError(
                f"no 'test' split in {where}: move a held-out part of each class's images "
                f"(e.g. 20 %) to test/<class>/ beside train/<class>/; expected {_LAYOUT}."
            )
        if split not in seen:
            raise DataError(f"no '{split}' split in {where}; expected {_LAYOUT}.")
        if not found[split]:
            raise DataError(f"'{split}' split in {where} has no class folders; expected {_LAYOUT}.")
        for cls, files in found[split].items():
            if not files:
                folder = describe("/".join((*prefix, split, cls)))
                raise DataError(
                    f"class folder {folder} has no images ({'/'.join(IMAGE_EXTENSIONS)}); "
                    "add images or remove the folder."
                )
    train, test = set(found["train"]), set(found["test"])
    if train != test:
        raise DataError(
            f"train and test class folders differ in {where}: only in train "
            f"{sorted(train - test)}, only in test {sorted(test - train)}; both splits need the "
            "same classes."
        )
    classes = tuple(sorted(train))
    files = {
        split: [
            (label, rel)
            for label, cls in enumerate(classes)
            for rel in sorted(found[split][cls], key=lambda r: r.rsplit("/", 1)[-1])
        ]
        for split in SPLITS
    }
    return TreeLayout(classes=classes, files=files)


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _parts(rel: str) -> tuple[str, ...] | None:
    """Normalised parts of a relative path, or None for hidden entries."""
    parts = tuple(p for p in rel.replace("\\", "/").split("/") if p not in ("", "."))
    return None if not parts or any(_hidden(p) for p in parts) else parts


def _find_prefix(items: list[Entry], where: str) -> tuple[str, ...]:
    """``()`` if the splits are at the top, ``(folder,)`` if inside one leading folder."""
    folders = [parts for parts, is_dir in items if len(parts) > 1 or is_dir]
    if any(p[0].lower() in SPLITS for p in folders):
        return ()
    tops = {p[0] for p in folders}
    if len(tops) == 1 and any(len(p) > 1 and p[1].lower() in SPLITS for p in folders):
        return (tops.pop(),)
    _, classes = own_class_folders(items)
    if classes:
        raise DataError(no_splits_message(where, classes, archive=True))
    batches = [p for p, is_dir in items if not is_dir and p[-1] == "data_batch_1"]
    if batches:  # cifar-10-python.tar.gz as downloaded: the loader reads its folder
        inner = "/".join(batches[0][:-1])
        raise DataError(
            f"{where} holds the CIFAR-10 python batches ({'/'.join(batches[0])}, ...), which "
            "are read from a folder: "
            + (
                f"extract it (tar xf {where}) and pass the folder it gives, {inner}."
                if inner
                else f"extract it into one (mkdir cifar && tar xf {where} -C cifar) and pass that."
            )
        )
    raise DataError(
        f"{where} is not an image-folder tree: no train/ and test/ folders at its top or inside "
        f"one top-level folder; expected {_LAYOUT}."
    )


def flat_class_folders(items: Iterable[Entry]) -> list[str]:
    """The top-level folders with images directly inside, sorted: a folder of one's own
    images, ``<root>/<class>/*.jpg``, which lacks the train/ and test/ splits."""
    return sorted(
        {
            parts[0]
            for parts, is_dir in items
            if not is_dir
            and len(parts) == 2
            and PurePosixPath(parts[1]).suffix.lower() in IMAGE_EXTENSIONS
        }
    )


def own_class_folders(items: list[Entry]) -> tuple[tuple[str, ...], list[str]]:
    """A folder of one's own images without train/ and test/ (:func:`flat_class_folders`)
    at the top of ``items``, or inside their one top-level folder (as ``tar czf mine.tar.gz
    mine/`` or ``data/pets/<class>/*.jpg`` have it): ``(prefix, classes)``, ``((), [])`` when
    neither."""
    classes = flat_class_folders(items)
    if classes:
        return (), classes
    tops = {parts[0] for parts, is_dir in items if len(parts) > 1 or is_dir}
    if len(tops) != 1:
        return (), []
    top = next(iter(tops))
    inner = flat_class_folders((p[1:], d) for p, d in items if len(p) > 1 and p[0] == top)
    return ((top,), inner) if inner else ((), [])


def own_class_folders_in_dir(root: Path) -> tuple[Path, list[str]]:
    """:func:`own_class_folders` of a directory (looking three levels deep only): the folder
    that holds the class folders, and their names."""
    entries: list[Entry] = []

    def walk(folder: Path, rel: tuple[str, ...], levels: int) -> None:
        for e in sorted(folder.iterdir()):
            if _hidden(e.name):
                continue
            parts = (*rel, e.name)
            entries.append((parts, e.is_dir()))
            if e.is_dir() and levels > 1:
                walk(e, parts, levels - 1)

    walk(root, (), 3)
    prefix, classes = own_class_folders(entries)
    return root.joinpath(*prefix), classes


def no_splits_message(where: str, classes: list[str], *, archive: bool = False) -> str:
    """What to do with class folders that are not in train/ and test/ splits."""
    shown = listed(classes, 5, show=repr, more=ELIDED)
    root = "" if archive else f"{where}/"
    inside = " inside the archive" if archive else ""
    return (
        f"{where} holds {len(classes)} class folders of images ({shown}) but no train/ and "
        f"test/ splits, which a data set needs: move each class folder to "
        f"{root}train/<class>/ and a held-out part of its images (e.g. 20 %) to "
        f"{root}test/<class>/{inside} (docs/experiments.md, 'Your own images', does it in a "
        "few lines)."
    )


def _scan_dir(root: Path) -> list[Entry]:
    """All non-hidden entries of a directory tree, at most ``_MAX_DEPTH`` deep."""
    entries: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        rel = Path(dirpath).relative_to(root).parts
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        if len(rel) + 1 >= _MAX_DEPTH:
            dirnames.clear()  # deep enough to see misplaced images; also stops link cycles
        entries.extend(((*rel, d), True) for d in dirnames)
        entries.extend(((*rel, f), False) for f in sorted(filenames) if not _hidden(f))
    return entries


def _scan_tar(path: Path, blobs: dict[str, bytes] | None, progress: bool) -> list[Entry]:
    """Stream a tar archive once; list its entries and, if ``blobs`` is given, keep image bytes."""
    entries: list[Entry] = []
    try:
        with (
            open(path, "rb") as raw,
            progress_bar(f"reading {path.name}", path.stat().st_size, progress) as advance,
            tarfile.open(fileobj=raw, mode="r|*") as archive,
        ):
            done = 0
            for member in archive:
                parts = _parts(member.name)
                if parts is None or not (
                    member.isdir() or member.isfile() or member.issym() or member.islnk()
                ):
                    continue
                is_image = PurePosixPath(parts[-1]).suffix.lower() in IMAGE_EXTENSIONS
                if (member.issym() or member.islnk()) and is_image:
                    raise DataError(
                        f"'{member.name}' in archive {path} is a link; the archive must hold the "
                        "image files themselves (re-create it without links)."
                    )
                entries.append((parts, member.isdir()))
                if blobs is not None and member.isfile() and is_image:
                    blobs["/".join(parts)] = archive.extractfile(member).read()  # type: ignore[union-attr]
                advance(raw.tell() - done)
                done = raw.tell()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"cannot read archive {path}: {one_line(exc)}; check that it is a complete "
            ".tar/.tar.gz/.tgz file."
        ) from None
    return entries
