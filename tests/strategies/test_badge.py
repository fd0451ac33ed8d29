"""BADGE: gradient embeddings against autograd (float64), k-means++ seeding by hand and in
distribution, and the strategy contract."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fishermask import strategies
from fishermask.errors import ConfigError
from fishermask.models import build_model
from fishermask.strategies import badge_embeddings, kmeans_pp_seeding
from fishermask.strategies.badge import badge_factors
from tests.strategies.conftest import make_context

# ----------------------------------------------------------------- gradient embeddings


def test_embedding_is_minus_the_last_layer_gradient_of_the_pseudo_label_loss() -> None:
    torch.manual_seed(0)
    model = build_model("cnn", 5, (1, 8, 8), 0.5).double().eval()
    x = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    out = model.forward_features(x)
    probs = out.logits.softmax(dim=1).detach()
    g = badge_embeddings(out.embedding.detach(), probs)  # [N, C·D]
    assert g.shape == (6, 5 * model.embedding_dim)
    w = model.classifier.weight  # [C, D]
    for i in range(6):
        logits = model(x[i : i + 1])
        ce = F.cross_entropy(logits, logits.argmax(dim=1))
        (grad_w,) = torch.autograd.grad(ce, w)
        torch.testing.assert_close(g[i], -grad_w.reshape(-1), rtol=1e-10, atol=1e-12)


def test_factors_match_the_materialised_embedding() -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(9, 4, generator=g, dtype=torch.float64), dim=1)
    emb = torch.randn(9, 3, generator=g, dtype=torch.float64)
    u, e = badge_factors(emb, probs)
    full = badge_embeddings(emb, probs)
    torch.testing.assert_close(torch.einsum("nc,nd->ncd", u, e).reshape(9, -1), full)
    torch.testing.assert_close((u @ u.T) * (e @ e.T), full @ full.T)  # ⟨u⊗e, u'⊗e'⟩


# ----------------------------------------------------------------- k-means++ seeding

POINTS = torch.tensor(
    [[1.0, 0.0], [10.0, 0.0], [10.0, 0.0], [0.0, 3.0], [0.0, -3.0], [1.0, 0.0]],
    dtype=torch.float64,
)  # position 2 duplicates the largest-norm point 1, position 5 duplicates 0


def _inverse_cdf(weights: torch.Tensor, r: float) -> int:
    cdf = torch.cumsum(weights, 0)
    return int((cdf > r * float(cdf[-1])).nonzero()[0])


def test_seeding_by_hand_with_a_fixed_seed() -> None:
    order, d2 = kmeans_pp_seeding(POINTS, 4, generator=torch.Generator().manual_seed(7))
    # first: the largest norm, lowest position among the ties (1, not its duplicate 2)
    assert int(order[0]) == 1 and float(d2[0]) == 100.0
    # then one uniform draw per pick, inverse CDF over d² to the nearest chosen center
    rng = torch.Generator().manual_seed(7)
    chosen = [1]
    for t in range(1, 4):
        d = torch.cdist(POINTS, POINTS[chosen]).square().min(dim=1).values
        d[chosen] = 0.0
        r = float(torch.rand((), generator=rng, dtype=torch.float64))
        j = _inverse_cdf(d, r)
        assert int(order[t]) == j and float(d2[t]) == pytest.approx(float(d[j]))
        chosen.append(j)
    assert 2 not in order.tolist()  # at distance 0 from the first center
    assert not {0, 5} <= set(order.tolist())  # duplicates: never both


def test_only_duplicates_left_falls_back_to_the_largest_norm() -> None:
    order, d2 = kmeans_pp_seeding(POINTS, 6, generator=torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(6))
    first4 = set(order[:4].tolist())
    assert first4 in ({1, 3, 4, 0}, {1, 3, 4, 5})  # one of the duplicate pair 0 / 5
    # then every unchosen point is at distance 0: deterministic fallback, largest norm first
    assert int(order[4]) == 2 and int(order[5]) == ({0, 5} - first4).pop()
    assert d2[4:].tolist() == [0.0, 0.0]


def test_all_identical_points_are_picked_in_order() -> None:
    pts = torch.ones(4, 3)
    order, d2 = kmeans_pp_seeding(pts, 4, generator=torch.Generator().manual_seed(0))
    assert order.tolist() == [0, 1, 2, 3] and d2[1:].tolist() == [0.0, 0.0, 0.0]


def test_factorised_chunked_and_materialised_agree() -> None:
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(3 * torch.randn(200, 6, generator=g), dim=1)
    emb = torch.randn(200, 5, generator=g)
    u, e = badge_factors(emb, probs)
    a = kmeans_pp_seeding(u, 30, factor=e, generator=torch.Generator().manual_seed(3))
    b = kmeans_pp_seeding(u, 30, factor=e, generator=torch.Generator().manual_seed(3), chunk=7)
    c = kmeans_pp_seeding(
        badge_embeddings(emb, probs), 30, generator=torch.Generator().manual_seed(3)
    )
    assert a[0].tolist() == b[0].tolist() == c[0].tolist()
    torch.testing.assert_close(a[1], c[1])
    assert len(set(a[0].tolist())) == 30


def test_second_pick_is_distributed_as_d2() -> None:
    """Three far-apart points and a central cluster: P(second = i) = d²_i / Σ d²."""
    gen = torch.Generator().manual_seed(0)
    cluster = 0.3 * torch.randn(6, 2, generator=gen, dtype=torch.float64)
    far = torch.tensor([[12.0, 0.0], [0.0, 7.0], [-6.0, -2.0], [2.0, -8.0]], dtype=torch.float64)
    pts = torch.cat([far, cluster])  # position 0 has the largest norm: the first center
    d2 = (pts - pts[0]).square().sum(dim=1)
    d2[0] = 0.0
    p = d2 / d2.sum()
    trials = 3000
    counts = torch.zeros(len(pts))
    for s in range(trials):
        order, _ = kmeans_pp_seeding(pts, 2, generator=torch.Generator().manual_seed(s))
        assert int(order[0]) == 0
        counts[int(order[1])] += 1
    freq = counts / trials
    se = torch.sqrt(p * (1 - p) / trials)
    assert counts[0] == 0
    assert bool((freq - p).abs().le(4 * se + 1e-12).all()), (freq, p)
    chi2 = float(((counts[1:] - trials * p[1:]) ** 2 / (trials * p[1:])).sum())
    assert chi2 < 30.0  # 8 degrees of freedom: P(chi2 > 30) ≈ 2e-4


# ----------------------------------------------------------------- the strategy


def test_badge_first_pick_is_the_largest_gradient_embedding() -> None:
    ctx = make_context()
    sel = strategies.get("badge").select(ctx, 3)
    unl = ctx.pool.unlabeled
    probs, emb = ctx.predictions(unl)
    norms = badge_embeddings(emb, probs).norm(dim=1)
    assert int(sel.indices[0]) == int(unl[norms.argmax()])
    assert float(sel.scores[0]) == pytest.approx(float(norms.max()) ** 2, rel=1e-5)
    badge = strategies.get("badge")
    picks = {
        tuple(badge.select(make_context(generator_seed=s), 4).indices.tolist()) for s in range(6)
    }
    assert len(picks) > 1


def test_kmeans_pp_rejects_bad_k() -> None:
    with pytest.raises(ConfigError, match="`k`=0"):
        kmeans_pp_seeding(torch.ones(3, 2), 0)
    # a fishermask error, like k=0 (check_positive): it was a bare ValueError
    with pytest.raises(ConfigError, match="k=4 centers asked from 3 points; k must be <= 3"):
        kmeans_pp_seeding(torch.ones(3, 2), 4)
    assert math.isfinite(float(kmeans_pp_seeding(torch.zeros(2, 2), 2)[1].sum()))
