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
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
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
_KINDS = (("jpg", "image/jpeg"), ("png", "image/png"))
_ALPHA = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def make(data: bytes, side: int = SIDE) -> tuple[bytes, str]:
    """The thumbnail of the image file ``data``: ``(bytes, extension)``, extension ``jpg`` or
    ``png``."""
    with bombs_refused(), Image.open(io.BytesIO(data)) as img:
        png = img.format == "PNG"
        if img.format == "JPEG":
            img.draft("RGB" if img.mode != "L" else "L", (side, side))  # decode at a reduced scale
        img.load()
        img = ImageOps.exif_transpose(img)
        alpha = img.mode in _ALPHA or (img.mode == "P" and "transparency" in img.info)
        if alpha:
            img = img.convert("RGBA")
        elif img.mode not in ("L", "RGB"):
            grey = img.mode in ("1", "I", "F") or img.mode.startswith("I;")
            img = to_channels(img, 1 if grey else 3)  # 16-bit grey scaled, CMYK/palette to RGB
        img.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
        out = io.BytesIO()
        if png or alpha:
            img.save(out, format="PNG", optimize=True)
            return out.getvalue(), "png"
        img.save(out, format="JPEG", quality=85, optimize=True)
        return out.getvalue(), "jpg"


def cached(data: bytes, sha256: str, project_dir: Path, side: int = SIDE) -> tuple[bytes, str]:
    """The thumbnail of ``data`` at most ``side`` pixels a side (whose content hash is
    ``sha256``, checked by the caller) and its media type, from ``project_dir/thumbs`` when
    made before, else made and stored there (written atomically; a project folder that cannot
    be written still gets its thumbnail, uncached)."""
    folder = Path(project_dir) / FOLDER
    for ext, media in _KINDS:
        try:
            return (folder / f"{sha256}-{side}-{ext}").read_bytes(), media
        except FileNotFoundError:
            continue
        except OSError:
            break
    body, ext = make(data, side)
    with contextlib.suppress(OSError):
        folder.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.replace(tmp, folder / f"{sha256}-{side}-{ext}")
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    return body, dict(_KINDS)[ext]
