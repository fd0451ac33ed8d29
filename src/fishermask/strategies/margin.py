"""Margin sampling (paper eq. 6): smallest gap between the two most likely classes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fishermask.strategies.base import ScoreStrategy
from fishermask.strategies.registry import register


def margin_scores(probs: torch.Tensor) -> torch.Tensor:
    """``p_max - p_second`` per row of ``probs [N, C]`` -> ``[N]`` (smaller = more uncertain)."""
    top2 = probs.topk(2, dim=1).values  # [N, 2]
    return top2[:, 0] - top2[:, 1]


@register
@dataclass(frozen=True)
class MarginStrategy(ScoreStrategy):
    """Smallest margin between the top two class probabilities."""

    name = "margin"

    query_highest = False
    upper_bound = 1.0  # scores are probabilities: stochastic=power uses 1 - score

    def score(self, probs: torch.Tensor) -> torch.Tensor:
        return margin_scores(probs)
