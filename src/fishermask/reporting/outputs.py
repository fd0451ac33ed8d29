"""The files a finished (or stopped) run directory gets besides ``results.csv``."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from fishermask.errors import DataError
from fishermask.experiments.store import read_results, write_text_atomic
from fishermask.reporting.plots import plot_learning_curves, strategy_styles
from fishermask.reporting.tables import SummaryRow, incomplete, summarize, summary_markdown


def write_run_outputs(
    out_dir: Path, order: list[str], title: str | None = None
) -> tuple[list[dict], list[SummaryRow], Path]:
    """Write ``learning_curves.png`` and ``summary.md`` from ``out_dir/results.csv``, titled
    ``title`` (default :func:`run_title`).

    Returns the result rows, the summary (strategies in ``order``) and the plot's path.
    """
    out_dir = Path(out_dir)
    title = run_title(out_dir) if title is None else title
    rows = read_results(out_dir / "results.csv")
    rounds = planned_rounds(out_dir)  # finished trials as `fishermask report` counts them
    # a labelled variant (fm-dispersed) in its strategy's colour, as in `fishermask report`
    styles = strategy_styles([*order, *(r["strategy"] for r in rows)], strategy_names(out_dir))
    plot = plot_learning_curves(
        rows,
        out_dir / "learning_curves.png",
        title=title,
        order=order,
        styles=styles,
        rounds=rounds,
    )
    summary = summarize(rows, rounds=rounds)
    summary.sort(key=lambda s: order.index(s.strategy) if s.strategy in order else len(order))
    write_text_atomic(out_dir / "summary.md", f"# {title}\n\n" + summary_markdown(summary))
    return rows, summary, plot


def _run_config(run_dir: Path) -> dict[str, Any] | None:
    """A run's ``config.json``, parsed; ``None`` without one (runs reported from their
    results alone) or with one that is not a JSON object.

    :func:`run_title`, :func:`planned_trials`, :func:`planned_rounds` and
    :func:`strategy_names` all read it through here: one read per version of the file
    (cached on its path, inode, size and modification time, so a config.json that a run
    extension rewrote is read again, never served stale). Callers must not modify it.
    """
    path = Path(run_dir) / "config.json"
    try:
        st = path.stat()
    except OSError:
        return None
    return _read_config(str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _read_config(path: str, inode: int, size: int, mtime_ns: int) -> dict[str, Any] | None:
    try:
        meta = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        raise DataError(
            f"{path} cannot be read as JSON; restore it (fishermask run writes it when a run "
            "starts), or move it away to report the run from its results.csv alone."
        ) from None
    return meta if isinstance(meta, dict) else None


def run_title(run_dir: Path) -> str:
    """A run's title from its ``config.json``: data set and preset, model and width, and the
    schedule (``cifar10-jpeg setting1 — resnet18 width 0.25, 250 → 5750 labels by 250``); the
    directory's name without one. The same in the run's own plot and summary as in
    ``fishermask report``."""
    run_dir = Path(run_dir)
    meta = _run_config(run_dir)
    if meta is None:
        return run_dir.name
    data = meta.get("config", {}).get("data", {})
    name = meta.get("dataset", {}).get("name") or Path(str(data.get("dataset", ""))).name
    preset = data.get("preset")
    model = meta.get("config", {}).get("model", {})
    bits = [name] + ([preset] if preset else [])
    title = f"{' '.join(bits)} — {model.get('name', '')}"
    if model.get("name") != "linear":  # the one built-in model without a width
        title += f" width {model.get('width', '')}"
    loop = meta.get("config", {}).get("loop", {})
    if loop.get("initial") is not None and loop.get("query_size") is not None:
        if loop.get("budget") is not None:
            last = loop["budget"]
        elif loop.get("rounds") is not None:
            last = loop["initial"] + loop["rounds"] * loop["query_size"]
        else:
            return title
        title += f", {loop['initial']} → {last} labels by {loop['query_size']}"
    return title


def planned_trials(run_dir: Path) -> tuple[list[str], list[int]] | None:
    """The strategies (labels, else names) and seeds a run's ``config.json`` plans, or None
    without one that lists them: a run published while still going lists what it has not
    started yet from it."""
    try:
        config = _run_config(run_dir)["config"]  # type: ignore[index]
        strategies = [str(x.get("label") or x["name"]) for x in config["strategies"]]
        return strategies, [int(seed) for seed in config["seeds"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def planned_rounds(run_dir: Path) -> int | None:
    """Rounds a trial of the run has when finished (round 0, then one per query of the
    ``query_sizes`` its ``config.json`` records), or None without them (runs reported from
    their results alone count a trial finished when it has as many rounds as any).

    A run extended to more rounds records the longer schedule before its first new round,
    so its trials are unfinished until they reach it, not finished at the shorter one."""
    meta = _run_config(run_dir)
    sizes = meta.get("query_sizes") if meta is not None else None
    return len(sizes) + 1 if isinstance(sizes, list) else None


def run_complete(run_dir: Path) -> bool:
    """Whether every trial the run's ``config.json`` plans (strategies x seeds) has finished
    every planned round (:func:`planned_trials`, :func:`planned_rounds`); without a
    config.json, whether every trial with rows has as many rounds as any. A run with no
    ``results.csv`` or no rows is not complete. For scripts that continue runs until done
    (benchmarks/gpu_run.sh)."""
    path = Path(run_dir) / "results.csv"
    if not path.is_file():
        return False
    rows = read_results(path)
    plan, rounds = planned_trials(run_dir), planned_rounds(run_dir)
    return bool(rows) and not incomplete(rows, plan, rounds=rounds)


def strategy_names(run_dir: Path) -> dict[str, str]:
    """``label -> strategy name`` from a run's ``config.json`` (empty without one)."""
    try:
        specs = _run_config(run_dir)["config"]["strategies"]  # type: ignore[index]
        return {str(x.get("label") or x["name"]): str(x["name"]) for x in specs}
    except (KeyError, TypeError, AttributeError):
        return {}
