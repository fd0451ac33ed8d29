"""The fast k-center greedy (matrix-product distances, exact re-checks) against the slow form.

The reference below evaluates every distance with ``sq_dist`` (the documented formula) and
runs the greedy loop step by step; the fast form must give the same positions and the same
distances, bit for bit, on problems full of exact ties (duplicates, grid points) and near
ties (points a few units in the last place apart), with large norms (where the expansion
``|x|^2 + |c|^2 - 2 x.c`` cancels badly) and tiny ones (where squares underflow).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fishermask.strategies import kcenter
from fishermask.strategies.kcenter import _bound_coef, k_center_greedy, sq_dist


def reference(
    unlabeled: torch.Tensor, labeled: torch.Tensor, budget: int, seed: int
) -> tuple[list[int], list[float]]:
    """Greedy k-center with every distance by ``sq_dist`` (slow, obviously the rule)."""
    x = unlabeled.cpu()
    if len(labeled):
        min_d = torch.stack([sq_dist(x, c) for c in labeled.cpu()]).min(dim=0).values
    else:
        min_d = torch.full((len(x),), math.inf, dtype=x.dtype)
    gen = torch.Generator().manual_seed(seed)
    picks: list[int] = []
    dists: list[float] = []
    for t in range(budget):
        if t == 0 and not len(labeled):
            j = int(torch.randint(len(x), (1,), generator=gen))
        else:
            j = int(torch.argmax(min_d))  # the first of equal maxima: the lowest position
        picks.append(j)
        d = min_d[j]  # reported as the square root in the embeddings' dtype
        dists.append(float(d.clamp_min(0).sqrt()) if math.isfinite(d) else math.inf)
        min_d = torch.minimum(min_d, sq_dist(x, x[j]))
        min_d[j] = -1.0
    return picks, dists


def problem(kind: str, n: int, dim: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """``n`` points in ``dim`` dimensions of one of the shapes below."""
    g = torch.Generator().manual_seed(seed)
    eps = torch.finfo(dtype).eps
    if kind == "gauss":
        return torch.randn(n, dim, generator=g, dtype=dtype)
    if kind == "grid":  # few distinct coordinates: many exactly equal distances
        return torch.randint(0, 3, (n, dim), generator=g).to(dtype) * 0.25 + 10.0
    if kind == "duplicates":  # copies of 4 points, half nudged by a few units in the last place
        base = torch.randn(4, dim, generator=g, dtype=dtype) + 3.0
        x = base[torch.randint(0, 4, (n,), generator=g)]
        nudge = torch.randint(-2, 3, (n, dim), generator=g).to(dtype) * eps * x.abs()
        return x + nudge * (torch.rand(n, 1, generator=g, dtype=dtype) < 0.5)
    if kind == "far":  # norms much larger than the distances (cancellation)
        return torch.randn(n, dim, generator=g, dtype=dtype).relu() + 300.0
    if kind == "tiny":  # squared differences below the smallest normal number
        return torch.randn(n, dim, generator=g, dtype=dtype) * torch.finfo(dtype).tiny ** 0.5
    raise AssertionError(kind)


KINDS = ["gauss", "grid", "duplicates", "far", "tiny"]


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    n_unlabeled=st.integers(1, 60),
    n_labeled=st.integers(0, 15),
    dim=st.integers(1, 70),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
def test_fast_k_center_equals_the_slow_form(
    kind: str,
    n_unlabeled: int,
    n_labeled: int,
    dim: int,
    dtype: torch.dtype,
    seed: int,
    data: st.DataObject,
) -> None:
    x = problem(kind, n_unlabeled + n_labeled, dim, dtype, seed)
    unlabeled, labeled = x[:n_unlabeled], x[n_unlabeled:]
    budget = data.draw(st.integers(1, n_unlabeled), label="budget")
    pick, dist = k_center_greedy(
        unlabeled, labeled, budget, generator=torch.Generator().manual_seed(seed)
    )
    ref_pick, ref_dist = reference(unlabeled, labeled, budget, seed)
    assert pick.tolist() == ref_pick
    assert dist.tolist() == ref_dist


def test_labeled_duplicates_and_shuffled_ties_match_the_slow_form() -> None:
    """Larger: 400 candidates, 150 centers, D = 64, half the candidates copies of centers."""
    g = torch.Generator().manual_seed(5)
    labeled = torch.randn(150, 64, generator=g).relu()
    copies = labeled[torch.randint(0, 150, (200,), generator=g)]
    unlabeled = torch.cat([copies, torch.randn(200, 64, generator=g).relu()])
    unlabeled = unlabeled[torch.randperm(400, generator=g)]
    pick, dist = k_center_greedy(unlabeled, labeled, 300)
    ref_pick, ref_dist = reference(unlabeled, labeled, 300, 0)
    assert pick.tolist() == ref_pick and dist.tolist() == ref_dist


def test_nearest_labeled_center_distances_are_those_of_the_formula(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first phase alone: blocks of the expansion, then the exact pairs, equal the
    per-center formula bit for bit (centers with copies among the rows and among
    themselves, rows split over several blocks)."""
    g = torch.Generator().manual_seed(3)
    centers = torch.randn(90, 48, generator=g).relu() + 2.0
    centers = torch.cat([centers, centers[:10]])  # duplicated centers
    x = torch.cat([centers[torch.randint(0, 100, (150,), generator=g)], torch.randn(350, 48)])
    x = x.relu() + 2.0
    norms = x.pow(2).sum(dim=1)
    coef = kcenter._bound_coef(x.dtype, x.dtype, 48)
    slack0 = kcenter._abs_term(x.dtype, x.dtype, 48)
    per_center = torch.stack([sq_dist(x, c) for c in centers], dim=1)  # [500, 100]
    monkeypatch.setattr(kcenter, "_GEMM_BLOCK", 700)  # 7 rows per block
    fast = kcenter._min_sq_dist_fast(x, centers, x, norms, coef, slack0)
    assert torch.equal(fast, per_center.min(dim=1).values)


@pytest.mark.parametrize("bad", [math.nan, math.inf, 1e30])
def test_infinite_nan_or_huge_embeddings_take_the_slow_form(bad: float) -> None:
    g = torch.Generator().manual_seed(0)
    unlabeled, labeled = torch.randn(30, 5, generator=g), torch.randn(4, 5, generator=g)
    unlabeled[7, 2] = bad
    pick, _ = k_center_greedy(unlabeled, labeled, 10)
    assert pick.tolist() == reference(unlabeled, labeled, 10, 0)[0]


def test_the_exact_form_re_checks_few_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound is tight enough that a step re-checks a handful of points, not the pool."""
    sizes: list[int] = []

    def counting(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        sizes.append(x.shape[0])
        return sq_dist(x, c)

    monkeypatch.setattr(kcenter, "sq_dist", counting)
    g = torch.Generator().manual_seed(1)
    unlabeled, labeled = torch.randn(2000, 64, generator=g).relu(), torch.randn(100, 64).relu()
    pick, _ = k_center_greedy(unlabeled, labeled, 200)
    monkeypatch.undo()
    assert pick.tolist() == reference(unlabeled, labeled, 200, 0)[0]
    assert sum(sizes) < 20 * (2000 + 200)  # the slow form evaluates 100 x 2000 + 200 x 2000


def test_embeddings_that_require_grad_are_accepted() -> None:
    g = torch.Generator().manual_seed(4)
    unlabeled = torch.randn(40, 6, generator=g).requires_grad_()
    labeled = torch.randn(5, 6, generator=g).requires_grad_()
    pick, dist = k_center_greedy(unlabeled, labeled, 8)
    ref = reference(unlabeled.detach(), labeled.detach(), 8, 0)
    assert (pick.tolist(), dist.tolist()) == ref and not dist.requires_grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_error_bound_holds_and_is_not_vacuous(dtype: torch.dtype) -> None:
    """``|g - f| <= K/2 (|a|^2 + |b|^2)``, measured against float64 differences of the two."""
    g = torch.Generator().manual_seed(2)
    for dim, offset in [(1, 0.0), (64, 0.0), (64, 1e3), (512, 50.0), (512, 0.0)]:
        a = torch.randn(300, dim, generator=g, dtype=dtype) + offset
        b = a[:50] + torch.randn(50, dim, generator=g, dtype=dtype) * 1e-3
        na, nb = a.pow(2).sum(1), b.pow(2).sum(1)
        gemm = torch.addmm(na[:, None] + nb[None, :], a, b.T, alpha=-2)  # [300, 50]
        f = torch.stack([sq_dist(a, c) for c in b], dim=1)
        err = (gemm.double() - f.double()).abs()
        scale = na.double()[:, None] + nb.double()[None, :]
        k = _bound_coef(dtype, dtype, dim)
        assert bool((err <= k / 2 * scale).all())
        assert k * scale.max() < 1e-2 * scale.max()  # the bound is far below the norms


def test_reduced_precision_matmul_computes_the_expansion_in_float64() -> None:
    x = torch.randn(3, 4)
    before = torch.get_float32_matmul_precision()
    try:
        assert kcenter._gemm_dtype(x) == torch.float32
        torch.set_float32_matmul_precision("medium")
        assert kcenter._gemm_dtype(x) == torch.float64
    finally:
        torch.set_float32_matmul_precision(before)
