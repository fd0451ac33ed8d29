"""Data sets: loaders, cache and class-imbalance presets.

``load_dataset(source)`` returns an ``ImageDataset`` (uint8 images
``[N, Ch, H, W]``, int64 labels, train and test split) from an embedded name
(``DATASETS``) or a path in one of the ``FORMATS``; ``apply_preset`` applies
the paper's class-imbalance settings (``PRESETS``) to its train split.
"""

from fishermask.data.base import ImageDataset
from fishermask.data.cache import CACHE_ENV, resolve_cache_dir
from fishermask.data.embedded import DATASETS, list_datasets
from fishermask.data.presets import PRESETS, apply_preset
from fishermask.data.registry import FORMATS, PathFormat, detect_format, load_dataset

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
