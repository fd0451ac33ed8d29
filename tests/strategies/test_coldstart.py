"""TypiClust and ProbCover against plain loops on hand-made embeddings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fishermask import strategies
from fishermask.errors import ConfigError
from fishermask.strategies import (
    probcover_select,
    purity_radius,
    radius_graph,
    typicality,
    typiclust_select,
)
from tests.strategies.conftest import make_context


def _points(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _dist(a: list[float], b: list[float]) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def test_typicality_matches_a_loop() -> None:
    x = _points(23, 3, 0)
    rows = x.tolist()
    for k in (1, 4, 22):
        got = typicality(x, k, chunk=5)
        for i, xi in enumerate(rows):
            d = sorted(_dist(xi, xj) for j, xj in enumerate(rows) if j != i)[:k]
            assert got[i].item() == pytest.approx(1.0 / (sum(d) / k), rel=1e-12)


def _typiclust_loop(emb, labeled, clusters, budget, knn, min_size):
    """TypiClust's selection written out plainly."""
    rows = emb.tolist()
    taken = set(np.flatnonzero(labeled.numpy()).tolist())
    clusters = list(clusters)
    ids = sorted(set(clusters))
    out = []
    for _ in range(budget):
        best_key, best_c = None, None
        for c in ids:
            mem = [i for i, x in enumerate(clusters) if x == c]
            free = [i for i in mem if i not in taken]
            if len(mem) < min_size or not free:
                continue
            key = (sum(1 for i in mem if i in taken), -len(mem), c)
            if best_key is None or key < best_key:
                best_key, best_c = key, c
        if best_c is None:
            break
        mem = [i for i, x in enumerate(clusters) if x == best_c]
        k = max(1, min(knn, len(mem) - 1))
        best_i, best_t = None, -1.0
        for i in mem:
            if i in taken:
                continue
            d = sorted(_dist(rows[i], rows[j]) for j in mem if j != i)[:k]
            t = 1.0 / (sum(d) / k)
            if t > best_t:
                best_i, best_t = i, t
        out.append(best_i)
        taken.add(best_i)
    rest = [i for i in range(len(rows)) if i not in taken]
    return out + rest[: budget - len(out)]


@pytest.mark.parametrize(("budget", "knn", "min_size"), [(6, 3, 2), (15, 20, 5), (40, 2, 1)])
def test_typiclust_selection_matches_a_loop(budget: int, knn: int, min_size: int) -> None:
    emb = _points(50, 2, 1)
    rng = np.random.default_rng(0)
    clusters = rng.integers(0, 7, size=50)
    labeled = torch.zeros(50, dtype=torch.bool)
    labeled[[0, 3, 9]] = True
    got = typiclust_select(emb, labeled, clusters, budget, knn=knn, min_cluster_size=min_size)
    assert got.tolist() == _typiclust_loop(emb, labeled, clusters, budget, knn, min_size)


def _probcover_loop(x, radius, labeled, budget):
    rows = x.tolist()
    n = len(rows)
    ball = [{j for j in range(n) if j == i or _dist(rows[i], rows[j]) <= radius} for i in range(n)]
    covered = set()
    for i in np.flatnonzero(labeled.numpy()).tolist():
        covered |= ball[i]
    taken = set(np.flatnonzero(labeled.numpy()).tolist())
    out = []
    for _ in range(budget):
        best, best_gain = None, 0
        for i in range(n):
            if i in taken:
                continue
            gain = len(ball[i] - covered)
            if gain > best_gain:
                best, best_gain = i, gain
        if best is None:
            break
        out.append(best)
        taken.add(best)
        covered |= ball[best]
    return out


@pytest.mark.parametrize("radius", [0.3, 0.7, 1.5])
def test_probcover_greedy_cover_matches_a_loop(radius: float) -> None:
    x = _points(60, 2, 2)
    labeled = torch.zeros(60, dtype=torch.bool)
    labeled[[1, 5]] = True
    offsets, nbrs = radius_graph(x, radius, chunk=7)
    ref = _probcover_loop(x, radius, labeled, 12)
    got, by_cov = probcover_select(offsets, nbrs, labeled, 12, torch.Generator().manual_seed(0))
    assert by_cov == len(ref)
    assert got[:by_cov].tolist() == ref
    assert len(set(got.tolist())) == 12 and not labeled[got].any()


def test_radius_graph_is_the_plain_ball_relation() -> None:
    x = _points(25, 3, 3)
    offsets, nbrs = radius_graph(x, 1.1, chunk=4)
    rows = x.tolist()
    for i in range(25):
        want = [j for j in range(25) if j == i or _dist(rows[i], rows[j]) <= 1.1]
        assert nbrs[offsets[i] : offsets[i + 1]].tolist() == want


def _purity_loop(x, labels, delta):
    rows = x.tolist()
    n = len(rows)
    pure = 0
    for i in range(n):
        ball = [j for j in range(n) if _dist(rows[i], rows[j]) <= delta]
        pure += all(labels[j] == labels[i] for j in ball)
    return pure / n


@pytest.mark.parametrize("alpha", [0.5, 0.8, 0.95])
def test_purity_radius_is_the_largest_pure_enough_radius(alpha: float) -> None:
    x = _points(40, 2, 4)
    labels = torch.tensor((x[:, 0] > 0).long().tolist())  # two "clusters" by a half-plane
    delta = purity_radius(x, labels, alpha, chunk=9)
    assert _purity_loop(x, labels.tolist(), delta) >= alpha
    # the next pairwise distance is a larger radius (a larger graph) that is not pure enough
    # (1e-9 above it: a distance computed two ways may differ in the last bits)
    d = torch.cdist(x, x).flatten()
    larger = d[d > delta + 1e-9]
    if len(larger):
        assert _purity_loop(x, labels.tolist(), float(larger.min()) + 1e-9) < alpha


def test_probcover_covers_everything_then_draws_at_random() -> None:
    x = _points(10, 2, 5)
    labeled = torch.zeros(10, dtype=torch.bool)
    offsets, nbrs = radius_graph(x, 100.0)  # one ball covers everything
    got, by_cov = probcover_select(offsets, nbrs, labeled, 4, torch.Generator().manual_seed(0))
    assert by_cov == 1 and got[0].item() == 0 and len(set(got.tolist())) == 4


def test_embedding_strategies_deterministic_and_options() -> None:
    for name in ("typiclust", "probcover"):
        for opts in ({}, {"embedding": "input"}):
            s = strategies.get(name, **opts)
            a = s.select(make_context(generator_seed=7), 8)
            b = s.select(make_context(generator_seed=7), 8)
            assert torch.equal(a.indices, b.indices)
    sel = strategies.get("probcover", radius=0.5).select(make_context(), 5)
    assert sel.info["radius"] == 0.5
    with pytest.raises(ConfigError, match="embedding source 'pixels'"):
        strategies.get("typiclust", embedding="pixels")
    with pytest.raises(ConfigError, match="purity"):
        strategies.get("probcover", purity=1.5)
    with pytest.raises(ConfigError, match="links more than 10 pairs"):
        strategies.get("probcover", radius=100.0, max_edges=10).select(make_context(), 5)


def test_typiclust_options_reach_the_pipeline() -> None:
    from fishermask.strategies._embedding import kmeans_labels, pool_embeddings

    options = {
        "embedding": "input",
        "normalize": True,
        "max_clusters": 6,
        "min_cluster_size": 2,
        "knn": 3,
    }
    sel = strategies.get("typiclust", **options).select(make_context(), 5)
    ctx = make_context()
    emb = pool_embeddings(ctx, "input", True)
    assert torch.allclose(emb.norm(dim=1), torch.ones(len(emb), dtype=torch.float64))
    labeled = torch.zeros(ctx.pool.size, dtype=torch.bool)
    labeled[ctx.pool.labeled] = True
    clusters = kmeans_labels(emb, 6, ctx.generator)  # min(10 + 5, max_clusters=6)
    want = typiclust_select(emb, labeled, clusters, 5, knn=3, min_cluster_size=2)
    assert sel.indices.tolist() == want.tolist() and sel.info["clusters"] == 6


def test_probcover_options_reach_the_pipeline() -> None:
    from fishermask.strategies._embedding import kmeans_labels, pool_embeddings

    options = {"embedding": "input", "normalize": False, "purity": 0.8, "max_edges": 10**6}
    sel = strategies.get("probcover", **options).select(make_context(), 5)
    ctx = make_context()
    emb = pool_embeddings(ctx, "input", False)
    pseudo = torch.as_tensor(kmeans_labels(emb, ctx.num_classes, ctx.generator))
    radius = purity_radius(emb, pseudo, 0.8)
    offsets, nbrs = radius_graph(emb, radius)
    labeled = torch.zeros(ctx.pool.size, dtype=torch.bool)
    labeled[ctx.pool.labeled] = True
    want, _ = probcover_select(offsets, nbrs, labeled, 5, ctx.generator)
    assert sel.indices.tolist() == want.tolist()
    assert sel.info["radius"] == round(radius, 6)
    given = strategies.get("probcover", radius=3.0, normalize=False).select(make_context(), 5)
    assert given.info["radius"] == 3.0
