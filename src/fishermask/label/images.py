"""Finding, decoding and caching the images of a labeling project.

The image folder is read recursively. Files ending in .jpg/.jpeg/.png/.webp/.bmp/.gif/.tif/
.tiff (any case) are images (an animated GIF or a multi-page TIFF: its first frame); hidden
files and folders (name starting with ``.``) are ignored, and so is every other file but one
of another image format (:data:`NOT_READ`, e.g. an iPhone's .heic): those are refused, each
with the reason and the fix, rather than left out without a word. A symbolic link to a file is
followed only when its target lies inside the image folder; one to a folder is not followed,
and listed (:data:`LINKED`); each file is added once: a link
(symbolic or hard) to a file that is already an image of the project, or that the scan adds
under its own path, is not added and is reported.

Every image's SHA-256 is stored when it is scanned. A file whose size or modification time
differs from the stored ones is hashed again (:func:`check_file`); content that no longer
matches the stored hash is *changed*, and decoding it again (:func:`segment_images`) is refused
(:class:`ImageChanged`) instead of silently training on new pixels under the old label.

Decoding converts every mode to the project's channels (1 grey or 3 RGB) properly:
16-bit and 32-bit integer grey is *scaled* to 0..255 (not clipped), float images in
[0, 1] are scaled, transparent images (RGBA, LA, palette with transparency) are composited
on white, CMYK/YCbCr/palette become RGB; EXIF orientation is applied; then the image is
fitted to the project's ``H x W`` as the project's ``fit`` says (:data:`FITS`,
:func:`fit_to`): ``stretch`` resizes it (bilinear) to ``H x W``, distorting a photo of another
aspect; ``pad`` resizes it keeping its aspect so that it fits inside and fills the rest with
the image's own mean colour; ``crop`` resizes it keeping its aspect so that it covers ``H x W``
and keeps the centre. Decoded images are stored in the data cache
(:mod:`fishermask.data.cache`), one entry per scan ("segment"), so each file is decoded once;
the entry's key names the fit (:func:`_decoding`), so pixels decoded under one fit are never
read under another. An entry is keyed by the project, the segment, the decoding (channels and
fit) and size, and each image's stored SHA-256 (:func:`segment_entry`), not by where the files
lie: a project copied or moved together with its images (another folder, another machine
given the cache too) decodes nothing again, and images of other content never share an entry.
Before cached pixels are used every file is checked as :func:`check_file` does (a stat; a hash
when its size or time is not the stored one), so content changed since the scan is refused,
never shown with the pixels of the old.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from fishermask.data.images import BOMBS, ImageSize, bombs_refused, one_line, too_large
from fishermask.errors import ConfigError, DataError
from fishermask.text import AND_MORE_APART, listed

if TYPE_CHECKING:  # torch and the cache are imported where used (label status etc. start without)
    import torch

    from fishermask.data.base import ImageDataset

#: Extensions read from the image folder (compared lower-case).
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
#: Extensions of image formats not read (compared lower-case): a file so named is refused,
#: saying so (a camera's or phone's photos left out in silence would look like a smaller
#: folder), where a file of any other name is ignored.
NOT_READ = (
    ".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".psd", ".svg", ".ico", ".tga",
    ".exr", ".hdr", ".ppm", ".pgm", ".pbm", ".pnm",
    ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".raw",
)  # fmt: skip
#: Why a symbolic link to a folder adds nothing (links to folders are not followed): one to a
#: folder elsewhere, one to a folder of the image folder.
LINKED = (
    "a symbolic link to a folder, which is not followed: its images are not added (move or "
    "copy the folder into the image folder to label them)"
)
LINKED_INSIDE = (
    "a symbolic link to a folder of the image folder, which is not followed: its images are "
    "added under their own paths"
)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_INT16 = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
#: EXIF orientations that turn the image a quarter (transposed, rotated 90 or 270 degrees).
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
#: How an image is fitted to the project's ``H x W`` (:func:`fit_to`).
FITS = ("stretch", "pad", "crop")
#: The fit of a new project: nothing is cut off and nothing distorted (docs/decisions.md).
DEFAULT_FIT = "pad"
#: The fit of a project made before the setting existed (no ``fit`` key): what it decoded with.
LEGACY_FIT = "stretch"


@dataclass(frozen=True)
class Found:
    """A readable image found by :func:`scan_folder`."""

    path: str  # relative to the root, with "/" separators
    sha256: str
    bytes: int
    width: int  # as shown: EXIF orientation applied
    height: int
    mtime_ns: int
    pixels: np.ndarray  # [Ch, H, W] uint8, decoded at the project's size


@dataclass(frozen=True)
class ScanResult:
    found: list[Found]
    unreadable: list[tuple[str, str]]  # (relative path, reason)


class ImageChanged(DataError):
    """Images whose content no longer matches the hash stored when they were scanned
    (their relative paths in ``paths``)."""

    def __init__(self, message: str, paths: Sequence[str]) -> None:
        super().__init__(message)
        self.paths = list(paths)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_file(
    root: Path,
    rel: str,
    sha256: str,
    size: int,
    mtime_ns: int,
    *,
    verify: bool = False,
    root_real: Path | None = None,
) -> str:
    """The state of a scanned image's file: ``"ok"``, ``"touched"`` (same content, new
    modification time), ``"changed"`` (content differs from ``sha256``) or ``"missing"`` (no
    longer a file inside the image folder).

    The content is hashed when the size or modification time differs from the stored ones,
    or always with ``verify``. ``root_real`` is ``root`` with links resolved (computed here
    unless a caller checking many files passes it).
    """
    full = root / rel
    if not inside(root_real or Path(os.path.realpath(root)), full):
        return "missing"
    try:
        st = full.stat()
        if not verify and st.st_size == size and st.st_mtime_ns == mtime_ns:
            return "ok"
        same = file_sha256(full) == sha256
    except OSError:
        return "missing"
    if not same:
        return "changed"
    return "ok" if st.st_mtime_ns == mtime_ns else "touched"


def is_hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def candidate_files(
    root: Path,
    known: set[str] | frozenset[str] = frozenset(),
    once: str = ", which is already an image of the project: each file is added once",
    to: str = "label it",
) -> tuple[list[str], list[tuple[str, str]]]:
    """Relative paths of image files under ``root`` (sorted), and refused files with reasons.

    One path per file: paths that name the same file (a symbolic link to another image of the
    folder, or a hard link) keep the ones in ``known`` (already in the project), else the
    path that is not a symbolic link, else the first in sorted order; the others are refused,
    the reason ending with ``once`` (``{keep}`` in it: the path kept); a file of a format
    not read says to convert it ``to`` (``label it``; ``predict it`` for ``label predict``).
    """
    root_real = Path(os.path.realpath(root))
    refused: list[tuple[str, str]] = []
    by_file: dict[tuple[int, int] | str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            # not followed (os.walk's default): listed, not left out without a word
            dirnames.remove(name)
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            real = Path(os.path.realpath(full))
            refused.append((rel, LINKED_INSIDE if real.is_relative_to(root_real) else LINKED))
        for name in filenames:
            if name.startswith("."):
                continue
            if not name.lower().endswith(EXTENSIONS):
                if name.lower().endswith(NOT_READ):
                    rel = (Path(dirpath) / name).relative_to(root).as_posix()
                    refused.append((rel, not_read(name, to)))
                continue
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if not inside(root_real, full):
                refused.append((rel, "a symbolic link to a file outside the image folder"))
                continue
            try:
                st = full.stat()  # links followed: the file itself
                key: tuple[int, int] | str = (st.st_dev, st.st_ino)
            except OSError:
                key = rel  # vanished meanwhile: read_one reports it
            by_file.setdefault(key, []).append(rel)
    out: list[str] = []
    for paths in by_file.values():
        paths.sort()
        keep = [p for p in paths if p in known]
        if not keep:
            plain = [p for p in paths if not os.path.islink(root / p)]
            keep = [plain[0] if plain else paths[0]]
        out.extend(keep)
        for p in paths:
            if p not in keep:
                refused.append(
                    (
                        p,
                        f"the same file as {keep[0]} (a symbolic or hard link to it)"
                        + once.format(keep=keep[0]),
                    )
                )
    refused.sort()
    return sorted(out), refused


def not_read(name: str, to: str = "label it") -> str:
    """Why a file named as an image of a format not read (:data:`NOT_READ`) is not added
    (``to``: what converting it is for)."""
    ext = os.path.splitext(name)[1].lower()
    return (
        f"a {ext} file, which fishermask label does not read (it reads "
        f"{', '.join(EXTENSIONS)}); convert it (e.g. to JPEG or PNG) to {to}"
    )


def refused_lines(refused: Sequence[tuple[str, str]], verb: str, shown: int = 3) -> list[str]:
    """The lines that list files not added (``verb``: ``not added``, ``not read``): one per
    file, ``"not added PATH: why"``, but the files of a reason more than ``shown`` share (a
    folder of .heic photos) are one line, ``"not added N files, each why: A, B, C and M
    more"``, in the place of the first."""
    by_why: dict[str, list[str]] = {}
    for rel, why in refused:
        by_why.setdefault(why, []).append(rel)
    lines = []
    done: set[str] = set()
    for rel, why in refused:
        paths = by_why[why]
        if len(paths) <= shown:
            lines.append(f"{verb} {rel}: {why}")
        elif why not in done:
            done.add(why)
            lines.append(f"{verb} {len(paths)} files, each {why}: {listed(paths, shown)}")
    return lines


def count_new_files(
    root: Path,
    known: set[str] | frozenset[str],
    refused: Mapping[str, Sequence[int]] | None = None,
) -> int:
    """How many image files under ``root`` are not in ``known`` (relative paths): the files
    ``label scan`` would try to add. Cheap (names only, as :func:`candidate_files` walks:
    ~50 ms for 30k files; only a symbolic link not in ``known`` is resolved, and only a file
    in ``refused`` is stat'ed), so ``label status`` and the page can say that a scan is due;
    :func:`candidate_files` and the decode decide what is added. ``refused``: the files the
    last scan did not add (unreadable, a second link to an image), ``{path: [size,
    mtime_ns]}`` of the file (not followed) then: not counted while they are so (that scan
    said why), counted again once changed or replaced."""
    refused = refused or {}
    root_real = Path(os.path.realpath(root))
    n = 0
    stack = [("", str(root))]
    while stack:
        prefix, folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:  # as os.walk in candidate_files: an unreadable folder is passed over
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir(follow_symlinks=False):
                stack.append((prefix + e.name + "/", e.path))
            elif (
                e.name.lower().endswith(EXTENSIONS)
                and prefix + e.name not in known
                and (not e.is_symlink() or inside(root_real, Path(e.path)))
                and not _still_refused(e, refused.get(prefix + e.name))
            ):
                n += 1
    return n


def _still_refused(entry: os.DirEntry[str], was: Sequence[int] | None) -> bool:
    """Whether a file the last scan refused (``was``: its ``[size, mtime_ns]`` then) is
    unchanged since."""
    if was is None:
        return False
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    return [st.st_size, st.st_mtime_ns] == list(was)


def refused_stats(root: Path, paths: Iterable[str]) -> dict[str, list[int]]:
    """``{path: [size, mtime_ns]}`` (not followed) of the files a scan refused, for
    :func:`count_new_files`; a file gone meanwhile is left out."""
    out: dict[str, list[int]] = {}
    for rel in paths:
        try:
            st = os.lstat(root / rel)
        except OSError:
            continue
        out[rel] = [st.st_size, st.st_mtime_ns]
    return out


def inside(root_real: Path, path: Path) -> bool:
    """Whether ``path`` (links resolved) is a regular file inside ``root_real``."""
    real = Path(os.path.realpath(path))
    return real.is_relative_to(root_real) and real.is_file()


def to_channels(img: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL mode to ``L`` (channels=1) or ``RGB`` (channels=3), scaling deep pixels."""
    mode = img.mode
    if mode in _INT16 or mode == "I" or mode == "F":
        a = np.asarray(img).astype(np.float64)
        if mode in _INT16:
            a = a * (255.0 / 65535.0)
        elif mode == "I":
            top = float(a.max()) if a.size else 0.0
            a = a * (255.0 / 65535.0) if top > 255 else a  # 16-bit data in a 32-bit container
        else:
            top = float(a.max()) if a.size else 0.0
            a = a * 255.0 if top <= 1.0 else a
        img = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")
    elif mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if channels == 1:
        return img if img.mode == "L" else img.convert("L")
    return img if img.mode == "RGB" else img.convert("RGB")


def decode(
    data: bytes, size: ImageSize, channels: int, fit: str = LEGACY_FIT
) -> tuple[np.ndarray, int, int]:
    """Decode image bytes into ``[Ch, H, W]`` uint8 at ``size`` (fitted as ``fit`` says:
    :func:`fit_to`); also the original width and height as the image is shown: upright, its
    EXIF orientation applied (a phone's portrait photo stored 4032 x 3024 and turned a quarter
    is 3024 wide, 4032 high)."""
    with bombs_refused(), Image.open(io.BytesIO(data)) as img:
        width, height = img.size
        if img.getexif().get(ExifTags.Base.Orientation) in _QUARTER_TURNS:
            width, height = height, width
        if img.format == "JPEG":
            img.draft(img.mode, (size[1], size[0]))  # decode at a reduced scale when large
        img.load()
        arr = prepare(img, size, channels, fit)
    return arr, width, height


def prepare(img: Image.Image, size: ImageSize, channels: int, fit: str = LEGACY_FIT) -> np.ndarray:
    """A loaded image as the project stores it: EXIF orientation applied, converted to the
    project's channels (:func:`to_channels`), fitted to ``size`` as ``fit`` says
    (:func:`fit_to`); ``[Ch, H, W]`` uint8. The step of :func:`decode` after the file is read
    (used by the exported model's loader for images given as PIL images or arrays)."""
    img = ImageOps.exif_transpose(img)
    img = to_channels(img, channels)
    img = fit_to(img, size, fit)
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)


def check_fit(fit: str, flag: str = "--fit") -> str:
    """``fit`` when it is one of :data:`FITS`, else one line (:class:`ConfigError`)."""
    if fit not in FITS:
        raise ConfigError(
            f"{flag} {fit!r}: not a way to fit an image; use one of {', '.join(FITS)} (stretch: "
            "resize to H x W, distorting other aspects; pad: keep the aspect, fill the rest with "
            "the image's mean colour; crop: keep the aspect, cut the ends off)."
        )
    return fit


def fit_to(img: Image.Image, size: ImageSize, fit: str) -> Image.Image:
    """``img`` (mode L or RGB) at ``size`` = ``(H, W)``, bilinear:

    - ``stretch``: resized to ``W x H`` (a 2:1 photo in a square is squeezed to half its width);
    - ``pad`` (letterbox): resized keeping its aspect to the largest size that fits in
      ``W x H`` (each side rounded, at least 1), centred (an odd pixel of padding goes below or
      right), the rest filled with the resized image's mean colour per channel (rounded). That
      colour is neutral for this image: near 0 after normalisation when the image's mean is
      near the data set's, without a hard black or white edge, and it depends on the image
      alone, so the cached pixels and an exported model's decoding need nothing else;
    - ``crop``: the largest centred box of ``W:H`` aspect in the image (its shorter side whole)
      resized to ``W x H``; the ends of the longer side are cut off.

    An image already ``W x H`` is returned as it is, whatever the fit.
    """
    h, w = size
    iw, ih = img.size
    if (iw, ih) == (w, h):
        return img
    bilinear = Image.Resampling.BILINEAR
    if fit == "stretch":
        return img.resize((w, h), bilinear)
    if fit == "crop":
        if iw * h > ih * w:  # wider than W:H: the left and right ends are cut
            bw = ih * w / h
            box = ((iw - bw) / 2, 0.0, (iw + bw) / 2, float(ih))
        else:  # taller: the top and bottom are cut
            bh = iw * h / w
            box = (0.0, (ih - bh) / 2, float(iw), (ih + bh) / 2)
        return img.resize((w, h), bilinear, box=box)
    check_fit(fit)
    scale = min(w / iw, h / ih)
    nw = min(w, max(1, round(iw * scale)))
    nh = min(h, max(1, round(ih * scale)))
    inner = img if (nw, nh) == (iw, ih) else img.resize((nw, nh), bilinear)
    a = np.asarray(inner, dtype=np.float64).reshape(nh * nw, -1)  # [pixels, Ch]
    fill = tuple(int(v) for v in np.rint(a.mean(axis=0)))
    canvas = Image.new(inner.mode, (w, h), fill[0] if len(fill) == 1 else fill)
    canvas.paste(inner, ((w - nw) // 2, (h - nh) // 2))
    return canvas


def _cannot_decode(exc: BaseException) -> str:
    """Why a file was not decoded, in words: Pillow's "Truncated File Read" or "image file is
    truncated (3 bytes not processed)" say a file cut short, which they do not name."""
    said = one_line(exc)
    if "truncated" in said.lower():
        return (
            f"a file cut short: its image data ends early (Pillow: {said}); copy it again "
            "from its source"
        )
    return said


def read_one(root: Path, rel: str, size: ImageSize, channels: int, fit: str = LEGACY_FIT) -> Found:
    """Read, hash and decode one file (fitted as ``fit`` says); raises ``DataError`` with the
    reason if it cannot."""
    full = root / rel
    try:
        data = full.read_bytes()
        st = full.stat()
    except OSError as exc:
        raise DataError(exc.strerror or one_line(exc)) from None
    if not data:
        raise DataError("an empty file (0 bytes)")
    try:
        pixels, width, height = decode(data, size, channels, fit)
    except UnidentifiedImageError:
        raise DataError("not a readable image (unknown or broken format)") from None
    except BOMBS as exc:
        raise DataError(too_large(exc)) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(_cannot_decode(exc)) from None
    return Found(
        path=rel,
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        width=width,
        height=height,
        mtime_ns=st.st_mtime_ns,
        pixels=pixels,
    )


def scan_folder(
    root: Path,
    size: ImageSize,
    channels: int,
    known: set[str] | frozenset[str] = frozenset(),
    advance: Callable[[int], None] | None = None,
    *,
    fit: str,
) -> ScanResult:
    """Decode every image under ``root`` whose relative path is not in ``known``, fitted to
    ``size`` as ``fit`` says."""
    files, unreadable = candidate_files(root, known)
    found: list[Found] = []
    new = [f for f in files if f not in known]
    for rel in new:
        try:
            found.append(read_one(root, rel, size, channels, fit))
        except DataError as exc:
            unreadable.append((rel, str(exc)))
        if advance is not None:
            advance(1)
    unreadable.sort()
    return ScanResult(found, unreadable)


def guess_channels(root: Path, files: Sequence[str]) -> int:
    """1 if every image has a grey mode, else 3 (RGB). Every file's header is read (no
    pixels are decoded: about 0.1 ms a file), not a sample: a folder whose first files are
    grey scans would otherwise make a grey project of its colour photos, for good."""
    grey = {"1", "L", "LA", "La", "I", "F"} | _INT16
    for rel in files:
        try:
            with bombs_refused(), Image.open(root / rel) as img:
                if img.mode not in grey:
                    return 3
        except (OSError, ValueError, SyntaxError, *BOMBS):
            continue
    return 1


class Scanned(Protocol):
    """A scanned image as stored: :class:`Found`, :class:`fishermask.label.store.ImageRow`."""

    @property
    def path(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def bytes(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...


def _stem(project_id: str, segment: int) -> str:
    """The name the cache entries of one segment start with (also the folder-keyed source name
    of an earlier version's entries, under the image folder)."""
    return f".fishermask-label-{project_id}-segment-{segment}"


def _decoding(channels: int, fit: str) -> str:
    """How the pixels were made, a part of every key (the cache's loader format): ``label-c3``
    for ``stretch`` (the key of every entry written before fits existed, so a project made then
    keeps its decoded pixels), ``label-c3-pad`` and ``label-c3-crop`` for the others, so that
    pixels decoded under one fit are never read under another."""
    return f"label-c{channels}" if fit == "stretch" else f"label-c{channels}-{check_fit(fit)}"


def segment_entry(
    cache_dir: Path,
    project_id: str,
    segment: int,
    sha256: Sequence[str],
    size: ImageSize,
    channels: int,
    *,
    fit: str,
) -> Path:
    """The cache entry of a segment's decoded images: keyed by the decoding, the size and the
    SHA-256 of each image in position order, not by where the files lie (a copy of the project
    and its images in another folder, or on another machine sharing the cache, finds it);
    entries of other content never share a key."""
    from fishermask.data.cache import content_entry

    return content_entry(
        cache_dir,
        _stem(project_id, segment),
        [_decoding(channels, fit), f"size {size[0]}x{size[1]}", f"images {len(sha256)}", *sha256],
    )


def drop_segment_cache(cache_dir: Path, root: Path, project_id: str, segment: int) -> int:
    """Delete the cached decoded images of one segment (every key, and an earlier version's
    entries keyed by the files under ``root``); the next load decodes the segment's images
    again, each checked against its stored hash."""
    from fishermask.data.cache import drop_entries

    own = re.compile(re.escape(_stem(project_id, segment)) + r"-[0-9a-f]{20}\.pt")
    n = 0
    for f in cache_dir.glob(f"{_stem(project_id, segment)}-*.pt"):
        if own.fullmatch(f.name):
            f.unlink(missing_ok=True)
            n += 1
    return n + drop_entries(cache_dir, root / _stem(project_id, segment))


def carry_segment(
    cache_dir: Path,
    project_id: str,
    segment: int,
    old: Sequence[str],
    keep: Sequence[int],
    size: ImageSize,
    channels: int,
    *,
    fit: str,
) -> bool:
    """Keep the cached decoded images ``keep`` (positions in ``old``) of a segment that lost
    the others, without decoding: ``old`` is the SHA-256 of each of the segment's images, in
    position order, as when its entry was written. False (nothing changed) when that entry
    is not in the cache (the segment is then decoded again on the next load, each image
    checked against its hash)."""
    import torch

    from fishermask.data.cache import read_entry, write_entry

    ds = read_entry(segment_entry(cache_dir, project_id, segment, old, size, channels, fit=fit))
    if ds is None or ds.x_train.shape != (len(old), channels, *size):
        return False
    sel = torch.tensor(list(keep), dtype=torch.int64)
    kept = [old[i] for i in keep]
    write_entry(
        segment_entry(cache_dir, project_id, segment, kept, size, channels, fit=fit),
        segment_dataset(ds.x_train[sel].contiguous().numpy(), _stem(project_id, segment)),
    )
    return True


def earlier_entry(
    cache_dir: Path,
    root: Path,
    project_id: str,
    segment: int,
    stats: Sequence[tuple[str, int, int]],
    size: ImageSize,
    channels: int,
    *,
    fit: str,
) -> tuple[ImageDataset, Path] | None:
    """A segment's decoded images as an earlier version cached them, keyed by the files'
    absolute paths under ``root``, sizes and modification times (``stats``: ``(path, size,
    mtime_ns)`` per image, in position order), and the source whose entries they are (to
    delete once taken over); None when there is none, or it does not fit."""
    from fishermask.data.cache import entry_path, read_entry

    source = root / _stem(project_id, segment)
    entry = entry_path(
        cache_dir, _decoding(channels, fit), source, [(root / p, n, t) for p, n, t in stats], size
    )
    ds = read_entry(entry)
    if ds is None or ds.x_train.shape != (len(stats), channels, *size) or ds.train_files:
        return None
    return ds, source


def segment_dataset(pixels: np.ndarray, name: str) -> ImageDataset:
    """A decoded segment in the cache's container (labels are placeholders)."""
    import torch

    from fishermask.data.base import ImageDataset

    x = torch.from_numpy(pixels)
    return ImageDataset(
        name=name,
        x_train=x,
        y_train=torch.zeros(len(x), dtype=torch.int64),
        x_test=x[:0],
        y_test=torch.zeros(0, dtype=torch.int64),
        classes=("image",),
    )


def _changed(root: Path, changed: Sequence[str]) -> ImageChanged:
    return ImageChanged(
        f"image {listed(changed, 1, show=root.joinpath, more=AND_MORE_APART)} changed "
        "since it was scanned (its content no longer matches the stored hash)",
        changed,
    )


def _unreadable(root: Path, rel: str, why: str) -> DataError:
    return DataError(
        f"image {root / rel} was scanned earlier but cannot be read now ({why}); "
        "restore it (labels refer to it)."
    )


def _refuse_changed(root: Path, rows: Sequence[Scanned]) -> list[tuple[str, int, int]]:
    """Refuse (:class:`ImageChanged`) when a file's content is not the one scanned: a file
    whose size and modification time are the stored ones is taken as unchanged (as
    :func:`check_file`), another one is hashed (a copy made with new times: same content).
    Returns ``(path, size, mtime_ns)`` of each file now."""
    stats: list[tuple[str, int, int]] = []
    changed: list[str] = []
    for r in rows:
        full = root / r.path
        try:
            st = full.stat()
            if (st.st_size, st.st_mtime_ns) != (r.bytes, r.mtime_ns) and (
                st.st_size != r.bytes or file_sha256(full) != r.sha256
            ):
                changed.append(r.path)
        except OSError as exc:
            raise _unreadable(root, r.path, exc.strerror or one_line(exc)) from None
        stats.append((r.path, st.st_size, st.st_mtime_ns))
    if changed:
        raise _changed(root, changed)
    return stats


def segment_images(
    cache_dir: Path,
    root: Path,
    project_id: str,
    segment: int,
    rows: Sequence[Scanned],
    size: ImageSize,
    channels: int,
    pixels: np.ndarray | None = None,
    missing_fix: str = "restore it: the project's labels and models refer to it",
    *,
    fit: str,
) -> torch.Tensor:
    """The decoded images ``[len(rows), Ch, H, W]`` of one segment (``rows``: its images as
    stored, in position order), from the cache if present (:func:`segment_entry`).

    ``pixels`` (just decoded by a scan) is stored instead of decoding again. Otherwise each
    file is first checked against the stored one: one whose size or modification time
    differs is hashed, and content that changed since the scan raises :class:`ImageChanged`
    (its old label would otherwise train on the new pixels, or the cached pixels stand for
    content that is gone); decoding again checks each file's hash too. A missing file is
    refused (:class:`DataError` ending with ``missing_fix``). An entry of an earlier version
    (keyed by the files' absolute paths, :func:`earlier_entry`) is taken over, not decoded
    again.
    """
    from fishermask.data.cache import drop_entries, read_entry, write_entry

    paths = [r.path for r in rows]
    shape = (len(rows), channels, *size)
    entry = segment_entry(
        cache_dir, project_id, segment, [r.sha256 for r in rows], size, channels, fit=fit
    )
    name = _stem(project_id, segment)
    missing = [p for p in paths if not (root / p).exists()]
    if missing:
        raise DataError(
            f"image {listed(missing, 1, show=root.joinpath, more=AND_MORE_APART)} of this project "
            f"is missing (moved or deleted since it was scanned); {missing_fix}."
        )
    if pixels is not None:
        ds = segment_dataset(pixels, name)
        write_entry(entry, ds)
        return ds.x_train
    stats = _refuse_changed(root, rows)
    ds = read_entry(entry)
    if ds is not None and ds.x_train.shape == shape:
        return ds.x_train
    earlier = earlier_entry(cache_dir, root, project_id, segment, stats, size, channels, fit=fit)
    if earlier is not None:
        write_entry(entry, segment_dataset(earlier[0].x_train.numpy(), name))
        drop_entries(cache_dir, earlier[1])
        return earlier[0].x_train
    out = np.empty(shape, dtype=np.uint8)
    changed: list[str] = []
    for i, r in enumerate(rows):
        try:
            f = read_one(root, r.path, size, channels, fit)
        except DataError as exc:
            raise _unreadable(root, r.path, str(exc)) from None
        if f.sha256 != r.sha256:
            changed.append(r.path)
        out[i] = f.pixels
    if changed:
        raise _changed(root, changed)
    ds = segment_dataset(out, name)
    write_entry(entry, ds)
    return ds.x_train
