"""Least-confidence sampling: smallest probability of the predicted class."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fishermask.strategies.base import QueryContext, Selection, Strategy, top_k
from fishermask.strategies.registry import register


def least_confidence_scores(probs: torch.Tensor) -> torch.Tensor:
    """``p_max`` per row of ``probs [N, C]`` -> ``[N]`` (smaller = more uncertain)."""
    return probs.max(dim=1).values


@register
@dataclass(frozen=True)
class LeastConfidenceStrategy(Strategy):
    """Smallest maximum class probability."""

    name = "least_confidence"

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        unlabeled = ctx.pool.unlabeled
        scores = least_confidence_scores(ctx.probs(unlabeled))  # [U]
        pick = top_k(-scores, budget)
        return Selection(unlabeled[pick], scores[pick.to(scores.device)].cpu())
