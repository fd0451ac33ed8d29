"""Small previews of a project's images for the labeling page's "Labeled" grid
(``GET /api/images/{id}?size=thumb``): the grid showed every full file scaled down by the
browser, megabytes per photo.

A thumbnail is at most :data:`SIDE` pixels on its longest side (never enlarged), EXIF
orientation applied as the browser shows the full image; PNG when the source is a PNG or
has transparency (lossless stays lossless, transparency kept), else JPEG. It is cached on disk
under the project (``PROJECT/thumbs/<sha256>-160-jpg``: no image extension, so a project
folder kept inside its own image folder does not scan its thumbnails as images), keyed by the
SHA-256 of the file's content: the server checks the file against the hash stored when it
was scanned before it looks (409 when it changed, as for the full image), so a changed file
never shows the preview of its old content, and a file accepted again under a new hash gets
a new one.

The batch view's copies (``<sha256>-1024-jpg``, :data:`VIEW`) are cached there too, a few
hundred kilobytes each: unbounded, a project of 100 000 photos grew a cache of tens of
gigabytes. :class:`Cache` bounds it: when the server starts it removes the entries of content
no longer in the project (images forgotten, changed files accepted), and whenever the folder
holds more than its ``max_bytes`` (:data:`MAX_BYTES` unless ``label serve
--preview-cache-mb`` says otherwise) it removes the least recently used entries (a read
touches an entry's modification time) until it holds at most :data:`KEEP` of it. A removed
entry is made again when next asked for. That pass leaves alone a write under way (a ``.tmp``
file younger than :data:`TMP_AGE`): with a small cap one thread's pass removed another's file
before it was renamed into place. A ``PROJECT/thumbs`` that is a symbolic link (a folder
shared by several projects) is never pruned: its entries of other projects are not this
project's to remove (:attr:`Cache.shared` says so in one line, which ``label serve`` prints).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
import time
from collections.abc import Collection
from pathlib import Path

from PIL import Image, ImageOps

from fishermask.data.images import bombs_refused
from fishermask.label.images import to_channels

#: The longest side of a thumbnail, in pixels.
SIDE = 160
#: The longest side of the batch view's image (``size=view``): the page's frame is at most
#: about 310 pixels tall, so a 4000 x 3000 photo of several megabytes was sent to be shown
#: at a twelfth of its size; this is sharp up to a 3x display, a few hundred kilobytes.
VIEW = 1024
#: Where the thumbnails of a project live, relative to its folder.
FOLDER = "thumbs"
#: The most the thumbnail folder holds by default, in bytes (``label serve
#: --preview-cache-mb``): about 10 000 batch views of large photos, or far more thumbnails.
MAX_BYTES = 2048 * 2**20
#: The share of ``max_bytes`` an over-full cache is cut down to (so it is not cut at every
#: new entry).
KEEP = 0.8
#: Seconds a temporary file (``.….tmp``) of a write is left alone by the pruning while the
#: server runs: a write under way (made, written and renamed within milliseconds).
TMP_AGE = 60.0
_KINDS = (("jpg", "image/jpeg"), ("png", "image/png"))
_ALPHA = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def _drawable(img: Image.Image) -> tuple[Image.Image, bool]:
    """``img`` (loaded) as a browser draws it: EXIF orientation applied, in L, RGB or RGBA
    (16-bit grey scaled, CMYK or a palette to RGB); and whether it has transparency."""
    img = ImageOps.exif_transpose(img)
    alpha = img.mode in _ALPHA or (img.mode == "P" and "transparency" in img.info)
    if alpha:
        img = img.convert("RGBA")
    elif img.mode not in ("L", "RGB"):
        grey = img.mode in ("1", "I", "F") or img.mode.startswith("I;")
        img = to_channels(img, 1 if grey else 3)
    return img, alpha


def full_size_png(data: bytes) -> bytes:
    """The image file ``data`` at its own size as PNG (lossless): the page's "actual size" of
    a file a browser does not draw (a TIFF), whose detail a lossy or smaller copy would hide.
    Made on each request, not cached (a TIFF is rare, its copy at full size large)."""
    with bombs_refused(), Image.open(io.BytesIO(data)) as img:
        img.load()
        img, _ = _drawable(img)
        out = io.BytesIO()
        img.save(out, format="PNG", compress_level=1)  # fast: sent once, not kept
        return out.getvalue()


def make(data: bytes, side: int = SIDE) -> tuple[bytes, str]:
    """The thumbnail of the image file ``data``: ``(bytes, extension)``, extension ``jpg`` or
    ``png``."""
    with bombs_refused(), Image.open(io.BytesIO(data)) as img:
        png = img.format == "PNG"
        if img.format == "JPEG":
            img.draft("RGB" if img.mode != "L" else "L", (side, side))  # decode at a reduced scale
        img.load()
        img, alpha = _drawable(img)
        img.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
        out = io.BytesIO()
        if png or alpha:
            img.save(out, format="PNG", optimize=True)
            return out.getvalue(), "png"
        img.save(out, format="JPEG", quality=85, optimize=True)
        return out.getvalue(), "jpg"


class Cache:
    """The thumbnails and batch views of the project in ``project_dir``, in its
    :data:`FOLDER`, at most ``max_bytes`` on disk (see the module's docstring). Safe to use
    from the server's threads; one server per project writes it (the serve lock)."""

    def __init__(self, project_dir: str | os.PathLike[str], max_bytes: int = MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes={max_bytes}: must be >= 0.")
        self.project_dir = Path(project_dir)
        self.folder = self.project_dir / FOLDER
        self.max_bytes = max_bytes
        self._lock = threading.Lock()  # the running size and the renames into place
        self._total: int | None = None  # bytes in the folder, counted at the first prune

    @property
    def shared(self) -> str | None:
        """One line when the folder is a symbolic link (perhaps shared with other projects),
        which is then never pruned; else None."""
        if not os.path.islink(self.folder):
            return None
        return (
            f"{self.folder} is a link to {os.path.realpath(self.folder)}, which other projects "
            "may share: its previews are not pruned (neither those of images no longer in this "
            "project nor beyond --preview-cache-mb), so as to leave theirs; make it a folder "
            "of this project's own to bound it."
        )

    def _entries(self) -> list[tuple[float, int, Path]]:
        """``(last use, bytes, path)`` of every entry (and of a write left unfinished)."""
        out = []
        try:
            names = os.listdir(self.folder)
        except OSError:
            return out
        for name in names:
            path = self.folder / name
            with contextlib.suppress(OSError):
                st = path.stat()
                out.append((st.st_mtime, st.st_size, path))
        return out

    def prune(self, keep: Collection[str] | None = None) -> tuple[int, int]:
        """Remove the entries whose content hash is not in ``keep`` (the project's images, given
        when the server starts, with the writes a kill left unfinished; None: keep all), then
        the least recently used until the folder holds at most ``max_bytes`` (:data:`KEEP` of
        it when it held more). Nothing is removed from a folder that is a link (:attr:`shared`).
        Returns ``(entries removed, bytes left)``."""
        with self._lock:
            if self.shared is not None:
                self._total = 0  # not counted: nothing is pruned there
                return 0, 0
            entries = self._entries()
            removed = 0
            left = []
            for used, size, path in entries:
                # an unfinished write (".…tmp") only when none can be under way: at the start
                gone = path.name.split("-", 1)[0] not in keep if keep is not None else False
                if gone or (keep is not None and path.name.startswith(".")):
                    with contextlib.suppress(OSError):
                        path.unlink()
                        removed += 1
                        continue
                left.append((used, size, path))
            # another thread's write under way (a young ".…tmp") is neither removed nor
            # counted: its writer counts it once it is renamed into place (counted here too,
            # it was counted twice, and the cache pruned early from then on)
            now = time.time()
            left = [e for e in left if not (e[2].name.startswith(".") and now - e[0] < TMP_AGE)]
            total = sum(size for _, size, _ in left)
            if total > self.max_bytes:
                target = int(self.max_bytes * KEEP)
                for _, size, path in sorted(left, key=lambda e: e[0]):  # oldest use first
                    if total <= target:
                        break
                    with contextlib.suppress(OSError):
                        path.unlink()
                        removed += 1
                        total -= size
            self._total = total
            return removed, total

    def get(self, data: bytes, sha256: str, side: int = SIDE) -> tuple[bytes, str]:
        """The thumbnail of ``data`` at most ``side`` pixels a side (whose content hash is
        ``sha256``, checked by the caller) and its media type, from the folder when made
        before (marked as just used), else made and stored there (written atomically; a
        project folder that cannot be written still gets its thumbnail, uncached), the least
        recently used entries removed when the folder then holds more than ``max_bytes``."""
        for ext, media in _KINDS:
            path = self.folder / f"{sha256}-{side}-{ext}"
            try:
                body = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError:
                break
            with contextlib.suppress(OSError):
                os.utime(path)  # the least recently used go first
            return body, media
        body, ext = make(data, side)
        with contextlib.suppress(OSError):
            self.folder.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(body)
                dst = self.folder / f"{sha256}-{side}-{ext}"
                # renamed and counted at once: a prune counts the file or its writer does,
                # never both; a preview another request wrote meanwhile is replaced, not
                # added to the size again
                with self._lock:
                    try:
                        before = dst.stat().st_size
                    except FileNotFoundError:
                        before = 0
                    os.replace(tmp, dst)
                    if self._total is not None:
                        self._total += len(body) - before
                    over = self._total is None or self._total > self.max_bytes
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            if over:
                self.prune()
        return body, dict(_KINDS)[ext]
