"""The files a finished (or stopped) run directory gets besides ``results.csv``."""

from __future__ import annotations

import json
from pathlib import Path

from fishermask.experiments.store import read_results, write_text_atomic
from fishermask.reporting.plots import plot_learning_curves, strategy_styles
from fishermask.reporting.tables import SummaryRow, summarize, summary_markdown


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
    # a labelled variant (fm-dispersed) in its strategy's colour, as in `fishermask report`
    styles = strategy_styles([*order, *(r["strategy"] for r in rows)], strategy_names(out_dir))
    plot = plot_learning_curves(
        rows, out_dir / "learning_curves.png", title=title, order=order, styles=styles
    )
    summary = summarize(rows)
    summary.sort(key=lambda s: order.index(s.strategy) if s.strategy in order else len(order))
    write_text_atomic(out_dir / "summary.md", f"# {title}\n\n" + summary_markdown(summary))
    return rows, summary, plot


def run_title(run_dir: Path) -> str:
    """A run's title from its ``config.json``: data set and preset, model and width, and the
    schedule (``cifar10-jpeg setting1 — resnet18 width 0.25, 250 → 5750 labels by 250``); the
    directory's name without one. The same in the run's own plot and summary as in
    ``fishermask report``."""
    run_dir = Path(run_dir)
    cfg = run_dir / "config.json"
    if cfg.exists():
        meta = json.loads(cfg.read_text())
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
    return run_dir.name


def planned_trials(run_dir: Path) -> tuple[list[str], list[int]] | None:
    """The strategies (labels, else names) and seeds a run's ``config.json`` plans, or None
    without a readable one: a run published while still going lists what it has not
    started yet from it."""
    path = Path(run_dir) / "config.json"
    try:
        config = json.loads(path.read_text())["config"]
        strategies = [str(x.get("label") or x["name"]) for x in config["strategies"]]
        return strategies, [int(seed) for seed in config["seeds"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def strategy_names(run_dir: Path) -> dict[str, str]:
    """``label -> strategy name`` from a run's ``config.json`` (empty without one)."""
    path = Path(run_dir) / "config.json"
    try:
        specs = json.loads(path.read_text())["config"]["strategies"]
        return {str(x.get("label") or x["name"]): str(x["name"]) for x in specs}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
