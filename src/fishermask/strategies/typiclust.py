"""TypiClust (TPC-RP; Hacohen, Dekel & Weinshall, ICML 2022): in the low-budget regime,
label the most typical image of each of the least-covered clusters.

Index convention: N pool items, D embedding size, K clusters, k neighbours.

Per query (docs/methods.md §9.5):

1. k-means on the embeddings of the whole pool into K = min(nL + B, ``max_clusters``)
   clusters (seeded from the query generator);
2. B times: among clusters with at least ``min_cluster_size`` items and an unlabeled one,
   take the cluster with the fewest labeled (or already chosen) items, the larger on ties;
   label its most typical unlabeled item, where the typicality of x inside its cluster is

       typicality(x) = 1 / mean_{x_i in kNN(x)} ||x - x_i||,

   the k = min(``knn``, cluster size - 1) nearest other members (Euclidean).

Defaults follow the reference code (500 clusters at most, clusters of fewer than 5 items
ignored, 20 neighbours). Should every eligible cluster run out of unlabeled items, the rest
of the batch is the remaining unlabeled items in pool order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fishermask.errors import check_choice, check_positive
from fishermask.strategies._embedding import SOURCES, kmeans_labels, pool_embeddings
from fishermask.strategies.base import QueryContext, Selection, Strategy
from fishermask.strategies.registry import register


def typicality(x: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """``[n]``: inverse mean Euclidean distance of each row of ``x [n, D]`` to its ``k``
    nearest other rows (``1 <= k < n``), float64; a lone row gets 1.

    Rows are processed ``chunk`` at a time, so memory is ``chunk x n`` distances.
    """
    x = x.to(torch.float64)
    n = len(x)
    if n == 1:
        return torch.ones(1, dtype=torch.float64)
    out = torch.empty(n, dtype=torch.float64)
    for s in range(0, n, chunk):
        d = torch.cdist(x[s : s + chunk], x)  # [chunk, n]
        rows = torch.arange(len(d))
        d[rows, rows + s] = float("inf")  # not its own neighbour
        near = torch.topk(d, k, dim=1, largest=False).values  # [chunk, k]
        out[s : s + chunk] = 1.0 / near.mean(dim=1).clamp_min(1e-300)
    return out


def typiclust_select(
    emb: torch.Tensor,
    labeled: torch.Tensor,
    clusters: np.ndarray,
    budget: int,
    *,
    knn: int = 20,
    min_cluster_size: int = 5,
) -> torch.Tensor:
    """TypiClust's choice of ``budget`` pool indices.

    Args:
        emb: ``[N, D]`` embeddings of the whole pool.
        labeled: ``[N]`` bool, already labeled items.
        clusters: ``[N]`` cluster label of each item.
        budget: items to choose (at most the number unlabeled).
    """
    n = len(emb)
    taken = labeled.clone().to(torch.bool)
    cl = torch.as_tensor(np.asarray(clusters), dtype=torch.int64)
    num = int(cl.max()) + 1 if n else 0
    size = torch.bincount(cl, minlength=num)
    count = torch.bincount(cl[taken], minlength=num)  # labeled or chosen per cluster
    members = [torch.nonzero(cl == c).flatten() for c in range(num)]
    cache: dict[int, torch.Tensor] = {}
    chosen: list[int] = []
    for _ in range(budget):
        free = torch.bincount(cl[~taken], minlength=num)
        eligible = (size >= min_cluster_size) & (free > 0)
        if not bool(eligible.any()):
            break
        # fewest labeled first, then the larger cluster, then the lower cluster id
        keys = [(int(count[c]), -int(size[c]), c) for c in torch.nonzero(eligible).flatten()]
        c = min(keys)[2]
        idx = members[c]
        if c not in cache:
            cache[c] = typicality(emb[idx], max(1, min(knn, len(idx) - 1)))
        typ = cache[c].clone()
        typ[taken[idx]] = -float("inf")
        best = int(idx[int(torch.argmax(typ))])
        chosen.append(best)
        taken[best] = True
        count[c] += 1
    if len(chosen) < budget:  # every eligible cluster is exhausted
        rest = torch.nonzero(~taken).flatten()[: budget - len(chosen)]
        chosen.extend(rest.tolist())
    return torch.tensor(chosen, dtype=torch.int64)


@register
@dataclass(frozen=True)
class TypiClustStrategy(Strategy):
    """TypiClust: the most typical unlabeled item of each least-covered k-means cluster.

    Options: ``embedding`` (``model``: the current model's embeddings; ``input``: the model
    inputs, i.e. the ``--features`` you bring), ``normalize`` (unit-norm rows first; False),
    ``max_clusters`` (500), ``min_cluster_size`` (5), ``knn`` (20).
    """

    name = "typiclust"

    embedding: str = "model"
    normalize: bool = False
    max_clusters: int = 500
    min_cluster_size: int = 5
    knn: int = 20

    def __post_init__(self) -> None:
        check_choice("embedding source", self.embedding, SOURCES)
        check_positive("max_clusters", self.max_clusters)
        check_positive("min_cluster_size", self.min_cluster_size)
        check_positive("knn", self.knn)

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        emb = pool_embeddings(ctx, self.embedding, self.normalize)  # [N, D]
        labeled = torch.zeros(ctx.pool.size, dtype=torch.bool)
        labeled[ctx.pool.labeled] = True
        k = min(int(labeled.sum()) + budget, self.max_clusters, len(emb))
        clusters = kmeans_labels(emb, k, ctx.generator)
        pick = typiclust_select(
            emb,
            labeled,
            clusters,
            budget,
            knn=self.knn,
            min_cluster_size=self.min_cluster_size,
        )
        return Selection(pick, info={"clusters": k})
