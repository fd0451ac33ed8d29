"""fishermask: deep active learning for image classification.

FisherMask, LPLgrad and the baselines their papers compare with, as query strategies
(``fishermask.strategies.available()``; docs/methods.md gives what each computes). The entry
points:

- ``fishermask.query(model, images, labeled=..., labels=..., budget=...)``: which images to
  label next, for any trained classifier (returns a ``QueryResult``: indices and scores);
- ``fishermask.run(config, train=(x, y), test=(x, y), out=...)``: a whole experiment
  (strategies x seeds x rounds) on data held in memory, resumable like the command line's;
- the command line: ``fishermask run``, ``report``, ``strategies`` and ``label`` (labeling
  your own images), each with ``--help``.

``query``, ``QueryResult`` and ``run`` are imported on first use, so ``import fishermask``
stays light: it imports nothing (not even ``typing``, 50 ms, first imported inside the
command line's guard against Ctrl-C at start-up, :mod:`fishermask.cli`).
"""

TYPE_CHECKING = False  # typing.TYPE_CHECKING, as type checkers read it, without importing typing
if TYPE_CHECKING:
    from typing import Any as _Any
del TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["QueryResult", "query", "run"]


def __getattr__(name: str) -> "_Any":
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
