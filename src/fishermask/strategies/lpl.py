"""LPL, "Learning Loss for Active Learning" (Yoo & Kweon, CVPR 2019): label what the model
is predicted to get most wrong.

Index convention: U unlabeled pool items, M candidates (U, or a random subset).

A loss-prediction module (:mod:`fishermask.strategies._lossnet`) is trained jointly with
the classifier every round; the query labels the ``budget`` candidates with the highest
predicted loss. This is the natural baseline of LPLgrad (docs/methods.md §5.4).
"""

from __future__ import annotations

from dataclasses import dataclass

from fishermask.strategies._lossnet import (
    LossPredictionStrategy,
    check_subset,
    draw_subset,
    predicted_losses,
)
from fishermask.strategies.base import QueryContext, Selection, top_k
from fishermask.strategies.registry import register


@register
@dataclass(frozen=True)
class LPLStrategy(LossPredictionStrategy):
    """Highest predicted loss (Yoo & Kweon 2019); trains a loss-prediction module.

    Options: ``weight`` (w = 1), ``margin`` (ξ = 1), ``detach_fraction`` (0.6), ``ties``,
    ``module_width`` (128), ``subset`` (None = score the whole unlabeled pool; else a random
    subset of that size, drawn with the query generator).
    """

    name = "lpl"

    subset: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_subset(self.subset)

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        candidates = draw_subset(ctx, self.subset, budget)  # [M]
        scores = predicted_losses(ctx, candidates)  # [M]
        pick = top_k(scores, budget)
        return Selection(candidates[pick], scores[pick], {"candidates": len(candidates)})
