"""Random sampling: the baseline every active-learning method must beat."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fishermask.strategies.base import QueryContext, Selection, Strategy
from fishermask.strategies.registry import register


@register
@dataclass(frozen=True)
class RandomStrategy(Strategy):
    """Label a uniformly random subset of the unlabeled pool."""

    name = "random"

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        unlabeled = ctx.pool.unlabeled
        pick = torch.randperm(len(unlabeled), generator=ctx.generator)[:budget]
        return Selection(unlabeled[pick])
