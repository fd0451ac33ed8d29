"""Summaries computed from ``results.csv`` rows alone.

Area under the learning curve (AULC) is the trapezoid area of accuracy over the
number of labels, divided by the label range: the mean accuracy over the
budget, in accuracy units, comparable across settings.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np


def aulc(n_labeled: np.ndarray, accuracy: np.ndarray) -> float:
    """Normalised area under one learning curve (a single point gives its accuracy)."""
    x = np.asarray(n_labeled, dtype=np.float64)
    y = np.asarray(accuracy, dtype=np.float64)
    if len(x) == 1 or x[-1] == x[0]:
        return float(y.mean())
    area = float(((y[1:] + y[:-1]) / 2 * np.diff(x)).sum())
    return area / float(x[-1] - x[0])


@dataclass(frozen=True)
class Curve:
    """Mean and spread over seeds of one strategy's learning curve."""

    strategy: str
    n_labeled: np.ndarray  # [R]
    mean: np.ndarray  # [R]
    std: np.ndarray  # [R] (population std over seeds; 0 for one seed)
    per_seed: dict[int, np.ndarray]  # seed -> accuracies [R]


def _by_trial(
    rows: list[dict[str, Any]], metric: str, rounds: int | None = None
) -> tuple[dict, int]:
    """``strategy -> seed -> round -> (n_labeled, metric)`` and the rounds a finished trial
    has: ``rounds`` (the run's plan, :func:`~fishermask.reporting.outputs.planned_rounds`)
    where given, else the most any trial has (a run without a recorded plan)."""
    by: dict[str, dict[int, dict[int, tuple[int, float]]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        by[r["strategy"]][r["seed"]][r["round"]] = (r["n_labeled"], r[metric])
    full = max((len(t) for s in by.values() for t in s.values()), default=0)
    return by, full if rounds is None else max(rounds, full)


def incomplete(
    rows: list[dict[str, Any]],
    plan: tuple[list[str], list[int]] | None = None,
    *,
    rounds: int | None = None,
) -> dict[str, tuple[int, int]]:
    """Strategies with a seed that has not finished every round: ``(complete, all)`` seeds.

    ``plan``: the run's ``(strategies, seeds)`` as its ``config.json`` lists them
    (:func:`~fishermask.reporting.outputs.planned_trials`); then the trials not started yet
    count too (a strategy none of whose trials has a row is listed with 0 finished), in the
    plan's order. Without one, only the trials with rows are known. ``rounds``: the rounds
    a finished trial has (:func:`_by_trial`)."""
    by, full = _by_trial(rows, "accuracy", rounds)
    planned_strategies, planned_seeds = plan if plan is not None else ([], [])
    order = list(dict.fromkeys([*planned_strategies, *by]))
    out = {}
    for strat in order:
        seeds = by.get(strat, {})
        done = sum(len(t) == full for t in seeds.values())
        n = len(set(seeds) | set(planned_seeds))
        if done < n:
            out[strat] = (done, n)
    return out


def curves(
    rows: list[dict[str, Any]], metric: str = "accuracy", *, rounds: int | None = None
) -> dict[str, Curve]:
    """Group rows by strategy, keeping only the seeds that completed every round of the run.

    A run still in progress thus never compares strategies on a truncated budget; a
    strategy with no complete seed yet is left out (see :func:`incomplete`). ``rounds``:
    the rounds a finished trial has (the run's plan; default the most any trial has).
    """
    by, full = _by_trial(rows, metric, rounds)
    out = {}
    for strat, all_seeds in by.items():
        seeds = {s: t for s, t in all_seeds.items() if len(t) == full}
        if not seeds:
            continue
        first = next(iter(seeds.values()))
        common = sorted(first)
        labels = np.array([first[k][0] for k in common])
        per_seed = {s: np.array([v[k][1] for k in common]) for s, v in sorted(seeds.items())}
        acc = np.stack(list(per_seed.values()))  # [S, R]
        out[strat] = Curve(strat, labels, acc.mean(0), acc.std(0), per_seed)
    return out


@dataclass(frozen=True)
class SummaryRow:
    strategy: str
    seeds: int
    final_labels: int
    final_mean: float
    final_std: float
    aulc_mean: float
    aulc_std: float
    query_seconds: float  # mean per query round
    train_seconds: float  # mean per round


def summarize(
    rows: list[dict[str, Any]], metric: str = "accuracy", *, rounds: int | None = None
) -> list[SummaryRow]:
    """One row per strategy over its finished seeds (:func:`curves`, ``rounds`` as there)."""
    cs = curves(rows, metric, rounds=rounds)
    out = []
    for strat, c in cs.items():
        final = np.array([v[-1] for v in c.per_seed.values()])
        areas = np.array([aulc(c.n_labeled, v) for v in c.per_seed.values()])
        # the same seeds as the accuracies: an unfinished seed's rounds would weigh its
        # (cheaper, early) rounds into the times of the finished ones
        mine = [r for r in rows if r["strategy"] == strat and r["seed"] in c.per_seed]
        q = [r["query_seconds"] for r in mine if r["round"] > 0]
        t = [r["train_seconds"] for r in mine]
        out.append(
            SummaryRow(
                strat,
                len(c.per_seed),
                int(c.n_labeled[-1]),
                float(final.mean()),
                float(final.std()),
                float(areas.mean()),
                float(areas.std()),
                float(np.mean(q)) if q else math.nan,
                float(np.mean(t)) if t else math.nan,
            )
        )
    return out


def _mean_std(mean: float, std: float, seeds: int) -> str:
    """``mean ± std`` in %; the mean alone for one seed (its "± 0.00" read as no spread at
    all, when there was nothing to measure a spread with)."""
    return f"{100 * mean:.2f}" if seeds == 1 else f"{100 * mean:.2f} ± {100 * std:.2f}"


def summary_table(
    summary: list[SummaryRow], metric: str = "accuracy"
) -> tuple[list[str], list[list[str]]]:
    """Column names and formatted cells of the summary (accuracies in %, mean ± std).

    One formatting for every place that shows the summary (``summary.md``, the terminal).
    """
    header = [
        "strategy",
        "seeds",
        "final labels",
        f"final {metric} (%)",
        "AULC (%)",
        "query s/round",
        "train s/round",
    ]
    rows = [
        [
            s.strategy,
            str(s.seeds),
            str(s.final_labels),
            _mean_std(s.final_mean, s.final_std, s.seeds),
            _mean_std(s.aulc_mean, s.aulc_std, s.seeds),
            f"{s.query_seconds:.2f}",
            f"{s.train_seconds:.2f}",
        ]
        for s in summary
    ]
    return header, rows


#: What the summary's numbers are, printed under it wherever it is shown.
SUMMARY_NOTE = (
    "Test accuracy in %, mean ± standard deviation over the seeds that finished every round "
    "(population std, ddof 0); AULC: area under the accuracy curve over the labeled-set "
    "sizes, divided by their range (so also in %); seconds are means per round over the same "
    "seeds (query: rounds 1 on)."
)


def summary_markdown(summary: list[SummaryRow], metric: str = "accuracy") -> str:
    header, rows = summary_table(summary, metric)
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    note = SUMMARY_NOTE if metric == "accuracy" else SUMMARY_NOTE.replace("Test accuracy", metric)
    return "\n".join(lines) + "\n\n" + note + "\n"


def curves_csv(rows: list[dict[str, Any]], *, rounds: int | None = None) -> str:
    """The learning-curve figure's numbers as CSV, for a table or a plot of your own.

    One line per (strategy, labeled-set size): ``strategy, round, n_labeled, seeds,
    accuracy_mean, accuracy_std`` (and ``balanced_accuracy_mean, balanced_accuracy_std``
    where ``results.csv`` has them), fractions in [0, 1], over the seeds that finished every
    round (population std, ddof 0), exactly as the figure plots them (``rounds`` as in
    :func:`curves`).
    """
    metrics = ["accuracy"]
    if rows and all("balanced_accuracy" in r for r in rows):
        metrics.append("balanced_accuracy")
    by_metric = {m: curves(rows, m, rounds=rounds) for m in metrics}
    header = ["strategy", "round", "n_labeled", "seeds"]
    header += [f"{m}_{x}" for m in metrics for x in ("mean", "std")]
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(header)
    for strat, c in by_metric["accuracy"].items():
        for i, n in enumerate(c.n_labeled):
            cells = [strat, i, int(n), len(c.per_seed)]
            for m in metrics:
                cells += [f"{by_metric[m][strat].mean[i]:.6f}", f"{by_metric[m][strat].std[i]:.6f}"]
            out.writerow(cells)
    return buf.getvalue()
