"""ProbCover (Yehuda, Dekel, Hacohen & Weinshall, NeurIPS 2022): in the low-budget regime,
label the items whose delta-balls cover the most not-yet-covered data.

Index convention: N pool items, D embedding size, E edges of the delta-ball graph.

Per query (docs/methods.md §9.6): embeddings of the whole pool (unit L2 norm by default, as the
paper's self-supervised features are); the graph with an edge i -> j whenever
||x_i - x_j|| <= delta; every item within delta of a labeled item is covered; then B times
the unlabeled item whose ball holds the most uncovered items is chosen (ties: the lower
pool index) and its ball becomes covered. Once everything is covered the rest of the batch
is drawn uniformly from the unlabeled items with the query generator, as in the paper.

The radius: ``radius`` if given, else the paper's purity rule: k-means with K = number of
classes gives pseudo-labels; a ball is pure when all items in it share one; delta is the
largest radius at which at least ``purity`` (0.95) of the balls are pure. With d_i the
distance from item i to the nearest item of another pseudo-label, ball i is pure exactly
when d_i > delta; the radius returned is the largest pairwise distance at which
#{j: d_j > delta} >= purity x N still holds (see :func:`purity_radius`).

Memory: the graph is an edge list (two int64 per edge, E <= ``max_edges``, default 5e7,
800 MB); a radius that links more pairs stops with an error that names a smaller one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from fishermask.errors import ConfigError, check_choice, check_positive
from fishermask.strategies._embedding import SOURCES, kmeans_labels, pool_embeddings
from fishermask.strategies.base import QueryContext, Selection, Strategy
from fishermask.strategies.registry import register


def _other_label_distance(x: torch.Tensor, labels: torch.Tensor, chunk: int) -> torch.Tensor:
    """``[N]``: distance from each row to the nearest row with a different label (inf if none)."""
    out = torch.empty(len(x), dtype=torch.float64)
    for s in range(0, len(x), chunk):
        d = torch.cdist(x[s : s + chunk], x)  # [chunk, N]
        d[labels[s : s + chunk, None] == labels[None, :]] = float("inf")
        out[s : s + chunk] = d.min(dim=1).values
    return out


def purity_radius(
    x: torch.Tensor, labels: torch.Tensor, purity: float = 0.95, chunk: int = 1024
) -> float:
    """The largest delta with a fraction >= ``purity`` of pure delta-balls (module docstring).

    Purity only drops at the radii d_j, so the admissible radii are ``[0, d*)`` with d* the
    smallest d_j at which too few balls stay pure; the ball graph is the same for every
    radius between the largest pairwise distance below d* and d*, so that distance is
    returned (every pairwise distance when no d_j is reached: all balls stay pure enough).
    """
    n = len(x)
    x = x.to(torch.float64)
    d = _other_label_distance(x, labels, chunk)
    need = math.ceil(purity * n - 1e-9)
    s = torch.sort(d).values
    cand = torch.unique(torch.cat([torch.zeros(1, dtype=torch.float64), d[torch.isfinite(d)]]))
    pure = n - torch.searchsorted(s, cand, right=True)  # [#cand] items with d_j > candidate
    failing = cand[pure < need]
    bound = float(failing.min()) if len(failing) else math.inf
    best = 0.0
    for i in range(0, n, chunk):
        dist = torch.cdist(x[i : i + chunk], x)
        below = dist[dist < bound]
        if len(below):
            best = max(best, float(below.max()))
    return best


def radius_graph(
    x: torch.Tensor, radius: float, *, chunk: int = 1024, max_edges: int = 50_000_000
) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR adjacency of the delta-ball graph: ``(offsets [N+1], neighbours [E])``.

    Row i lists every j (i itself included) with ``||x_i - x_j|| <= radius``, ascending.
    """
    n = len(x)
    x = x.to(torch.float64)
    parts: list[torch.Tensor] = []
    counts = torch.empty(n, dtype=torch.int64)
    total = 0
    for s in range(0, n, chunk):
        near = torch.cdist(x[s : s + chunk], x) <= radius  # [chunk, N]
        near[torch.arange(len(near)), torch.arange(s, s + len(near))] = True
        counts[s : s + len(near)] = near.sum(dim=1)
        total += int(counts[s : s + len(near)].sum())
        if total > max_edges:
            raise ConfigError(
                f"ProbCover's radius {radius:.4g} links more than {max_edges} pairs of the "
                f"{n} pool items; give a smaller `radius` or a higher `purity`, "
                "or raise `max_edges` if the memory (16 bytes per pair) is there."
            )
        parts.append(torch.nonzero(near)[:, 1])
    offsets = torch.zeros(n + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(counts, 0)
    return offsets, torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64)


def probcover_select(
    offsets: torch.Tensor,
    neighbours: torch.Tensor,
    labeled: torch.Tensor,
    budget: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, int]:
    """Greedy max-coverage on the (symmetric) delta-ball graph.

    Args:
        offsets, neighbours: CSR adjacency from :func:`radius_graph`.
        labeled: ``[N]`` bool.
        budget: items to choose (at most the number unlabeled).

    Returns:
        ``(pool indices [budget] in the order chosen, how many were chosen by coverage)``.
    """
    n = len(labeled)
    src = torch.repeat_interleave(torch.arange(n), offsets[1:] - offsets[:-1])  # [E]
    covered = torch.zeros(n, dtype=torch.bool)
    lab = torch.nonzero(labeled).flatten()
    for i in lab.tolist():
        covered[neighbours[offsets[i] : offsets[i + 1]]] = True
    # degree[i] = uncovered items in ball i (the graph is symmetric)
    degree = torch.bincount(src[~covered[neighbours]], minlength=n)
    taken = labeled.clone().to(torch.bool)
    chosen: list[int] = []
    for _ in range(budget):
        deg = degree.clone()
        deg[taken] = -1
        best = int(torch.argmax(deg))  # first of equal maxima
        if int(deg[best]) <= 0:
            break
        chosen.append(best)
        taken[best] = True
        ball = neighbours[offsets[best] : offsets[best + 1]]
        new = ball[~covered[ball]]
        covered[new] = True
        # every ball holding a newly covered item loses it
        for j in new.tolist():
            degree[neighbours[offsets[j] : offsets[j + 1]]] -= 1
    by_coverage = len(chosen)
    if len(chosen) < budget:  # everything is covered: the rest uniformly at random
        rest = torch.nonzero(~taken).flatten()
        order = torch.randperm(len(rest), generator=generator)[: budget - len(chosen)]
        chosen.extend(rest[order].tolist())
    return torch.tensor(chosen, dtype=torch.int64), by_coverage


@register
@dataclass(frozen=True)
class ProbCoverStrategy(Strategy):
    """ProbCover: greedy coverage of the pool by delta-balls around the labeled items.

    Options: ``radius`` (delta; None = the paper's purity rule), ``purity`` (0.95),
    ``embedding`` (``model`` or ``input``, as TypiClust), ``normalize`` (unit-norm rows;
    True), ``max_edges`` (5e7: the graph's memory bound).
    """

    name = "probcover"

    radius: float | None = None
    purity: float = 0.95
    embedding: str = "model"
    normalize: bool = True
    max_edges: int = 50_000_000

    def __post_init__(self) -> None:
        check_choice("embedding source", self.embedding, SOURCES)
        check_positive("max_edges", self.max_edges)
        if self.radius is not None and not self.radius >= 0:
            raise ConfigError(f"`radius`={self.radius!r}, must be >= 0 (or None for the rule).")
        if not 0.0 < self.purity <= 1.0:
            raise ConfigError(f"`purity`={self.purity!r}, must be in (0, 1].")

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        emb = pool_embeddings(ctx, self.embedding, self.normalize)  # [N, D]
        radius = self.radius
        if radius is None:
            pseudo = kmeans_labels(emb, min(ctx.num_classes, len(emb)), ctx.generator)
            radius = purity_radius(emb, torch.as_tensor(np.asarray(pseudo)), self.purity)
        offsets, neighbours = radius_graph(emb, radius, max_edges=self.max_edges)
        labeled = torch.zeros(ctx.pool.size, dtype=torch.bool)
        labeled[ctx.pool.labeled] = True
        pick, by_coverage = probcover_select(offsets, neighbours, labeled, budget, ctx.generator)
        info = {"radius": round(radius, 6), "edges": len(neighbours), "by_coverage": by_coverage}
        return Selection(pick, info=info)
