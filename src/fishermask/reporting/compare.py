"""Paired comparison of two strategies over seeds: difference in AULC with a 95 % interval.

Strategies share the initial labeled set and round-0 model for a given seed, so the
per-seed differences are paired; the interval is the Student-t interval of their mean.
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
    rows: list[dict[str, Any]], strategy: str, metric: str = "accuracy"
) -> list[Difference]:
    """``strategy`` against every other strategy, on the seeds both completed."""
    cs = curves(rows, metric)
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
        if len(d) > 1:
            half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
            low, high = d.mean() - half, d.mean() + half
        else:
            low = high = math.nan
        out.append(Difference(strategy, other, len(d), float(d.mean()), float(low), float(high)))
    return out
