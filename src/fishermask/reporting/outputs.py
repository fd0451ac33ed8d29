"""The files a finished (or stopped) run directory gets besides ``results.csv``."""

from __future__ import annotations

from pathlib import Path

from fishermask.experiments.store import read_results, write_text_atomic
from fishermask.reporting.plots import plot_learning_curves
from fishermask.reporting.tables import SummaryRow, summarize, summary_markdown


def write_run_outputs(
    out_dir: Path, order: list[str], title: str
) -> tuple[list[dict], list[SummaryRow], Path]:
    """Write ``learning_curves.png`` and ``summary.md`` from ``out_dir/results.csv``.

    Returns the result rows, the summary (strategies in ``order``) and the plot's path.
    """
    out_dir = Path(out_dir)
    rows = read_results(out_dir / "results.csv")
    plot = plot_learning_curves(rows, out_dir / "learning_curves.png", title=title, order=order)
    summary = summarize(rows)
    summary.sort(key=lambda s: order.index(s.strategy) if s.strategy in order else len(order))
    write_text_atomic(out_dir / "summary.md", f"# {title}\n\n" + summary_markdown(summary))
    return rows, summary, plot
