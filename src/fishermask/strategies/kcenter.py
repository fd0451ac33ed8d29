"""K-center greedy / core-set (Sener & Savarese 2018, paper eq. 7).

Greedy 2-approximation of the k-center problem on penultimate embeddings: the
labeled points are the initial centers; each step adds the unlabeled point
farthest from its nearest center. Distances are computed in chunks so the
U x nL matrix is never formed at once.

Every squared distance, to a labeled center or to a newly chosen one, is computed
the same way, ``((x - c) ** 2).sum()`` over the D embedding dimensions, so points
at equal distances (duplicated images) compare equal rather than by rounding.
Tie rule: among points equally far from their nearest centers, the lowest pool
position is chosen (``argmax`` returns the first maximum; candidates are in pool
order).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fishermask.strategies.base import QueryContext, Selection, Strategy
from fishermask.strategies.registry import register

_BLOCK = 1 << 22  # entries of one [rows, chunk, D] difference block (16 MiB in float32)


def sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared distances ``[U]`` of the rows of ``x [U, D]`` to one point ``c [D]``.

    The one formula for every distance in k-center greedy (see the module docstring).
    """
    return (x - c).pow(2).sum(dim=-1)


def _min_sq_dist(x: torch.Tensor, centers: torch.Tensor, chunk: int) -> torch.Tensor:
    """Squared distance of each row of ``x [U, D]`` to its nearest row of ``centers [M, D]``.

    The same arithmetic as :func:`sq_dist` (differences, squares, a sum over D), in
    ``[rows, chunk, D]`` blocks.
    """
    u, dim = x.shape
    out = torch.full((u,), float("inf"), dtype=x.dtype, device=x.device)
    for i in range(0, len(centers), chunk):
        c = centers[i : i + chunk]  # [m, D]
        rows = max(1, _BLOCK // max(1, len(c) * dim))
        for j in range(0, u, rows):
            d = sq_dist(x[j : j + rows, None, :], c[None, :, :])  # [rows, m]
            out[j : j + rows] = torch.minimum(out[j : j + rows], d.min(dim=1).values)
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
        min_d = torch.minimum(min_d, sq_dist(unlabeled, unlabeled[j]))  # [U]
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
