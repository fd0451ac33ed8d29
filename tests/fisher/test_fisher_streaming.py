"""Memory-bounded selection: V in a disk-backed memory map, the in-place (lean) set-up used
above ~11 600 dimensions, and chunks bounded in bytes, exercised at small sizes."""

from __future__ import annotations

import pytest
import torch

import fishermask.fisher.selection as selection
from fishermask.fisher import disk_tensor, greedy_select, mean_fisher, pool_tensor
from tests.fisher.fisher_reference import ref_greedy_select


def _problem(n: int, n_lab: int, c: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 V with some near-duplicate candidates (close scores)."""
    gen = torch.Generator().manual_seed(seed)
    vu = torch.randn(n, c, d, generator=gen)
    vu[1::7] = vu[::7][: len(vu[1::7])] * (1 + 1e-4 * torch.randn(1, generator=gen))
    vl = torch.randn(n_lab, c, d, generator=gen)
    return vu, vl


def _file_backed(t: torch.Tensor) -> bool:
    """Whether ``t``'s storage lies in a file mapping of this process (Linux /proc/self/maps)."""
    ptr = t.data_ptr()
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= ptr < hi:
                return len(fields) >= 6 and fields[4] != "0"  # inode of a file
    return False


def _on_disk(v: torch.Tensor) -> torch.Tensor:
    out = disk_tensor(tuple(v.shape), v.dtype)
    out.copy_(v)
    return out


@pytest.fixture
def lean(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the in-place set-up and tiny chunks (what d ~ 22 000 gets) at test sizes."""
    monkeypatch.setattr(selection, "_LEAN_BYTES", 0)
    monkeypatch.setattr(selection, "_LEAN_CHUNK_BYTES", 8 * 3 * 16 * 5)  # 5 candidates per chunk


def test_disk_tensor_is_a_file_backed_float_tensor() -> None:
    t = disk_tensor((4, 3, 2))
    assert t.shape == (4, 3, 2) and t.dtype == torch.float32 and t.is_contiguous()
    t.copy_(torch.arange(24.0).view(4, 3, 2))
    assert float(t.sum()) == 276.0
    assert _file_backed(t) and not _file_backed(torch.empty(4, 3, 2))
    with pytest.raises(TypeError, match="float32 and float64"):
        disk_tensor((2,), torch.int64)


def test_pool_tensor_spills_to_disk_only_when_too_large(monkeypatch) -> None:
    cpu = torch.device("cpu")
    assert not _file_backed(pool_tensor((10, 3, 4), torch.float32, cpu))
    monkeypatch.setattr("fishermask.fisher.storage.available_memory", lambda: 100)
    assert _file_backed(pool_tensor((10, 3, 4), torch.float32, cpu))


@pytest.mark.parametrize("back", [0, 1])
@pytest.mark.parametrize("forced_lean", [False, True])
def test_streamed_v_picks_what_in_memory_v_picks(back: int, forced_lean: bool, request) -> None:
    if forced_lean:
        request.getfixturevalue("lean")
    vu, vl = _problem(60, 6, 3, 16, seed=back)
    stats_mem: dict = {}
    stats_disk: dict = {}
    mem = greedy_select(vu, vl, 10, backward_steps=back, stats=stats_mem)
    disk = greedy_select(_on_disk(vu), _on_disk(vl), 10, backward_steps=back, stats=stats_disk)
    assert disk.tolist() == mem.tolist()
    assert stats_disk == stats_mem  # same path: same re-scorings, refreshes and misses


@pytest.mark.parametrize("back", [0, 1])
# default (one-step blocks, M^-1 updated in place), blocks with a copy of M^-1, refreshes
@pytest.mark.parametrize("kwargs", [{}, {"max_block": 3}, {"refresh_at": 1}])
@pytest.mark.parametrize("n_lab", [1, 7], ids=["woodbury-inverse", "lapack-inverse"])
def test_lean_set_up_matches_the_float64_reference(
    lean, back: int, kwargs: dict, n_lab: int
) -> None:
    vu, vl = _problem(50, n_lab, 3, 16, seed=10 + back)
    ref = ref_greedy_select(vu.double(), vl.double(), 9, 0.5, back)
    got = greedy_select(_on_disk(vu), vl, 9, lam=0.5, backward_steps=back, **kwargs)
    assert got.tolist() == ref


def test_lean_set_up_without_labeled_samples(lean) -> None:
    vu, _ = _problem(30, 0, 3, 16, seed=3)
    vl = torch.empty(0, 3, 16)
    assert greedy_select(vu, vl, 5, backward_steps=1).tolist() == ref_greedy_select(
        vu.double(), vl.double(), 5, 1.0, 1
    )


@pytest.mark.parametrize("n_lab", [9, 300], ids=["woodbury", "lapack-in-place"])
def test_lean_inverse_equals_the_explicit_inverse(n_lab: int) -> None:
    gen = torch.Generator().manual_seed(0)
    vl = torch.randn(n_lab, 3, 2500, generator=gen, dtype=torch.float64)  # mirror: 3 blocks
    a_inv = selection._lean_inverse(vl, 0.7, 1 / 20, chunk=64)
    flat = vl.reshape(-1, 2500)
    m = 0.7 * torch.eye(2500, dtype=torch.float64) + flat.T @ flat / 20
    torch.testing.assert_close(a_inv @ m, torch.eye(2500, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(a_inv, torch.linalg.inv(m), rtol=1e-9, atol=1e-12)
    assert torch.equal(a_inv, a_inv.T)


def test_lean_mean_fisher_in_byte_bounded_chunks(lean) -> None:
    vu, vl = _problem(23, 4, 3, 16, seed=4)
    expected = sum(v.double().T @ v.double() for v in torch.cat([vu, vl])) / 27
    torch.testing.assert_close(mean_fisher(_on_disk(vu), vl, dtype=torch.float64), expected)
    assert selection._chunk_rows(4096, 3, 16, lean=True) == 5


def test_chunk_rows_keep_today_s_chunks_at_today_s_sizes() -> None:
    for d in (1403, 1974, 5120):  # FisherMask width 1/4, the mnist5k cnn, BAIT at full width
        assert selection._chunk_rows(4096, 10, d, lean=False) == 4096
    assert selection._chunk_rows(4096, 10, 22350, lean=True) == 75  # the paper's mask size
    assert selection._lean(11585, torch.device("cpu")) is False
    assert selection._lean(22350, torch.device("cpu")) is True
