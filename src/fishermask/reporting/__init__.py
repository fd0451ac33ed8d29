"""Tables and figures computed from results files."""

from fishermask.reporting.plots import plot_learning_curves
from fishermask.reporting.tables import aulc, curves, summarize, summary_markdown, summary_table

__all__ = [
    "aulc",
    "curves",
    "plot_learning_curves",
    "summarize",
    "summary_markdown",
    "summary_table",
]
