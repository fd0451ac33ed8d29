"""Data sets: loaders, cache and class-imbalance presets.

``load_dataset(source)`` returns an ``ImageDataset`` (uint8 images
``[N, Ch, H, W]``, int64 labels, train and test split) from an embedded name
(``DATASETS``) or a path in one of the ``FORMATS``; ``apply_preset`` applies
the paper's class-imbalance settings (``PRESETS``) to its train split.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fishermask.data.base import ImageDataset
    from fishermask.data.cache_dir import CACHE_ENV, resolve_cache_dir
    from fishermask.data.embedded import DATASETS, list_datasets
    from fishermask.data.presets import PRESETS, apply_preset
    from fishermask.data.registry import FORMATS, PathFormat, detect_format, load_dataset

#: Each name of ``__all__`` -> the submodule it lives in, imported on first use: these import
#: torch, which the torch-free modules of this package (``images``, ``progress``, used by
#: ``fishermask label status`` and the like) must not pull in.
_LAZY = {
    "ImageDataset": "base",
    "CACHE_ENV": "cache_dir",
    "resolve_cache_dir": "cache_dir",
    "DATASETS": "embedded",
    "list_datasets": "embedded",
    "PRESETS": "presets",
    "apply_preset": "presets",
    "FORMATS": "registry",
    "PathFormat": "registry",
    "detect_format": "registry",
    "load_dataset": "registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CACHE_ENV",
    "DATASETS",
    "FORMATS",
    "PRESETS",
    "ImageDataset",
    "PathFormat",
    "apply_preset",
    "detect_format",
    "list_datasets",
    "load_dataset",
    "resolve_cache_dir",
]
