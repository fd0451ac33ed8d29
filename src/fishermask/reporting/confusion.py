"""Test-set confusion matrices of one round per strategy, from a run's ``confusion.jsonl``.

Index convention: C classes; a matrix is ``[C_true, C_pred]`` counts (row t, column p: test
items of class t predicted as p), in the class order of the run's ``config.json``.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fishermask.errors import DataError
from fishermask.reporting.plots import plt, save_figure


@dataclass(frozen=True)
class RoundConfusion:
    """One strategy's confusion counts at one round, summed over the seeds that have it."""

    strategy: str
    round: int
    n_labeled: int
    seeds: list[int]
    classes: list[str]
    matrix: np.ndarray  # [C_true, C_pred] counts, summed over ``seeds``

    def row_normalised(self) -> np.ndarray:
        """``[C_true, C_pred]`` fractions of each true class (rows of absent classes: 0)."""
        rows = self.matrix.sum(1, keepdims=True)  # [C, 1]
        return np.divide(self.matrix, rows, out=np.zeros(self.matrix.shape), where=rows > 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "n_labeled": self.n_labeled,
            "seeds": self.seeds,
            "classes": self.classes,
            "matrix": self.matrix.tolist(),
        }


def last_round(rows: list[dict[str, Any]]) -> int:
    """The run's final round: the last round any trial of ``results.csv`` reached."""
    return max((r["round"] for r in rows), default=0)


def confusions_at(
    lines: list[dict[str, Any]], round_: int, order: list[str]
) -> dict[str, RoundConfusion]:
    """Per strategy (in ``order``, then first-seen order), its matrices at ``round_`` summed
    over seeds; strategies without one at that round are left out."""
    by: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if line["round"] == round_:
            by.setdefault(line["strategy"], []).append(line)
    keys = [s for s in order if s in by] + [s for s in by if s not in order]
    out = {}
    for s in keys:
        got = sorted(by[s], key=lambda x: x["seed"])
        sizes = {len(x["matrix"]) for x in got}
        if len(sizes) != 1:
            raise DataError(
                f"confusion.jsonl holds matrices of {sorted(sizes)} classes for {s} round "
                f"{round_}; rewrite it from the round records (rerun `fishermask run`)."
            )
        out[s] = RoundConfusion(
            s,
            round_,
            int(got[0]["n_labeled"]),
            [int(x["seed"]) for x in got],
            [str(c) for c in got[0]["classes"]],
            np.sum([np.asarray(x["matrix"], dtype=np.int64) for x in got], axis=0),
        )
    return out


#: Inches the colour bar and its label take beside the panels.
_BAR_INCHES = 0.8
#: Inches of a panel without cell numbers (its class names at 7 pt still fit).
_BARE_SIDE = 1.1
#: A figure drawn at a given width is kept within a page's text height where it can.
_PAGE_HEIGHT = 9.0


def panel_side(n_classes: int) -> float:
    """Inches a confusion panel needs for its cell numbers (three digits at 6 pt, about
    0.15 inch a cell) plus its class names on the outer panels."""
    return 0.15 * n_classes + 0.55


def plot_confusions(
    confusions: dict[str, RoundConfusion],
    path: Path,
    title: str = "",
    formats: tuple[str, ...] = (),
    width: float | None = None,
) -> Path:
    """One panel per strategy: row-normalised confusion (% of each true class), one colour
    scale for all panels, the percentages written in the cells up to 15 classes; also
    written in each vector format of ``formats``.

    ``width`` (inches) draws the figure at its printed width: as many panels across as keep
    each one at least :func:`panel_side` inches (the cell numbers at 6 pt need that), the
    panels below; where that would be taller than a page (9 inches), or one panel across
    cannot hold the numbers, the panels are drawn smaller without them.
    """
    items = list(confusions.values())
    n = len(items)
    n_cls = len(items[0].classes)
    numbers = n_cls <= 15
    if width is None:
        cols = min(n, 3)
        # inches per square panel: three across plus the colour bar fit a page's 7-inch
        # text width with the cell numbers (6-7 pt) still >= 5 pt there
        side = min(1.6 + 0.08 * n_cls, 4.0)
        figsize = (side * cols + 0.9, (side + 0.3) * (-(-n // cols)) + 0.5)
    else:
        room = width - _BAR_INCHES
        need = panel_side(n_cls) if numbers else _BARE_SIDE
        cols = max(1, min(n, int(room // need)))
        if numbers and (min(room / cols, 4.0) + 0.3) * -(-n // cols) + 0.6 > _PAGE_HEIGHT:
            # taller than a page with the numbers: smaller panels without them
            numbers, cols = False, max(cols, min(n, int(room // _BARE_SIDE)))
        side = min(room / cols, 4.0)
        numbers = numbers and side >= panel_side(n_cls)
        figsize = (width, (side + 0.3) * (-(-n // cols)) + 0.6)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=figsize,
        dpi=150 if width is None else 300,
        squeeze=False,
        layout="constrained",
    )
    image = None
    for i, (ax, c) in enumerate(zip(axes.flat, items, strict=False)):
        pct = 100 * c.row_normalised()  # [C_true, C_pred]
        image = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
        ticks = range(len(c.classes))
        # one panel per strategy of one run, same classes: names and axis labels only on
        # the outer panels (the bottom one of each column, the first of each row)
        bottom, left = i + cols >= n, i % cols == 0
        # 45° names of 7 pt overlap where a cell is narrower than ~0.2 inch: upright at 6 pt
        wide = side / n_cls >= 0.2
        tilt = {"rotation": 45, "ha": "right", "fontsize": 7} if wide else {"rotation": 90}
        ax.set_xticks(ticks, c.classes if bottom else [], **{"fontsize": 6} | tilt)
        ax.set_yticks(ticks, c.classes if left else [], fontsize=7 if wide else 6)
        if bottom:
            ax.set_xlabel("predicted class", fontsize=8)
        if left:
            ax.set_ylabel("true class", fontsize=8)
        seeds = f"{len(c.seeds)} seed{'s' if len(c.seeds) != 1 else ''}"
        # the seeds under the name where the panel is narrower than the title line
        ax.set_title(f"{c.strategy}{' ' if wide else chr(10)}({seeds})", fontsize=8)
        if numbers:
            for t in ticks:
                for p in ticks:
                    v = pct[t, p]
                    ax.text(
                        p,
                        t,
                        f"{v:.0f}",
                        ha="center",
                        va="center",
                        fontsize=6 if len(c.classes) > 8 else 7,
                        color="white" if v > 60 else "black",
                    )
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    first = items[0]
    head = (
        f"round {first.round} ({first.n_labeled} labels): % of each true class's test items, "
        "counts summed over seeds"
    )
    text = f"{title}\n{head}" if title else head
    if width is not None:  # wrapped to the printed width (8 pt: ~0.06 inch a character)
        text = "\n".join(textwrap.fill(line, int(width / 0.065)) for line in text.splitlines())
    fig.suptitle(text, fontsize=8)
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.8)
        bar.set_label("% of true class", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return save_figure(fig, path, formats)
