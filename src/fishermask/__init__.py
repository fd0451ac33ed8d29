"""fishermask: deep active learning for image classification."""

from typing import Any as _Any

__version__ = "0.1.0"
__all__ = ["QueryResult", "query", "run"]


def __getattr__(name: str) -> _Any:
    """``fishermask.query`` / ``QueryResult`` / ``run``, imported on first use (keeps `import`
    light)."""
    if name in ("query", "QueryResult"):
        from fishermask import query_api

        return getattr(query_api, name)
    if name == "run":
        from fishermask import run_api

        return run_api.run
    raise AttributeError(f"module 'fishermask' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What tab completion offers: the public API, the lazily imported names included."""
    return sorted({"__version__", *__all__, *(n for n in globals() if not n.startswith("_"))})
