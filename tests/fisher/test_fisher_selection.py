"""greedy_select against docs/methods.md §2.5 with explicit inverses (fisher_reference)."""

from __future__ import annotations

import pytest
import torch
from benchmarks.legacy_selection import legacy_greedy_select

from fishermask.errors import ConfigError
from fishermask.fisher import (
    bait_embeddings,
    bait_factors,
    greedy_select,
    mean_fisher,
    selection,
)
from tests.fisher.fisher_reference import ref_greedy_select, ref_objective

CASES = [
    {"n": 30, "c": 3, "d": 8, "n_lab": 0, "budget": 5, "lam": 1.0, "back": 0},
    {"n": 30, "c": 3, "d": 8, "n_lab": 6, "budget": 5, "lam": 0.5, "back": 1},
    {"n": 25, "c": 4, "d": 12, "n_lab": 10, "budget": 4, "lam": 2.0, "back": 2},
    {"n": 12, "c": 2, "d": 20, "n_lab": 3, "budget": 6, "lam": 1.0, "back": 1},
    {"n": 10, "c": 3, "d": 5, "n_lab": 0, "budget": 10, "lam": 1.0, "back": 1},
    {"n": 40, "c": 1, "d": 6, "n_lab": 2, "budget": 7, "lam": 0.1, "back": 1},
    {"n": 20, "c": 5, "d": 30, "n_lab": 8, "budget": 3, "lam": 3.0, "back": 0},
    {"n": 16, "c": 3, "d": 4, "n_lab": 4, "budget": 9, "lam": 1.0, "back": 2},
]


def _problem(case: dict, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed + case["n"] * case["d"])
    vu = torch.randn(case["n"], case["c"], case["d"], generator=gen, dtype=torch.float64)
    vl = torch.randn(case["n_lab"], case["c"], case["d"], generator=gen, dtype=torch.float64)
    return vu, vl


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_explicit_inverse_reference(case: dict, seed: int) -> None:
    vu, vl = _problem(case, seed)
    fast = greedy_select(vu, vl, case["budget"], lam=case["lam"], backward_steps=case["back"])
    ref = ref_greedy_select(vu, vl, case["budget"], case["lam"], case["back"])
    assert fast.dtype == torch.long
    assert fast.tolist() == ref
    assert len(set(ref)) == case["budget"]


def test_pool_fisher_override_and_chunking() -> None:
    case = CASES[2]
    vu, vl = _problem(case)
    gen = torch.Generator().manual_seed(9)
    root = torch.randn(case["d"], case["d"], generator=gen, dtype=torch.float64)
    fs = root @ root.T / case["d"]
    fast = greedy_select(vu, vl, 4, lam=1.0, backward_steps=1, pool_fisher=fs, chunk_size=3)
    assert fast.tolist() == ref_greedy_select(vu, vl, 4, 1.0, 1, fs)


def test_mean_fisher_is_the_mean_over_both_sets() -> None:
    vu, vl = _problem(CASES[1])
    expected = sum(v.T @ v for v in torch.cat([vu, vl])) / (vu.shape[0] + vl.shape[0])
    torch.testing.assert_close(mean_fisher(vu, vl), expected)


def test_greedy_beats_random_on_the_objective() -> None:
    case = {"n": 60, "c": 3, "d": 10, "n_lab": 5, "budget": 6}
    vu, vl = _problem(case)
    picked = greedy_select(vu, vl, 6, backward_steps=1).tolist()
    gen = torch.Generator().manual_seed(0)
    randoms = [torch.randperm(60, generator=gen)[:6].tolist() for _ in range(20)]
    best_random = min(ref_objective(vu, vl, r, 6, 1.0) for r in randoms)
    assert ref_objective(vu, vl, picked, 6, 1.0) < best_random


# every way through the block machinery: one step at a time, small blocks, the default
# blocks; float32 and float64 products; refreshes forced on every step (refresh_at=1)
VARIANTS = [
    {"max_block": 1},
    {"max_block": 3},
    {},
    {"product_dtype": torch.float64},
    {"refresh_at": 1},
]
VARIANT_IDS = ["step", "block3", "default", "float64-products", "refresh-every-step"]


@pytest.mark.parametrize("kwargs", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("back", [0, 1])
def test_blocks_match_the_reference_on_larger_problems(kwargs: dict, back: int) -> None:
    case = {"n": 70, "c": 3, "d": 16, "n_lab": 5, "budget": 12}
    vu, vl = _problem(case, seed=back)
    stats: dict = {}
    fast = greedy_select(vu, vl, 12, backward_steps=back, stats=stats, **kwargs)
    assert fast.tolist() == ref_greedy_select(vu, vl, 12, 1.0, back)
    assert stats["steps"] == (back + 1) * 12 + back * 12


def _near_tie_problem(seed: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates in pairs whose scores differ by ~1e-9 relative (below float32 resolution)."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(15, 3, 10, generator=gen, dtype=torch.float64)
    twin = base * (1 + 1e-9 * torch.randn(15, 1, 1, generator=gen, dtype=torch.float64))
    vu = torch.stack([base, twin], 1).reshape(30, 3, 10)  # twins side by side
    vl = torch.randn(4, 3, 10, generator=gen, dtype=torch.float64)
    return vu.to(dtype), vl.to(dtype)


@pytest.mark.parametrize("kwargs", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("back", [0, 1])
def test_near_ties_follow_the_float64_reference(kwargs: dict, back: int) -> None:
    vu, vl = _near_tie_problem(back, torch.float64)
    ref = ref_greedy_select(vu, vl, 8, 1.0, back)
    stats: dict = {}
    assert greedy_select(vu, vl, 8, backward_steps=back, stats=stats, **kwargs).tolist() == ref
    # the twins' gap decides, not the index: both members of pairs get picked
    assert {a % 2 for a in ref} == {0, 1}
    if kwargs.get("product_dtype") is None:  # float32 cannot tell the twins apart
        assert stats["rescored"] >= stats["steps"]
    if kwargs.get("refresh_at") == 1:
        assert stats["refreshes"] > 0


@pytest.mark.parametrize("sigma", [1.0, -1.0])
def test_carried_updates_equal_the_from_scratch_values(sigma: float) -> None:
    """Three steps folded through one block product (the Y, Z columns of ``prepare``) leave
    every candidate's carried K_x, H_x equal to the float64 from-scratch values: adding
    points (sigma = +1, S positive definite) and removing chosen ones (sigma = -1, S
    negative definite, the signs D_s)."""
    case = {"n": 20, "c": 3, "d": 9, "n_lab": 4}
    vu, vl = _problem(case)
    d = case["d"]
    fs = mean_fisher(vu, vl)
    m = torch.eye(d, dtype=torch.float64) + vl.reshape(-1, d).T @ vl.reshape(-1, d) / 10
    if sigma < 0:  # removal: the points removed below are in M
        m += vu[:6].reshape(-1, d).T @ vu[:6].reshape(-1, d) * 0.25
    g = selection._Greedy(vu, fs, torch.linalg.inv(m), 0.5, torch.float64, 4)
    ids = torch.arange(case["n"])
    k, h = g.exact(ids)
    free = torch.ones(case["n"], dtype=torch.bool)
    ph = selection._Phase(ids, vu.reshape(-1, d), k, h, free, torch.ones(case["n"]))
    steps = [g.prepare(ph, pos, sigma) for pos in (1, 4, 2)]
    assert (steps[0].signs is None) == (sigma > 0)
    yz = g.fold(ph.x, torch.cat([st.cols for st in steps]))
    for j, st in enumerate(steps):
        g.apply(ph.k, ph.h, yz[j], st)
    k_ex, h_ex = g.exact(ids)
    torch.testing.assert_close(ph.k, k_ex, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ph.h, h_ex, rtol=1e-10, atol=1e-12)


def _bait_problem(n: int, n_lab: int, classes: int, dim: int, seed: int):
    """BAIT-shaped V (closed-form last-layer gradients of random embeddings), float32."""
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(n + n_lab, dim, generator=gen).relu()
    probs = torch.softmax(2 * torch.randn(n + n_lab, classes, generator=gen), 1)
    v = bait_embeddings(emb, probs)  # [n + nL, C, C D]
    return v[:n].contiguous(), v[n:].contiguous()


@pytest.mark.parametrize("back", [0, 1])
def test_float32_products_pick_what_today_s_float64_selection_picks(back: int) -> None:
    """Same indices as the previous implementation (benchmarks/legacy_selection.py, float64
    whenever it fits), which produced the published results."""
    vu, vl = _bait_problem(400, 20, 10, 6, seed=back)  # d = 60
    stats: dict = {}
    new = greedy_select(vu, vl, 60, backward_steps=back, stats=stats)
    old = legacy_greedy_select(vu, vl, 60, backward_steps=back)
    assert new.tolist() == old.tolist()
    assert stats["misses"] < stats["steps"]  # the guesses mostly hold
    assert stats["pruned"] > 0  # BAIT's scores sit close below their tr(H) bounds


def _bait_factored(n: int, n_lab: int, classes: int, dim: int, seed: int, dtype=torch.float32):
    """:func:`_bait_problem` with the factors of its unlabeled V."""
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(n + n_lab, dim, generator=gen, dtype=dtype).relu()
    probs = torch.softmax(2 * torch.randn(n + n_lab, classes, generator=gen, dtype=dtype), 1)
    v = bait_embeddings(emb, probs)
    return v[:n].contiguous(), v[n:].contiguous(), bait_factors(emb[:n], probs[:n])


@pytest.mark.parametrize("kwargs", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("back", [0, 1])
def test_factored_block_products_match_the_reference(kwargs: dict, back: int) -> None:
    """BAIT's factors (V = A (I (x) E^T)) give the block products; the picks stay the
    float64 reference's, in float64 and float32 inputs."""
    vu, vl, fac = _bait_factored(50, 6, 4, 3, seed=back)  # d = 12
    ref = ref_greedy_select(vu.double(), vl.double(), 9, 1.0, back)
    fac64 = (fac[0].double(), fac[1].double())
    assert (
        greedy_select(
            vu.double(), vl.double(), 9, backward_steps=back, factors=fac64, **kwargs
        ).tolist()
        == ref
    )
    assert greedy_select(
        vu, vl, 9, backward_steps=back, factors=fac, **kwargs
    ).tolist() == ref_greedy_select(vu, vl, 9, 1.0, back)


def test_factored_fold_equals_the_dense_product(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selection, "_FACTOR_CHUNK", 7 * 10 * 100)  # chunks of 7 candidates
    vu, _, fac = _bait_factored(300, 0, 10, 7, seed=3, dtype=torch.float64)  # d = 70
    d = vu.shape[-1]
    eye = torch.eye(d, dtype=torch.float64)
    g = selection._Greedy(vu, eye, eye, 1.0, torch.float64, 4)
    cols = torch.randn(2 * 5 * 10, d, dtype=torch.float64)
    dense = g.fold(vu.reshape(-1, d), cols).clone()
    g.factors = selection._check_factors(fac, vu, torch.float64)
    fact = g.fold(vu.reshape(-1, d), cols, torch.arange(300))
    torch.testing.assert_close(fact, dense, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("back", [0, 1])
def test_factored_picks_what_today_s_float64_selection_picks(back: int) -> None:
    vu, vl, fac = _bait_factored(400, 20, 10, 6, seed=back)  # d = 60, as the test above
    stats: dict = {}
    new = greedy_select(vu, vl, 60, backward_steps=back, stats=stats, factors=fac)
    assert new.tolist() == legacy_greedy_select(vu, vl, 60, backward_steps=back).tolist()


def test_factor_errors() -> None:
    vu, vl, (a, e) = _bait_factored(20, 3, 3, 4, seed=0)
    with pytest.raises(ConfigError, match="pair"):
        greedy_select(vu, vl, 3, factors=a)
    with pytest.raises(ConfigError, match="shapes"):
        greedy_select(vu, vl, 3, factors=(a[:5], e))
    with pytest.raises(ConfigError, match="must equal d"):
        greedy_select(vu, vl, 3, factors=(a, e[:, :3]))
    with pytest.raises(ConfigError, match="do not reproduce"):
        greedy_select(vu, vl, 3, factors=(a, e.flip(0)))


@pytest.mark.parametrize("kwargs", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("back", [0, 1])
def test_pruned_scores_match_the_reference(
    kwargs: dict, back: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the tr(H) pruning of carried scores tried on every pick from 3 candidates up
    (random problems, near ties, exact ties), the picks stay the reference's."""
    monkeypatch.setattr(selection, "_PRUNE_TOP", 1)
    monkeypatch.setattr(selection, "_PRUNE_WAIT", 0)
    vu, vl = _bait_problem(60, 5, 4, 3, seed=back)  # d = 12
    stats: dict = {}
    got = greedy_select(vu.double(), vl.double(), 10, backward_steps=back, stats=stats, **kwargs)
    assert got.tolist() == ref_greedy_select(vu.double(), vl.double(), 10, 1.0, back)
    assert stats["pruned"] > 0
    vu, vl = _near_tie_problem(back, torch.float64)
    ref = ref_greedy_select(vu, vl, 8, 1.0, back)
    assert greedy_select(vu, vl, 8, backward_steps=back, **kwargs).tolist() == ref
    case = {"n": 12, "c": 3, "d": 6, "n_lab": 3, "budget": 5}
    vu, vl = _problem(case)
    vu[7] = vu[2]
    vu[10:] = 0.0
    ref = ref_greedy_select(vu, vl, 5, 1.0, back)
    assert greedy_select(vu, vl, 5, backward_steps=back, **kwargs).tolist() == ref


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"budget": 31}, "31.*30"),
        ({"budget": 0}, "budget"),
        ({"budget": 5, "lam": 0.0}, "lam"),
        ({"budget": 5, "backward_steps": -1}, "backward_steps"),
        ({"budget": 5, "pool_fisher": torch.eye(3)}, "pool_fisher"),
        ({"budget": 5, "product_dtype": torch.float16}, "product_dtype"),
        ({"budget": 5, "max_block": 0}, "max_block"),
        ({"budget": 5, "refresh_at": 0}, "refresh_at"),
    ],
)
def test_errors(kwargs: dict, match: str) -> None:
    vu, vl = _problem(CASES[0])
    budget = kwargs.pop("budget")
    with pytest.raises(ConfigError, match=match):
        greedy_select(vu, vl, budget, **kwargs)


def test_shape_errors() -> None:
    vu, vl = _problem(CASES[1])
    with pytest.raises(ConfigError, match="same model"):
        greedy_select(vu, vl[:, :, :3], 2)
    with pytest.raises(ConfigError, match=r"\[N, C, d\]"):
        greedy_select(vu[0], vl, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    case = CASES[2]
    vu, vl = _problem(case)
    cpu = greedy_select(vu, vl, 4, backward_steps=1)
    gpu = greedy_select(vu.cuda(), vl.cuda(), 4, backward_steps=1)
    assert gpu.device.type == "cuda" and gpu.tolist() == cpu.tolist()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kwargs", VARIANTS, ids=VARIANT_IDS)
def test_exact_ties_pick_the_lowest_index(dtype: torch.dtype, kwargs: dict) -> None:
    case = {"n": 12, "c": 3, "d": 6, "n_lab": 3, "budget": 5}
    vu, vl = _problem(case)
    vu[7] = vu[2]  # duplicates: equal scores until one is chosen
    vu[9] = vu[4]
    vu[10:] = 0.0  # zero candidates score exactly 0
    ref = ref_greedy_select(vu, vl, 5, 1.0, 1)
    picked = greedy_select(vu.to(dtype), vl.to(dtype), 5, backward_steps=1, **kwargs)
    assert picked.tolist() == ref
    assert greedy_select(vu, vl, 12, backward_steps=0, **kwargs).tolist() == ref_greedy_select(
        vu, vl, 12, 1.0, 0
    )
