"""Decoding, resizing and stacking single images (shared by every loader).

Index convention: N images, Ch channels (1 grey, 3 RGB), H x W pixels. A
decoded image is a ``uint8`` array ``[H, W]`` (grey) or ``[H, W, 3]`` (RGB);
a stacked batch is ``uint8`` ``[N, Ch, H, W]``. Sizes given by the user
(``image_size``) are ``(H, W)``; PIL's ``(width, height)`` never leaks out.
"""

from __future__ import annotations

import io
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from fishermask.errors import ConfigError, DataError

#: File name extensions read from image-folder trees (compared lower-case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
#: Image formats that are recognised but not read: finding one is an error, not a silent skip.
UNSUPPORTED_IMAGE_EXTENSIONS = (".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
#: PIL modes that become one grey channel; every other mode becomes RGB (alpha is dropped).
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
#: PIL modes of 16-bit grey PNGs (Pillow opens them as ``I;16`` or, in older versions, ``I``):
#: their 0..65535 values are scaled to 0..255 (``round(v / 257)``). PIL's own ``convert("L")``
#: clips them at 255 instead, which turns almost every pixel white.
SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})

ImageSize = tuple[int, int]


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (our errors are single-line)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def check_image_size(image_size: Sequence[int] | None) -> ImageSize | None:
    """Return ``image_size`` as an ``(H, W)`` tuple of positive ints, or raise ``ConfigError``."""
    if image_size is None:
        return None
    ok = (
        isinstance(image_size, Sequence)
        and not isinstance(image_size, str)
        and len(image_size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in image_size)
    )
    if not ok:
        raise ConfigError(
            f"`image_size`={image_size!r}, must be two positive integers (H, W), "
            "e.g. (32, 32) or CLI --image-size 32x32."
        )
    return int(image_size[0]), int(image_size[1])


# Pillow warns (two raw lines on stderr) on an image over Image.MAX_IMAGE_PIXELS and refuses
# one over twice that; both are refused here, with one line (:func:`too_large`).
BOMBS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


@contextmanager
def bombs_refused() -> Iterator[None]:
    """Inside: Pillow's DecompressionBombWarning is raised (like its DecompressionBombError)
    instead of printed."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def too_large(exc: BaseException) -> str:
    """The reason of a refused :data:`BOMBS` image, one line, with the fix."""
    m = re.search(r"\((\d+) pixels\)", str(exc))
    what = f"{int(m.group(1)):,} pixels" if m else one_line(exc)
    return (
        f"too large to decode safely ({what}; Pillow's limit is {Image.MAX_IMAGE_PIXELS:,}): "
        "shrink it (e.g. to 4096 pixels a side) or delete it"
    )


def decode_image(source: bytes | Path, name: str, image_size: ImageSize | None) -> np.ndarray:
    """Decode one PNG/JPEG file (path or bytes) into ``[H, W]`` or ``[H, W, 3]`` uint8.

    ``name`` is how the file is called in error messages (e.g. an archive member).
    If ``image_size`` is given the image is resized (bilinear) to ``(H, W)``.
    """
    try:
        with (
            bombs_refused(),
            Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img,
        ):
            img.load()
            if img.mode in SIXTEEN_BIT_MODES:
                img = Image.fromarray(to_uint8(np.asarray(img), 65535))
            elif img.mode not in ("L", "RGB"):
                img = img.convert("L" if img.mode in GREY_MODES else "RGB")
            if image_size is not None and img.size != (image_size[1], image_size[0]):
                img = img.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except BOMBS as exc:
        raise DataError(f"cannot decode image {name}: {too_large(exc)}.") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(
            f"cannot decode image {name}: {one_line(exc)}; replace or delete the file."
        ) from None


def to_uint8(values: np.ndarray, max_value: int) -> np.ndarray:
    """Integer pixel values in ``0..max_value`` scaled to uint8 ``0..255`` (rounded).

    ``max_value`` is the format's full scale (65535 for 16-bit data), not the
    image's own maximum, so a dark image stays dark. Values outside the range are
    clipped.
    """
    scaled = np.clip(values.astype(np.float64), 0, max_value) * (255.0 / max_value)
    return np.rint(scaled).astype(np.uint8)


def stack_images(images: Sequence[np.ndarray], names: Sequence[str]) -> np.ndarray:
    """Stack decoded images into ``[N, Ch, H, W]`` uint8.

    Grey images are repeated to 3 channels if any image is RGB. All images must
    share one ``H x W``; otherwise a ``DataError`` names the first image (in the
    given order) whose size differs from the most common size.
    """
    if not images:
        raise DataError("no images to stack")  # loaders check for empty splits first
    sizes = [img.shape[:2] for img in images]
    if len(set(sizes)) > 1:
        majority, count = Counter(sizes).most_common(1)[0]
        i = next(i for i, s in enumerate(sizes) if s != majority)
        raise DataError(
            f"image {names[i]} is {sizes[i][0]}x{sizes[i][1]} (HxW) but {count} of "
            f"{len(images)} images are {majority[0]}x{majority[1]}; resize every image to one "
            f"size: --image-size {majority[0]}x{majority[1]} (Python: image_size=({majority[0]}, "
            f"{majority[1]}); data: {{image_size: [{majority[0]}, {majority[1]}]}} in a config "
            "file)."
        )
    channels = 3 if any(img.ndim == 3 for img in images) else 1
    h, w = sizes[0]
    out = np.empty((len(images), channels, h, w), dtype=np.uint8)  # [N, Ch, H, W]
    for i, img in enumerate(images):
        out[i] = img.transpose(2, 0, 1) if img.ndim == 3 else img  # grey broadcasts to Ch
    return out


def resize_images(
    x: np.ndarray, image_size: ImageSize, advance: Callable[[int], None] | None = None
) -> np.ndarray:
    """Resize a uint8 batch ``[N, Ch, H, W]`` (Ch in 1, 3) to ``[N, Ch, *image_size]``, bilinear."""
    n, ch, h, w = x.shape
    if (h, w) == tuple(image_size):
        return x
    out = np.empty((n, ch, *image_size), dtype=np.uint8)
    for i in range(n):
        img = Image.fromarray(x[i, 0] if ch == 1 else x[i].transpose(1, 2, 0))
        img = img.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
        arr = np.asarray(img)
        out[i] = arr if ch == 1 else arr.transpose(2, 0, 1)
        if advance is not None:
            advance(1)
    return out
