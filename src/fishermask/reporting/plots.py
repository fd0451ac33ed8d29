"""Paper-style figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fishermask.reporting.tables import curves  # noqa: E402

#: Line styles and markers cycled once the ten default colours are used up, so that every
#: strategy of a run (the toolkit has 14) has a line of its own.
_DASHES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D")


def line_style(i: int) -> dict[str, Any]:
    """Colour, line style and marker of the ``i``-th curve: unique for the first 40."""
    return {
        "color": f"C{i % 10}",
        "linestyle": _DASHES[(i // 10) % len(_DASHES)],
        "marker": _MARKERS[(i // 10) % len(_MARKERS)],
    }


def plot_learning_curves(
    rows: list[dict[str, Any]],
    path: Path,
    *,
    title: str = "",
    metric: str = "accuracy",
    order: list[str] | None = None,
) -> Path:
    """Accuracy vs number of labels: mean over seeds, shaded ± one std, one line per strategy."""
    cs = curves(rows, metric)
    keys = [k for k in (order or []) if k in cs] + [k for k in cs if k not in (order or [])]
    # past six curves a legend inside the axes hides data: put it on the right, outside
    outside = len(keys) > 6
    fig, ax = plt.subplots(figsize=(8.4 if outside else 6.4, 4.4), dpi=150)
    for i, k in enumerate(keys):
        c = cs[k]
        seeds = len(c.per_seed)
        (line,) = ax.plot(
            c.n_labeled, 100 * c.mean, ms=3, lw=1.6, label=f"{k} (n={seeds})", **line_style(i)
        )
        if seeds > 1:
            ax.fill_between(
                c.n_labeled,
                100 * (c.mean - c.std),
                100 * (c.mean + c.std),
                color=line.get_color(),
                alpha=0.18,
                lw=0,
            )
    ax.set_xlabel("number of labeled images")
    ax.set_ylabel(f"test {metric.replace('_', ' ')} (%)")
    if title:
        ax.set_title(title, fontsize="medium", wrap=True)
    ax.grid(alpha=0.3)
    # what the line and the band are, in the figure itself (a figure travels without its caption)
    banded = any(len(cs[k].per_seed) > 1 for k in keys)
    ax.legend(
        fontsize=8,
        frameon=False,
        title="mean ± 1 std over n seeds" if banded else None,
        title_fontsize=8,
        **({"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if outside else {}),
    )
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically (temporary file, then rename) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
