"""Embeddings of the whole pool for the cold-start strategies (TypiClust, ProbCover).

Index convention: N pool items, D embedding size.
"""

from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from fishermask.errors import check_choice
from fishermask.strategies.base import QueryContext

SOURCES = ("model", "input")


def pool_embeddings(ctx: QueryContext, source: str, normalize: bool) -> torch.Tensor:
    """``[N, D]`` float64 (CPU) embeddings of every pool item.

    ``source="model"``: the current model's penultimate embedding (for ``--model linear`` on
    ``--features`` that is the features themselves, standardised); ``"input"``: the
    normalised model inputs, flattened (the features you bring, whatever the model).
    ``normalize`` scales every row to unit L2 norm (zero rows stay zero).
    """
    check_choice("embedding source", source, SOURCES)
    everything = torch.arange(ctx.pool.size)
    if source == "model":
        emb = ctx.embeddings(everything)
    else:
        emb = torch.cat([x.flatten(1) for _, x in ctx.batches(everything)])
    emb = emb.detach().to(device="cpu", dtype=torch.float64)
    if normalize:
        emb = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return emb


def kmeans_labels(x: torch.Tensor, k: int, generator: torch.Generator) -> np.ndarray:
    """Cluster labels ``[N]`` of scikit-learn k-means (MiniBatchKMeans beyond 50 clusters,
    as TypiClust's reference code does), seeded from ``generator``, single-threaded so the
    result does not depend on the machine's core count."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    data = x.numpy()
    with threadpool_limits(limits=1):
        if k <= 50:
            km = KMeans(n_clusters=k, n_init=1, random_state=seed)
        else:
            km = MiniBatchKMeans(n_clusters=k, n_init=1, random_state=seed, batch_size=1024)
        return km.fit_predict(data)
