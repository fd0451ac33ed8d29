"""Uncertainty scores and k-center greedy on hand-made inputs with known answers."""

from __future__ import annotations

import math

import torch

from fishermask import strategies
from fishermask.strategies import (
    entropy_scores,
    k_center_greedy,
    least_confidence_scores,
    margin_scores,
    top_k,
)
from fishermask.strategies.base import QueryContext
from fishermask.strategies.kcenter import _min_sq_dist, sq_dist
from tests.strategies.conftest import make_context

P = torch.tensor(
    [
        [1.0, 0.0, 0.0],  # certain
        [0.5, 0.5, 0.0],  # two-way tie
        [1 / 3, 1 / 3, 1 / 3],  # uniform
        [0.7, 0.2, 0.1],
    ],
    dtype=torch.float64,
)


def test_entropy_values() -> None:
    h = entropy_scores(P)
    expected = [
        0.0,
        math.log(2),
        math.log(3),
        -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)),
    ]
    assert torch.allclose(h, torch.tensor(expected, dtype=torch.float64), atol=1e-12)


def test_margin_and_least_confidence_values() -> None:
    assert torch.allclose(margin_scores(P), torch.tensor([1.0, 0.0, 0.0, 0.5], dtype=torch.float64))
    assert torch.allclose(
        least_confidence_scores(P), torch.tensor([1.0, 0.5, 1 / 3, 0.7], dtype=torch.float64)
    )


def test_top_k_breaks_ties_by_position() -> None:
    assert top_k(torch.tensor([0.1, 0.9, 0.9, 0.5]), 3).tolist() == [1, 2, 3]


class _FixedProbs:
    """Replace the context's predictions with hand-made probabilities."""

    def __init__(self, ctx: QueryContext, probs: torch.Tensor) -> None:
        self.probs = probs
        ctx.predictions = lambda idx: (probs[idx], torch.zeros(len(idx), 2))  # type: ignore


def _ctx_with_probs(probs: torch.Tensor) -> QueryContext:
    ctx = make_context(n=len(probs), n_labeled=1)
    _FixedProbs(ctx, probs)
    return ctx


def test_strategies_pick_the_known_most_uncertain() -> None:
    # item 0 is labeled by make_context? choose probabilities so the answer is clear regardless
    n = 8
    probs = torch.tensor([[0.98, 0.01, 0.01, 0.0]] * n)
    probs[3] = torch.tensor([0.4, 0.3, 0.3, 0.0])  # max entropy, smallest max-prob, margin .1
    probs[5] = torch.tensor([0.45, 0.44, 0.11, 0.0])  # smallest margin
    ctx = _ctx_with_probs(probs)
    labeled = set(ctx.pool.labeled.tolist())
    if labeled & {3, 5}:  # keep the test independent of the random initial label
        ctx = make_context(n=n, n_labeled=1, seed=1)
        _FixedProbs(ctx, probs)
        assert not set(ctx.pool.labeled.tolist()) & {3, 5}
    assert strategies.get("entropy").select(ctx, 1).indices.tolist() == [3]
    assert strategies.get("least_confidence").select(ctx, 1).indices.tolist() == [3]
    assert strategies.get("margin").select(ctx, 1).indices.tolist() == [5]
    assert strategies.get("margin").select(ctx, 2).indices.tolist() == [5, 3]


def test_k_center_greedy_known_answer() -> None:
    # Points on a line; labeled center at 0. Farthest first: 10, then the midpoint 5.
    unl = torch.tensor([[1.0], [5.0], [10.0], [9.0], [4.0]])
    lab = torch.tensor([[0.0]])
    pick, dist = k_center_greedy(unl, lab, 3)
    assert pick.tolist()[:2] == [2, 1]
    assert dist[0] == 10.0 and dist[1] == 5.0
    assert pick.tolist()[2] in (0, 4, 3)  # all at distance 1 from the nearest center
    assert dist[2] == 1.0


def test_k_center_greedy_matches_bruteforce() -> None:
    g = torch.Generator().manual_seed(0)
    unl = torch.randn(40, 3, generator=g, dtype=torch.float64)
    lab = torch.randn(5, 3, generator=g, dtype=torch.float64)
    pick, _ = k_center_greedy(unl, lab, 10, chunk=2)
    centers = [*lab]
    chosen: list[int] = []
    for _ in range(10):
        d = torch.stack([torch.stack([(u - c).norm() for c in centers]).min() for u in unl])
        d[chosen] = -1
        j = int(d.argmax())
        chosen.append(j)
        centers.append(unl[j])
    assert pick.tolist() == chosen


def test_k_center_without_labeled_points_uses_generator() -> None:
    unl = torch.randn(20, 2, generator=torch.Generator().manual_seed(1))
    a, _ = k_center_greedy(unl, unl[:0], 5, generator=torch.Generator().manual_seed(3))
    b, _ = k_center_greedy(unl, unl[:0], 5, generator=torch.Generator().manual_seed(3))
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 5


def test_k_center_distances_to_labeled_and_chosen_centers_are_one_formula() -> None:
    """The initial (labeled-center) distances are bitwise those of the greedy updates."""
    g = torch.Generator().manual_seed(0)
    x, centers = torch.randn(300, 64, generator=g), torch.randn(70, 64, generator=g)
    per_center = torch.stack([sq_dist(x, c) for c in centers], dim=1)  # [300, 70]
    assert torch.equal(_min_sq_dist(x, centers, chunk=16), per_center.min(dim=1).values)


def test_k_center_exact_tie_goes_to_the_lowest_pool_position() -> None:
    """A point as far from a labeled center as another is from a chosen one: a true tie.

    Coordinates in [8, 16) share one float32 spacing and the offset is a multiple of it,
    so both differences are exactly ``delta``; squaring after a square root, or the
    ``|x|^2 + |c|^2 - 2 x.c`` expansion, would decide the tie by rounding instead.
    """
    labeled = torch.tensor([[10.791147232055664, 11.213738441467285]])
    far = labeled[0] + torch.tensor([4.0, -2.5])  # chosen first
    delta = torch.tensor([-3.0, 5.0]) * 2**-10
    near_far, near_labeled = far + delta, labeled[0] + delta
    assert torch.equal(near_far - far, delta) and torch.equal(near_labeled - labeled[0], delta)
    others = labeled.repeat(30, 1)  # duplicates of the labeled point (distance 0), pool > 25
    unlabeled = torch.cat([torch.stack([far, near_far, near_labeled]), others])
    pick, dist = k_center_greedy(unlabeled, labeled, 3)
    assert pick.tolist() == [0, 1, 2]  # the tie between positions 1 and 2 goes to 1
    assert dist[1] == dist[2]
