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
