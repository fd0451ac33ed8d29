"""Test-set confusion matrices of one round per strategy, from a run's ``confusion.jsonl``.

Index convention: C classes; a matrix is ``[C_true, C_pred]`` counts (row t, column p: test
items of class t predicted as p), in the class order of the run's ``config.json``.
"""

from __future__ import annotations

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


def plot_confusions(
    confusions: dict[str, RoundConfusion],
    path: Path,
    title: str = "",
    formats: tuple[str, ...] = (),
) -> Path:
    """One panel per strategy: row-normalised confusion (% of each true class), one colour
    scale for all panels, the percentages written in the cells up to 15 classes; also
    written in each vector format of ``formats``."""
    items = list(confusions.values())
    n = len(items)
    cols = min(n, 3)
    rows = -(-n // cols)
    n_cls = len(items[0].classes)
    # inches per square panel: three across plus the colour bar fit a page's 7-inch text
    # width with the cell numbers (6-7 pt) still >= 5 pt there
    side = min(1.6 + 0.08 * n_cls, 4.0)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(side * cols + 0.9, (side + 0.3) * rows + 0.5),
        dpi=150,
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
        ax.set_xticks(ticks, c.classes if bottom else [], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(ticks, c.classes if left else [], fontsize=7)
        if bottom:
            ax.set_xlabel("predicted class", fontsize=8)
        if left:
            ax.set_ylabel("true class", fontsize=8)
        seeds = f"{len(c.seeds)} seed{'s' if len(c.seeds) != 1 else ''}"
        ax.set_title(f"{c.strategy} ({seeds})", fontsize=8)
        if len(c.classes) <= 15:
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
    fig.suptitle(f"{title}\n{head}" if title else head, fontsize=8)
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.8)
        bar.set_label("% of true class", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return save_figure(fig, path, formats)
