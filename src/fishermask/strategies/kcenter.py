"""K-center greedy / core-set (Sener & Savarese 2018, paper eq. 7).

Greedy 2-approximation of the k-center problem on penultimate embeddings: the
labeled points are the initial centers; each step adds the unlabeled point
farthest from its nearest center. Distances are computed in chunks so the
U x nL matrix is never formed at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fishermask.strategies.base import QueryContext, Selection, Strategy
from fishermask.strategies.registry import register


def _min_sq_dist(x: torch.Tensor, centers: torch.Tensor, chunk: int) -> torch.Tensor:
    """Squared distance of each row of ``x [U, D]`` to its nearest row of ``centers [M, D]``."""
    out = torch.full((len(x),), float("inf"), dtype=x.dtype, device=x.device)
    for i in range(0, len(centers), chunk):
        d = torch.cdist(x, centers[i : i + chunk]).pow(2)  # [U, chunk]
        out = torch.minimum(out, d.min(dim=1).values)
    return out


def k_center_greedy(
    unlabeled: torch.Tensor,
    labeled: torch.Tensor,
    budget: int,
    *,
    generator: torch.Generator | None = None,
    chunk: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy k-center selection.

    Args:
        unlabeled: embeddings ``[U, D]`` of the candidates.
        labeled: embeddings ``[nL, D]`` of the initial centers (may be empty).
        budget: number of points to choose.
        generator: draws the first center when there are no labeled points.

    Returns:
        ``(positions [budget], distances [budget])``: positions into ``unlabeled`` in the
        order chosen, and each one's distance to its nearest center when it was chosen.
    """
    u = len(unlabeled)
    if len(labeled):
        min_d = _min_sq_dist(unlabeled, labeled, chunk)
    else:
        min_d = torch.full((u,), float("inf"), dtype=unlabeled.dtype, device=unlabeled.device)
    chosen = torch.empty(budget, dtype=torch.int64)
    dist = torch.empty(budget, dtype=torch.float64)
    for t in range(budget):
        if t == 0 and not len(labeled):
            j = int(torch.randint(u, (1,), generator=generator))
        else:
            j = int(torch.argmax(min_d))
        chosen[t] = j
        dist[t] = float(min_d[j].clamp_min(0).sqrt()) if torch.isfinite(min_d[j]) else float("inf")
        new = (unlabeled - unlabeled[j]).pow(2).sum(dim=1)  # [U]
        min_d = torch.minimum(min_d, new)
        min_d[j] = -1.0  # never choose it again
    return chosen, dist


@register
@dataclass(frozen=True)
class KCenterStrategy(Strategy):
    """Greedy k-center on penultimate embeddings, labeled points as initial centers."""

    name = "kcenter"

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        unlabeled = ctx.pool.unlabeled
        emb_u = ctx.embeddings(unlabeled)  # [U, D]
        emb_l = ctx.embeddings(ctx.pool.labeled)  # [nL, D]
        pick, dist = k_center_greedy(emb_u, emb_l, budget, generator=ctx.generator)
        return Selection(unlabeled[pick], dist)
