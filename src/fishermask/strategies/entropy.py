"""Entropy sampling (paper eq. 5): label the items with the most uncertain prediction."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fishermask.strategies.base import ScoreStrategy
from fishermask.strategies.registry import register


def entropy_scores(probs: torch.Tensor) -> torch.Tensor:
    """``H(p) = -Σ_c p_c log p_c`` per row of ``probs [N, C]`` -> ``[N]`` (0 log 0 = 0)."""
    return -(probs * torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))).sum(dim=1)


@register
@dataclass(frozen=True)
class EntropyStrategy(ScoreStrategy):
    """Highest predictive entropy."""

    name = "entropy"

    def score(self, probs: torch.Tensor) -> torch.Tensor:
        return entropy_scores(probs)
