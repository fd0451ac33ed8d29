"""Paper-style figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fishermask.reporting.tables import curves  # noqa: E402

#: Every built-in strategy's colour and marker, the same in every figure of every run and
#: report (FisherMask is vermillion with a star in every figure of a paper). Colours are
#: colour-blind safe (Okabe & Ito's eight without yellow, then Paul Tol's "muted"
#: scheme), and each strategy also has a marker of its own, so curves stay apart in
#: greyscale and for readers who confuse colours.
BUILTIN_STYLES: dict[str, tuple[str, str]] = {
    "random": ("#000000", "o"),
    "entropy": ("#E69F00", "s"),
    "margin": ("#56B4E9", "^"),
    "kcenter": ("#009E73", "v"),
    "least_confidence": ("#999933", "<"),
    "bait": ("#CC79A7", "D"),
    "fishermask": ("#D55E00", "*"),
    "lpl": ("#332288", "X"),
    "lplgrad": ("#0072B2", "P"),
    "badge": ("#882255", "p"),
    "bald": ("#44AA99", ">"),
    "batchbald": ("#AA4499", "d"),
    "typiclust": ("#888888", "h"),
    "probcover": ("#661100", "8"),
}
#: Line styles: a built-in strategy's labelled variants (``lplgrad-joint``, ``fm-dispersed``)
#: keep its colour and marker with the next dash; slots past the palette cycle them too.
_DASHES = ("-", "--", ":", "-.")
_SLOTS = list(BUILTIN_STYLES.values())


def line_style(i: int) -> dict[str, Any]:
    """Colour, line style and marker of style slot ``i``: unique for the first 56."""
    colour, marker = _SLOTS[i % len(_SLOTS)]
    return {
        "color": colour,
        "linestyle": _DASHES[(i // len(_SLOTS)) % len(_DASHES)],
        "marker": marker,
    }


def strategy_styles(
    labels: list[str], names: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Colour, line style and marker per strategy label, distinct within ``labels``.

    A built-in strategy's label gets its own :data:`BUILTIN_STYLES` entry, whatever else is
    plotted; a labelled variant of one (``names`` maps the label to the strategy's name, as
    in ``config.json``, or the label starts with ``name-``) gets that colour and marker with
    a dashed, dotted, then dash-dot line; any other label the first free slot. Pass the
    labels of every figure of a report to keep each label's style across them.
    """
    names = names or {}
    out: dict[str, dict[str, Any]] = {}
    used: set[int] = set()
    variants: dict[str, int] = {}
    slot_of = {s: i for i, s in enumerate(BUILTIN_STYLES)}
    rest = []
    for label in dict.fromkeys(labels):
        if label in slot_of:
            out[label] = line_style(slot_of[label])
            used.add(slot_of[label])
    for label in dict.fromkeys(labels):
        if label in out:
            continue
        base = names.get(label)
        if base not in slot_of:
            base = next((b for b in slot_of if label.startswith(f"{b}-")), None)
        if base is not None and variants.get(base, 0) < len(_DASHES) - 1:
            variants[base] = variants.get(base, 0) + 1
            slot = slot_of[base] + len(_SLOTS) * variants[base]
            if slot not in used:
                out[label] = line_style(slot)
                used.add(slot)
                continue
        rest.append(label)
    for label in rest:
        # a colour nobody in ``labels`` has yet, else the first unused dash of any colour
        colours = {i % len(_SLOTS) for i in used}
        i = next((i for i in range(len(_SLOTS)) if i not in colours), None)
        if i is None:
            i = next(i for i in range(len(_SLOTS) * len(_DASHES) + len(used) + 1) if i not in used)
        out[label] = line_style(i)
        used.add(i)
    return out


#: Type sizes (pt) of a figure drawn at a given width (``width=``): true size in print.
PAPER_FONTS = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
}


def plot_learning_curves(
    rows: list[dict[str, Any]],
    path: Path,
    *,
    title: str = "",
    metric: str = "accuracy",
    order: list[str] | None = None,
    styles: dict[str, dict[str, Any]] | None = None,
    formats: tuple[str, ...] = (),
    width: float | None = None,
    rounds: int | None = None,
) -> Path:
    """Accuracy vs number of labels: mean over seeds, shaded ± one std, one line per strategy.

    ``styles`` (label -> colour, line style, marker; default :func:`strategy_styles` of the
    plotted labels) keeps a strategy's look across figures; ``formats`` (``pdf``, ``svg``)
    are written next to the PNG (:func:`save_figure`). ``width`` (inches) draws the figure
    at the size it will have in print, e.g. 3.3 for one column of a two-column paper, with
    :data:`PAPER_FONTS` and the legend under the axes; by default it is 6.4 inches wide
    (8.4 with the legend beside the axes past six strategies). Only the seeds that finished
    every round are drawn; ``rounds``: how many that is (the run's plan, as in
    :func:`~fishermask.reporting.tables.curves`).
    """
    cs = curves(rows, metric, rounds=rounds)
    keys = [k for k in (order or []) if k in cs] + [k for k in cs if k not in (order or [])]
    if styles is None or any(k not in styles for k in keys):
        styles = strategy_styles(keys) | (styles or {})
    banded = any(len(cs[k].per_seed) > 1 for k in keys)
    if width is not None:
        with plt.rc_context(PAPER_FONTS):
            ncol = max(1, min(len(keys), int(width // 1.6)))
            legend_rows = -(-len(keys) // ncol)
            height = 0.62 * width + 0.17 * legend_rows + (0.3 if banded else 0.15)
            fig, ax = plt.subplots(figsize=(width, height), dpi=300, layout="constrained")
            _draw_curves(ax, cs, keys, styles, metric, title, lw=1.2, ms=3)
            if keys:
                fig.legend(
                    loc="outside lower center",
                    ncol=ncol,
                    frameon=False,
                    title="mean ± 1 std over n seeds" if banded else None,
                    handlelength=2.2,
                    columnspacing=1.0,
                )
            return save_figure(fig, path, formats)
    # past six curves a legend inside the axes hides data: put it on the right, outside
    outside = len(keys) > 6
    fig, ax = plt.subplots(figsize=(8.4 if outside else 6.4, 4.4), dpi=150)
    _draw_curves(ax, cs, keys, styles, metric, title, lw=1.6, ms=4, title_size="medium")
    # what the line and the band are, in the figure itself (a figure travels without its caption)
    if keys:
        ax.legend(
            fontsize=8,
            frameon=False,
            title="mean ± 1 std over n seeds" if banded else None,
            title_fontsize=8,
            **({"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if outside else {}),
        )
    fig.tight_layout()
    return save_figure(fig, path, formats)


def _draw_curves(
    ax: plt.Axes,
    cs: dict[str, Any],
    keys: list[str],
    styles: dict[str, dict[str, Any]],
    metric: str,
    title: str,
    *,
    lw: float,
    ms: float,
    title_size: str | None = None,
) -> None:
    """One line per strategy (mean over seeds) with its ± 1 std band, axis labels, title."""
    for k in keys:
        c = cs[k]
        seeds = len(c.per_seed)
        # a star of the same size reads as a smaller mark than a circle: one size up
        size = ms * 1.6 if styles[k].get("marker") == "*" else ms
        (line,) = ax.plot(
            c.n_labeled, 100 * c.mean, ms=size, lw=lw, label=f"{k} (n={seeds})", **styles[k]
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
    if not keys:  # a run none of whose trials finished every round yet
        ax.text(
            0.5,
            0.5,
            "no trial has finished every round yet",
            transform=ax.transAxes,
            ha="center",
            va="center",
        )
    ax.set_xlabel("number of labeled images")
    ax.set_ylabel(f"test {metric.replace('_', ' ')} (%)")
    if title:
        ax.set_title(title, fontsize=title_size, wrap=True)
    ax.grid(alpha=0.3)


#: Vector formats ``fishermask report --format`` writes besides the PNG.
VECTOR_FORMATS = ("pdf", "svg")
#: No creation date in vector files: the same results give the same bytes (with the SVG
#: salt below).
_NO_DATE = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}


def save_figure(fig: plt.Figure, path: Path, formats: tuple[str, ...] = ()) -> Path:
    """Write ``fig`` to ``path`` (PNG) atomically (temporary file, then rename), and to the
    same name with each suffix of ``formats`` (``pdf``, ``svg``: vector, for a paper),
    then close it. Returns the PNG's path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is not None:
        # constrained layout makes room for the decorations measured at the previous draw; at
        # the first one tilted tick labels are not placed yet, and the axis label under them
        # ended below the figure's edge (cut): two draws settle it
        for _ in range(2):
            fig.draw_without_rendering()
    for fmt in formats:
        if fmt not in VECTOR_FORMATS:
            raise ValueError(f"figure format {fmt!r}: choose from {', '.join(VECTOR_FORMATS)}")
        target = path.with_suffix(f".{fmt}")
        tmp = path.with_name(f".{target.name}.tmp.{fmt}")
        # a fixed salt: SVG element ids are otherwise random in every file
        with plt.rc_context({"svg.hashsalt": "fishermask"}):
            fig.savefig(tmp, format=fmt, metadata=_NO_DATE[fmt])
        tmp.replace(target)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
