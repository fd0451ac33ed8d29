"""Paired comparison of two strategies over seeds: difference in AULC with a 95 % interval.

Strategies share the initial labeled set and round-0 model for a given seed, so the
per-seed differences are paired; the interval is the Student-t interval of their mean and
the p-value the two-sided paired t-test's. Comparing one method with m baselines makes m
tests: :func:`holm` adjusts their p-values (Holm's step-down, which controls the chance of
any false "better"/"worse" among the m at ``alpha``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from fishermask.reporting.tables import aulc, curves


@dataclass(frozen=True)
class Difference:
    strategy: str
    baseline: str
    seeds: int
    mean: float  # mean over seeds of AULC(strategy) - AULC(baseline)
    low: float  # 95 % interval (nan with one seed)
    high: float
    p_value: float = math.nan  # two-sided paired t-test (nan with one seed)

    @property
    def verdict(self) -> str:
        if self.seeds < 2 or math.isnan(self.low):
            return "one seed: no interval"
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "no significant difference"


def paired_aulc_differences(
    rows: list[dict[str, Any]],
    strategy: str,
    metric: str = "accuracy",
    *,
    rounds: int | None = None,
) -> list[Difference]:
    """``strategy`` against every other strategy, on the seeds both completed (``rounds``:
    the rounds a completed trial has, as in :func:`~fishermask.reporting.tables.curves`)."""
    cs = curves(rows, metric, rounds=rounds)
    if strategy not in cs:
        return []
    mine = cs[strategy]
    out = []
    for other, c in cs.items():
        if other == strategy:
            continue
        seeds = sorted(set(mine.per_seed) & set(c.per_seed))
        n = min(len(mine.n_labeled), len(c.n_labeled))
        if not seeds or n == 0:
            continue
        x = mine.n_labeled[:n]
        d = np.array([aulc(x, mine.per_seed[s][:n]) - aulc(x, c.per_seed[s][:n]) for s in seeds])
        low = high = p = math.nan
        if len(d) > 1:
            sem = d.std(ddof=1) / math.sqrt(len(d))
            half = stats.t.ppf(0.975, len(d) - 1) * sem
            low, high = d.mean() - half, d.mean() + half
            if sem > 0:
                p = 2 * stats.t.sf(abs(d.mean()) / sem, len(d) - 1)
            else:  # every seed gives the same difference
                p = 1.0 if d.mean() == 0 else 0.0
        out.append(
            Difference(strategy, other, len(d), float(d.mean()), float(low), float(high), float(p))
        )
    return out


@dataclass(frozen=True)
class RoundZero:
    """One strategy's round-0 model against the plain model's, paired over seeds."""

    strategy: str
    baseline: str
    seeds: int
    baseline_mean: float  # the plain model's mean over the same seeds
    mean: float  # mean over seeds of metric(strategy) - metric(baseline) at round 0
    low: float  # 95 % t-interval (nan with one seed)
    high: float

    @property
    def verdict(self) -> str:
        if self.seeds < 2 or math.isnan(self.low):
            return "one seed: no interval"
        if self.high < 0:
            return "lower"
        if self.low > 0:
            return "higher"
        return "no significant difference"


def round_zero_differences(
    rows: list[dict[str, Any]], baseline: str = "random", metric: str = "balanced_accuracy"
) -> list[RoundZero]:
    """Strategies whose round-0 model is not ``baseline``'s, against it, paired over seeds.

    Every strategy starts a seed from the same initial labeled set, so a strategy that
    trains its classifier like ``baseline`` has exactly ``baseline``'s round-0 result; one
    whose result differs on some seed trains differently (e.g. jointly with a loss-prediction
    module), and this says by how much that costs or gains before any query. Unfinished
    trials count: their round 0 is done. Strategies equal to ``baseline`` on every shared
    seed are left out; so is a metric the results do not have (NaN).
    """
    at0: dict[str, dict[int, float]] = {}
    for r in rows:
        if r["round"] == 0 and not math.isnan(r.get(metric, math.nan)):
            at0.setdefault(r["strategy"], {})[r["seed"]] = r[metric]
    base = at0.get(baseline)
    if not base:
        return []
    out = []
    for strat, by_seed in at0.items():
        seeds = sorted(set(by_seed) & set(base))
        if strat == baseline or not seeds:
            continue
        d = np.array([by_seed[s] - base[s] for s in seeds])
        if not d.any():
            continue
        low = high = math.nan
        if len(d) > 1:
            half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
            low, high = d.mean() - half, d.mean() + half
        b = float(np.mean([base[s] for s in seeds]))
        out.append(RoundZero(strat, baseline, len(d), b, float(d.mean()), float(low), float(high)))
    return out


def holm(diffs: list[Difference], alpha: float = 0.05) -> list[tuple[float, str]]:
    """Holm-adjusted p-value and verdict of each comparison in ``diffs`` (same order).

    With the m p-values sorted ascending, ``p_adj(i) = max_{j <= i} min(1, (m - j) p(j))``
    (j from 0); a comparison is "better"/"worse" (by the sign of its mean) when
    ``p_adj < alpha``. Comparisons without a p-value (one seed) are left out of m.
    """
    tested = sorted((x.p_value, i) for i, x in enumerate(diffs) if not math.isnan(x.p_value))
    m = len(tested)
    adjusted: dict[int, float] = {}
    running = 0.0
    for j, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - j) * p))
        adjusted[i] = running
    out = []
    for i, x in enumerate(diffs):
        if i not in adjusted:
            out.append((math.nan, "one seed: no test"))
        elif adjusted[i] < alpha:
            out.append((adjusted[i], "better" if x.mean > 0 else "worse"))
        else:
            out.append((adjusted[i], "no significant difference"))
    return out


def _p(p: float) -> str:
    return "—" if math.isnan(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def headline(
    rows: list[dict[str, Any]], baseline: str = "random", *, rounds: int | None = None
) -> str | None:
    """One line: which strategy has the best mean AULC, and by how much it beats
    ``baseline`` and the runner-up (paired over seeds); ``None`` with fewer than two
    strategies with a finished seed.

    ``rounds``: the rounds a finished trial has, the run's plan
    (:func:`~fishermask.reporting.outputs.planned_rounds`), as ``fishermask report`` counts
    them; ``None`` (a run without a recorded plan): the most any trial has, so that a run
    stopped with every trial at the same shorter round would count them all finished.

    The best is picked after the fact from every strategy of the run, so its verdicts are
    Holm-adjusted (:func:`holm`) over the family that picking could have come from: against
    ``baseline``, every strategy's comparison with ``baseline``; against the runner-up, every
    pair of strategies. The 95 % t-interval printed with each difference is the unadjusted
    one and says so.
    """
    from fishermask.reporting.tables import summarize

    summary = [s for s in summarize(rows, rounds=rounds) if s.seeds > 0]
    if len(summary) < 2:
        return None
    ranked = sorted(summary, key=lambda s: -s.aulc_mean)
    best, second = ranked[0], ranked[1]
    names = [s.strategy for s in summary]
    # every unordered pair once, as (a vs b) with a before b in ``names``
    pairs = [
        d
        for i, a in enumerate(names)
        for d in paired_aulc_differences(rows, a, rounds=rounds)
        if d.baseline in names[i + 1 :]
    ]
    pairs_adj = holm(pairs)
    vs_base = [d for d in pairs if baseline in (d.strategy, d.baseline)]
    base_adj = holm(vs_base)

    def versus(
        name: str, family: list[Difference], adjusted: list[tuple[float, str]], of: str, tag=""
    ):
        found = [
            (d, p_adj)
            for d, (p_adj, _) in zip(family, adjusted, strict=True)
            if {d.strategy, d.baseline} == {best.strategy, name}
        ]
        if not found:
            return f"vs {name}{tag}: no common seeds"
        d, p_adj = found[0]
        sign = 1 if d.strategy == best.strategy else -1
        mean, low, high = sign * d.mean, *sorted((sign * d.low, sign * d.high))
        ci = (
            ""
            if math.isnan(d.low)
            else f" (95 % interval [{_points(low)}, {_points(high)}], unadjusted)"
        )
        if math.isnan(p_adj):
            verdict = "one seed: no test"
        else:
            verdict = (
                "better"
                if p_adj < 0.05 and mean > 0
                else "worse"
                if p_adj < 0.05
                else "no significant difference"
            )
            verdict += f" (p {_p(p_adj)}, Holm-adjusted over {of})"
        seeds = f"{d.seeds} paired seed{'s' if d.seeds != 1 else ''}"
        return f"vs {name}{tag} {_points(mean)} points over {seeds}{ci}: {verdict}"

    n_base = sum(1 for d in vs_base if not math.isnan(d.p_value))
    n_pairs = sum(1 for d in pairs if not math.isnan(d.p_value))
    parts = [
        f"best AULC: {best.strategy} ({100 * best.aulc_mean:.2f} %, "
        f"picked from {len(summary)} strategies)"
    ]
    if best.strategy != baseline and any(baseline in (d.strategy, d.baseline) for d in vs_base):
        of = f"the {n_base} strateg{'y' if n_base == 1 else 'ies'} vs {baseline}"
        parts.append(versus(baseline, vs_base, base_adj, of))
    if second.strategy != baseline:
        of = "the 1 pair of strategies" if n_pairs == 1 else f"all {n_pairs} pairs of strategies"
        line = versus(second.strategy, pairs, pairs_adj, of, tag=" (the runner-up)")
        parts.append(line + _runner_up_ahead(rows, best, second, rounds))
    return "; ".join(parts)


def _points(x: float) -> str:
    """A difference in accuracy points, signed, two decimals; never ``-0.00`` (a tie whose
    float rounding came out below zero read as the winner losing)."""
    v = 100 * x
    return f"{0.0 if abs(v) < 0.005 else v:+.2f}"


def _runner_up_ahead(
    rows: list[dict[str, Any]], best: Any, second: Any, rounds: int | None = None
) -> str:
    """Why the winner can trail the runner-up in their paired comparison: the ranking is by
    each one's mean AULC over the seeds it finished, the comparison over the seeds both
    finished (a run stopped part-way); ``""`` unless the runner-up is ahead there."""
    found = [
        d
        for d in paired_aulc_differences(rows, best.strategy, rounds=rounds)
        if d.baseline == second.strategy
    ]
    if not found or 100 * found[0].mean > -0.005:
        return ""
    return (
        f", {second.strategy} ahead of {best.strategy} on the seeds both finished; "
        f"{best.strategy} ranks first by its mean AULC over its {best.seeds} finished "
        f"seed{'s' if best.seeds != 1 else ''}"
        f" ({second.strategy}: {second.seeds})"
    )
