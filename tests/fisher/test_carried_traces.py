"""The vectorised carried scores (selection._carried_traces) against float64 linalg.solve."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fishermask.fisher import selection


def _reference(h: torch.Tensor, k: torch.Tensor, sigma: float) -> torch.Tensor:
    """``tr((sigma I + K)^-1 H)`` by LU with partial pivoting, float64: obviously right."""
    h, k = h.double(), k.double()
    eye = torch.eye(k.shape[-1], dtype=torch.float64)
    return torch.linalg.solve(k + sigma * eye, h).diagonal(dim1=-2, dim2=-1).sum(-1)


def _problem(n: int, c: int, sigma: float, cond: float, seed: int) -> tuple:
    """Carried-like K, H in float64: H positive semi-definite; ``sigma I + K`` definite with
    condition number about ``cond`` (adding: K's largest eigenvalue ``cond - 1``; removing:
    ``I - K``'s smallest eigenvalue ``1 / cond``)."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(n, c, c, generator=gen, dtype=torch.float64))[0]
    t = torch.rand(n, c, generator=gen, dtype=torch.float64)
    t[:, 0] = 0.0
    t[:, -1] = 1.0
    if sigma > 0:  # eigenvalues of K in [0, cond - 1]
        ev = t * (cond - 1)
    else:  # eigenvalues of I - K in [1 / cond, 1]
        ev = 1 - (1 / cond) ** t
    k = (q * ev[:, None, :]) @ q.mT
    b = torch.randn(n, c, c + 2, generator=gen, dtype=torch.float64)
    h = b @ b.mT
    return h, k


def _relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float(((got.double() - ref).abs() / ref.abs()).max())


def _bound(c: int, cond: float, dtype: torch.dtype) -> float:
    """What a backward-stable solve of a definite system may lose: ``64 C eps cond``."""
    return 64 * c * torch.finfo(dtype).eps * cond


@pytest.mark.parametrize("sigma", [1.0, -1.0])
@pytest.mark.parametrize("c", [1, 2, 3, 10])
@pytest.mark.parametrize("cond", [1.5, 1e3, 1e8])
def test_float64_matches_solve(sigma: float, c: int, cond: float) -> None:
    h, k = _problem(200, c, sigma, cond, seed=c)
    got = selection._carried_traces(h, k, sigma)
    ref = _reference(h, k, sigma)
    assert got.dtype == torch.float64
    assert _relative_error(got, ref) < _bound(c, cond, torch.float64)


@pytest.mark.parametrize("sigma", [1.0, -1.0])
@pytest.mark.parametrize("cond", [2.0, 1e3])
def test_float32_is_as_close_as_lu(sigma: float, cond: float) -> None:
    """In float32 (the carried dtype) the error is that of a float32 LU solve, within 4x."""
    h, k = _problem(500, 10, sigma, cond, seed=7)
    ref = _reference(h, k, sigma)
    h32, k32 = h.float(), k.float()
    got = selection._carried_traces(h32, k32, sigma)
    eye = torch.eye(10)
    lu = torch.linalg.solve(k32 + sigma * eye, h32).diagonal(dim1=-2, dim2=-1).sum(-1)
    assert got.dtype == torch.float32
    assert _relative_error(got, ref) < _bound(10, cond, torch.float32)
    assert _relative_error(got, ref) <= 4 * _relative_error(lu, ref)


def test_chunks_and_empty() -> None:
    h, k = _problem(37, 4, 1.0, 10.0, seed=3)
    whole = selection._carried_traces(h, k, 1.0)
    torch.testing.assert_close(selection._carried_traces(h, k, 1.0, chunk=5), whole)
    torch.testing.assert_close(whole, _reference(h, k, 1.0), rtol=1e-12, atol=0)
    empty = selection._carried_traces(h[:0], k[:0], 1.0)
    assert empty.shape == (0,)


def test_singular_is_not_finite() -> None:
    """An exactly singular system is flagged (inf/NaN: re-scored first), as LU flagged it."""
    k = torch.diag(torch.tensor([1.0, 0.5], dtype=torch.float64))[None]  # I - K singular
    h = torch.eye(2, dtype=torch.float64)[None]
    assert not torch.isfinite(selection._carried_traces(h, k, -1.0)).any()
    k2 = torch.diag(torch.tensor([0.5, 1.0], dtype=torch.float64))[None]  # last pivot zero
    assert not torch.isfinite(selection._carried_traces(h, k2, -1.0)).any()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    c=st.integers(1, 12),
    sigma=st.sampled_from([1.0, -1.0]),
    log_cond=st.floats(0.0, 10.0),
    seed=st.integers(0, 2**31 - 1),
    chunk=st.integers(1, 50),
)
def test_random_definite_systems(
    n: int, c: int, sigma: float, log_cond: float, seed: int, chunk: int
) -> None:
    cond = max(10.0**log_cond, 1.0 + 1e-6)
    h, k = _problem(n, c, sigma, cond, seed)
    got = selection._carried_traces(h, k, sigma, chunk=chunk)
    assert _relative_error(got, _reference(h, k, sigma)) < _bound(c, cond, torch.float64)
