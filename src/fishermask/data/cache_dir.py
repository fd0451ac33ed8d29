"""Where decoded data sets are cached, without torch: ``fishermask label`` commands that do
not train (``label config``, ``label status``) name the folder and must not import torch."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "FISHERMASK_CACHE"


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory: argument, else ``$FISHERMASK_CACHE``, else ``~/.cache/fishermask``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "fishermask"
