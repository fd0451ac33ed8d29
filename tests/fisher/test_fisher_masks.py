"""top_k_mask, mask_profile and random_mask."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fishermask.errors import ConfigError
from fishermask.fisher import default_always, mask_profile, mask_size, random_mask, top_k_mask

SHAPES = {
    "conv.weight": (4, 3, 3, 3),
    "bn.weight": (4,),
    "bn.bias": (4,),
    "fc.weight": (5, 4),
    "fc.bias": (5,),
}
TOTAL = 108 + 4 + 4 + 20 + 5


def _diag(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.rand(s, generator=gen, dtype=torch.float64) for n, s in SHAPES.items()}


def test_default_always_is_the_last_matrix() -> None:
    assert default_always(SHAPES) == ["fc.weight"]
    assert default_always({"a": (3,)}) == []


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(20, TOTAL),
    seed=st.integers(0, 50),
    mode=st.sampled_from(["standard", "dispersed"]),
)
def test_exact_count(k: int, seed: int, mode: str) -> None:
    mask = top_k_mask(_diag(seed), k, mode=mode)
    assert mask_size(mask) == k
    assert {n: tuple(m.shape) for n, m in mask.items()} == SHAPES
    assert all(m.dtype == torch.bool for m in mask.values())


def test_standard_keeps_last_layer_and_global_top() -> None:
    diag = _diag()
    k = 40
    mask = top_k_mask(diag, k)
    assert mask["fc.weight"].all()
    rest = torch.cat([diag[n].flatten() for n in SHAPES if n != "fc.weight"])
    kept = torch.cat([diag[n][mask[n]] for n in SHAPES if n != "fc.weight"])
    assert kept.numel() == k - 20
    # every kept value is >= every dropped value
    dropped = torch.cat([diag[n][~mask[n]] for n in SHAPES if n != "fc.weight"])
    assert kept.min() >= dropped.max()
    assert torch.equal(
        kept.sort().values, rest.sort(descending=True).values[: k - 20].sort().values
    )


def test_standard_with_explicit_always() -> None:
    mask = top_k_mask(_diag(), 30, always=["fc.weight", "fc.bias"])
    assert mask["fc.weight"].all() and mask["fc.bias"].all()
    assert mask_size(mask) == 30
    none_kept = top_k_mask(_diag(), 30, always=[])
    assert mask_size(none_kept) == 30


def test_ties_are_deterministic_by_position() -> None:
    diag = {n: torch.ones(s) for n, s in SHAPES.items()}
    mask = top_k_mask(diag, 20 + 112)  # fc.weight + the first 112 others in flat order
    assert mask["conv.weight"].all() and mask["bn.weight"].all()
    assert mask["bn.bias"].tolist() == [False, False, False, False]
    assert not mask["fc.bias"].any()
    # a tie at the cut: equal values, the earlier position wins
    diag["bn.bias"][:] = 5.0
    diag["fc.bias"][:] = 5.0
    mask = top_k_mask(diag, 20 + 6)
    assert mask["bn.bias"].all() and mask["fc.bias"].tolist() == [True, True, False, False, False]


def test_dispersed_takes_the_same_fraction_everywhere() -> None:
    diag = _diag(3)
    k = 41
    mask = top_k_mask(diag, k, mode="dispersed")
    for row in mask_profile(mask):
        assert abs(row.kept - k * row.size / TOTAL) < 1
        kept, dropped = diag[row.name][mask[row.name]], diag[row.name][~mask[row.name]]
        if kept.numel() and dropped.numel():
            assert kept.min() >= dropped.max()
    assert mask_size(mask) == k


def test_mask_profile() -> None:
    mask = top_k_mask(_diag(), 30)
    prof = mask_profile(mask)
    assert [r.name for r in prof] == list(SHAPES)
    assert [r.size for r in prof] == [108, 4, 4, 20, 5]
    assert sum(r.kept for r in prof) == 30
    assert prof[3].fraction == 1.0


@pytest.mark.parametrize(
    ("k", "kwargs", "match"),
    [
        (TOTAL + 1, {}, f"{TOTAL + 1}.*{TOTAL}"),
        (0, {}, ">= 1"),
        (10, {}, "hold 20 entries, more than k=10"),
        (30, {"always": ["fc.nope"]}, "not among"),
        (30, {"mode": "dense"}, "mask mode"),
        (30, {"mode": "dispersed", "always": ["fc.weight"]}, "only used by mode='standard'"),
    ],
)
def test_errors(k: int, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        top_k_mask(_diag(), k, **kwargs)


def test_nan_is_an_error() -> None:
    diag = _diag()
    diag["bn.bias"][0] = float("nan")
    with pytest.raises(ConfigError, match="NaN"):
        top_k_mask(diag, 30)


def test_random_mask() -> None:
    a = random_mask(SHAPES, 17, torch.Generator().manual_seed(0))
    b = random_mask(SHAPES, 17, torch.Generator().manual_seed(0))
    assert mask_size(a) == 17 and all(torch.equal(a[n], b[n]) for n in SHAPES)
    spread = random_mask(SHAPES, 17, torch.Generator().manual_seed(0), min_per_tensor=2)
    assert mask_size(spread) == 17 and all(m.sum() >= 2 for m in spread.values())
    model = torch.nn.Linear(3, 2)
    assert mask_size(random_mask(model, 8)) == 8
    with pytest.raises(ConfigError, match="min_per_tensor"):
        random_mask(SHAPES, 5, min_per_tensor=2)


def test_head_always_finds_a_head_registered_first_from_an_example() -> None:
    """Without a `classifier` attribute, head_always gave the last matrix registered: for a
    head registered before the body, a body layer, silently (a mask without the head)."""
    from torch import nn

    from fishermask.fisher import head_always

    class HeadFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(6, 3)
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.ReLU())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    model = HeadFirst()
    assert head_always(model) == ["body.1.weight"]  # registration order, as documented
    assert head_always(model, example=torch.randn(4, 2, 2, 2)) == ["head.weight"]
    model.train()
    head_always(model, example=torch.randn(4, 2, 2, 2))
    assert all(m.training for m in model.modules())  # its modes are left as they were
