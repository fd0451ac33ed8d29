"""greedy_select against the spec's formulas with explicit inverses (fisher_reference)."""

from __future__ import annotations

import pytest
import torch

from fishermask.errors import ConfigError
from fishermask.fisher import greedy_select, mean_fisher, selection
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


@pytest.mark.parametrize("upcast", [True, False], ids=["upcast", "float32-products"])
def test_float32_picks_the_same_points(upcast: bool) -> None:
    """Small float32 inputs run in float64; large ones keep float32 products and re-score
    near-ties exactly (forced here by a zero size limit)."""
    limit = selection.UPCAST_MAX_BYTES if upcast else 0
    case = {"n": 200, "c": 4, "d": 40, "n_lab": 20, "budget": 40}
    vu, vl = _problem(case)
    a = greedy_select(vu, vl, 40, backward_steps=1)
    b = greedy_select(vu.float(), vl.float(), 40, backward_steps=1, upcast_max_bytes=limit)
    assert a.tolist() == b.tolist()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"budget": 31}, "31.*30"),
        ({"budget": 0}, "budget"),
        ({"budget": 5, "lam": 0.0}, "lam"),
        ({"budget": 5, "backward_steps": -1}, "backward_steps"),
        ({"budget": 5, "pool_fisher": torch.eye(3)}, "pool_fisher"),
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
@pytest.mark.parametrize("upcast", [True, False], ids=["upcast", "float32-products"])
def test_exact_ties_pick_the_lowest_index(dtype: torch.dtype, upcast: bool) -> None:
    limit = selection.UPCAST_MAX_BYTES if upcast else 0
    case = {"n": 12, "c": 3, "d": 6, "n_lab": 3, "budget": 5}
    vu, vl = _problem(case)
    vu[7] = vu[2]  # duplicates: equal scores until one is chosen
    vu[9] = vu[4]
    vu[10:] = 0.0  # zero candidates score exactly 0
    ref = ref_greedy_select(vu, vl, 5, 1.0, 1)
    picked = greedy_select(vu.to(dtype), vl.to(dtype), 5, backward_steps=1, upcast_max_bytes=limit)
    assert picked.tolist() == ref
    assert greedy_select(vu, vl, 12, backward_steps=0).tolist() == ref_greedy_select(
        vu, vl, 12, 1.0, 0
    )
