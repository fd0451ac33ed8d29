"""Least-confidence sampling: smallest probability of the predicted class."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fishermask.strategies.base import ScoreStrategy
from fishermask.strategies.registry import register


def least_confidence_scores(probs: torch.Tensor) -> torch.Tensor:
    """``p_max`` per row of ``probs [N, C]`` -> ``[N]`` (smaller = more uncertain)."""
    return probs.max(dim=1).values


@register
@dataclass(frozen=True)
class LeastConfidenceStrategy(ScoreStrategy):
    """Smallest maximum class probability."""

    name = "least_confidence"

    query_highest = False
    upper_bound = 1.0  # scores are probabilities: stochastic=power uses 1 - score

    def score(self, probs: torch.Tensor) -> torch.Tensor:
        return least_confidence_scores(probs)
