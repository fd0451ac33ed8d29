"""Margin sampling (paper eq. 6): smallest gap between the two most likely classes."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fishermask.strategies.base import QueryContext, Selection, Strategy, top_k
from fishermask.strategies.registry import register


def margin_scores(probs: torch.Tensor) -> torch.Tensor:
    """``p_max - p_second`` per row of ``probs [N, C]`` -> ``[N]`` (smaller = more uncertain)."""
    top2 = probs.topk(2, dim=1).values  # [N, 2]
    return top2[:, 0] - top2[:, 1]


@register
@dataclass(frozen=True)
class MarginStrategy(Strategy):
    """Smallest margin between the top two class probabilities."""

    name = "margin"

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        unlabeled = ctx.pool.unlabeled
        scores = margin_scores(ctx.probs(unlabeled))  # [U]
        pick = top_k(-scores, budget)
        return Selection(unlabeled[pick], scores[pick.to(scores.device)].cpu())
