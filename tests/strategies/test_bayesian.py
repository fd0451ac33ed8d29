"""BALD, BatchBALD and stochastic batch acquisition against plain float64 references."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from fishermask import strategies
from fishermask.errors import ConfigError
from fishermask.strategies import bald_scores, batchbald_select, stochastic_top_k
from tests.strategies.conftest import make_context


def _random_mc_probs(t: int, u: int, c: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(t, u, c, generator=g, dtype=torch.float64)
    return logits.softmax(dim=-1)


def _h(ps: list[float]) -> float:
    return -sum(p * math.log(p) for p in ps if p > 0)


def test_bald_on_hand_computed_probabilities() -> None:
    # item 0: the two passes disagree completely; item 1: they agree on 50/50;
    # item 2: they agree on certainty
    probs = torch.tensor(
        [
            [[1.0, 0.0], [0.5, 0.5], [1.0, 0.0]],
            [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]],
        ],
        dtype=torch.float64,
    )
    scores = bald_scores(probs)
    assert scores[0].item() == pytest.approx(math.log(2))  # H[0.5, 0.5] - 0
    assert scores[1].item() == pytest.approx(0.0, abs=1e-15)  # log 2 - log 2
    assert scores[2].item() == pytest.approx(0.0, abs=1e-15)
    # a 3-class case by hand: passes (0.7, 0.2, 0.1) and (0.1, 0.3, 0.6)
    p = torch.tensor([[[0.7, 0.2, 0.1]], [[0.1, 0.3, 0.6]]], dtype=torch.float64)
    expect = _h([0.4, 0.25, 0.35]) - 0.5 * (_h([0.7, 0.2, 0.1]) + _h([0.1, 0.3, 0.6]))
    assert bald_scores(p).item() == pytest.approx(expect, rel=1e-12)


def test_bald_matches_a_loop() -> None:
    probs = _random_mc_probs(5, 7, 3, 0)
    for u in range(7):
        mean = [sum(probs[t, u, c].item() for t in range(5)) / 5 for c in range(3)]
        cond = sum(_h(probs[t, u].tolist()) for t in range(5)) / 5
        assert bald_scores(probs)[u].item() == pytest.approx(_h(mean) - cond, rel=1e-10)


def _joint_entropy_brute(probs: torch.Tensor, items: list[int]) -> float:
    """H[y_items] of the MC mixture, by enumerating every label configuration."""
    t_count, _, c_count = probs.shape
    total = 0.0
    for config in itertools.product(range(c_count), repeat=len(items)):
        pr = 0.0
        for t in range(t_count):
            term = 1.0
            for i, y in zip(items, config, strict=True):
                term *= probs[t, i, y].item()
            pr += term / t_count
        if pr > 0:
            total -= pr * math.log(pr)
    return total


def _batchbald_brute(probs: torch.Tensor, budget: int) -> tuple[list[int], list[float]]:
    t_count, u_count, _ = probs.shape
    cond = [sum(_h(probs[t, u].tolist()) for t in range(t_count)) / t_count for u in range(u_count)]
    chosen: list[int] = []
    scores: list[float] = []
    for _ in range(budget):
        best, best_score = -1, -math.inf
        for u in range(u_count):
            if u in chosen:
                continue
            s = _joint_entropy_brute(probs, [*chosen, u]) - sum(cond[i] for i in [*chosen, u])
            if s > best_score + 1e-12:
                best, best_score = u, s
        chosen.append(best)
        scores.append(best_score)
    return chosen, scores


@pytest.mark.parametrize(("t", "u", "c", "b"), [(4, 6, 2, 4), (3, 5, 3, 3), (6, 7, 4, 2)])
def test_batchbald_exact_joint_matches_enumeration(t: int, u: int, c: int, b: int) -> None:
    probs = _random_mc_probs(t, u, c, seed=t + u + c)
    picks, scores = batchbald_select(probs, b, max_exact=10**6)
    ref_picks, ref_scores = _batchbald_brute(probs, b)
    assert picks.tolist() == ref_picks
    assert scores.tolist() == pytest.approx(ref_scores, rel=1e-10, abs=1e-12)


def test_batchbald_chunks_do_not_change_the_result() -> None:
    probs = _random_mc_probs(4, 9, 3, 1)
    a = batchbald_select(probs, 4, max_exact=10**6)
    b = batchbald_select(probs, 4, max_exact=10**6, max_elements=5)  # one candidate per chunk
    assert torch.equal(a[0], b[0])
    assert torch.allclose(a[1], b[1], rtol=1e-12)


def test_batchbald_first_pick_is_bald() -> None:
    probs = _random_mc_probs(8, 30, 5, 2)
    picks, scores = batchbald_select(probs, 1)
    b = bald_scores(probs)
    assert picks[0].item() == int(torch.argmax(b))
    assert scores[0].item() == pytest.approx(b.max().item(), rel=1e-12)


def test_batchbald_sampled_estimator_approaches_the_exact_joint() -> None:
    # exact for one configuration set of 3 labels (27), then sampled: compare the batch's
    # estimated joint MI with the enumerated one
    probs = _random_mc_probs(6, 8, 3, 3)
    g = torch.Generator().manual_seed(0)
    picks, scores = batchbald_select(probs, 5, num_samples=40_000, max_exact=9, generator=g)
    exact = _joint_entropy_brute(probs, picks.tolist())
    cond = sum(bald_cond for bald_cond in _cond(probs, picks.tolist()))
    assert scores[-1].item() == pytest.approx(exact - cond, abs=0.02)


def _cond(probs: torch.Tensor, items: list[int]) -> list[float]:
    t_count = probs.shape[0]
    return [sum(_h(probs[t, i].tolist()) for t in range(t_count)) / t_count for i in items]


def test_batchbald_sampled_is_deterministic_under_a_generator() -> None:
    probs = _random_mc_probs(5, 40, 4, 4)
    runs = [
        batchbald_select(probs, 8, num_samples=50, generator=torch.Generator().manual_seed(9))
        for _ in range(2)
    ]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert len(set(runs[0][0].tolist())) == 8


def test_mc_probs_are_stochastic_but_seeded() -> None:
    a = make_context(dropout=0.5, generator_seed=1)
    b = make_context(dropout=0.5, generator_seed=1)
    idx = a.pool.unlabeled
    pa, pb = a.mc_probs(idx, 4), b.mc_probs(idx, 4)
    assert pa.shape == (4, len(idx), 4)
    assert torch.equal(pa, pb)
    assert not torch.allclose(pa[0], pa[1])  # dropout varies between passes
    # eval-mode predictions stay deterministic (dropout off)
    assert torch.equal(a.probs(idx), b.probs(idx))
    assert not a.model.training


def test_bald_and_batchbald_refuse_a_model_without_dropout() -> None:
    """Both ways to add dropout are named, the command line's first for fishermask's models
    and Python's first for a module of one's own (it named only --model cnn:dropout=0.3 and
    SeededDropout layers, not seeded_dropout(model))."""
    from torch import nn

    from fishermask.models.module import ModuleClassifier

    ctx = make_context()
    plain = nn.Sequential(nn.Flatten(), nn.Linear(ctx.images[0].numel(), 4))
    own = ModuleClassifier(plain, example=ctx.images[:2].float())
    python = (
        "in Python, a model with nn.Dropout layers (trained with them) passed as "
        "fishermask.models.dropout.seeded_dropout(model), or built with SeededDropout layers"
    )
    cli = "on the command line, --model cnn:dropout=0.3 (model: {dropout: 0.3} in a config file)"
    for name in ("bald", "batchbald"):
        start = f"Strategy '{name}' needs a model with dropout for its MC samples, and this "
        start += "one has none; "
        with pytest.raises(ConfigError) as fishermasks:
            strategies.get(name).check(ctx.model)
        assert str(fishermasks.value) == f"{start}{cli}; {python}."
        with pytest.raises(ConfigError) as own_module:
            strategies.get(name).check(own)
        assert str(own_module.value) == f"{start}{python}; {cli}."
    strategies.get("bald").check(make_context(dropout=0.2).model)


def test_stochastic_power_draws_in_proportion_to_the_score() -> None:
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    n = 20_000
    counts = torch.zeros(4)
    for _ in range(n):
        counts[stochastic_top_k(weights, 1, "power", 1.0, g)] += 1
    assert (counts / n).tolist() == pytest.approx((weights / weights.sum()).tolist(), abs=0.012)


def test_stochastic_power_pairs_follow_sampling_without_replacement() -> None:
    w = [1.0, 2.0, 3.0]
    g = torch.Generator().manual_seed(1)
    n = 20_000
    counts: dict[tuple[int, int], int] = {}
    for _ in range(n):
        pair = tuple(stochastic_top_k(torch.tensor(w), 2, "power", 2.0, g).tolist())
        counts[pair] = counts.get(pair, 0) + 1
    sq = [x**2 for x in w]  # beta = 2
    for (i, j), k in counts.items():
        expect = sq[i] / sum(sq) * sq[j] / (sum(sq) - sq[i])
        assert k / n == pytest.approx(expect, abs=0.012)


def test_stochastic_modes_rank_and_zero_weights() -> None:
    g = torch.Generator().manual_seed(2)
    u = torch.tensor([0.0, 0.0, 5.0, 1.0], dtype=torch.float64)
    # power never draws a zero score while positive ones remain
    assert sorted(stochastic_top_k(u, 2, "power", 1.0, g).tolist()) == [2, 3]
    # a huge beta makes softmax and softrank the deterministic top-k
    assert stochastic_top_k(u, 2, "softmax", 1e6, g).tolist() == [2, 3]
    assert stochastic_top_k(u, 2, "softrank", 1e3, g).tolist() == [2, 3]


@pytest.mark.parametrize("name", ["entropy", "margin", "least_confidence", "bald"])
def test_stochastic_option_on_score_strategies(name: str) -> None:
    kwargs = {"dropout": 0.3} if name == "bald" else {}
    s = strategies.get(name, stochastic="power", beta="2")
    a = s.select(make_context(generator_seed=3, **kwargs), 6).indices
    b = s.select(make_context(generator_seed=3, **kwargs), 6).indices
    c = s.select(make_context(generator_seed=4, **kwargs), 6).indices
    top = strategies.get(name).select(make_context(generator_seed=3, **kwargs), 6).indices
    assert torch.equal(a, b)
    assert not torch.equal(a, c) or not torch.equal(a, top)


def test_stochastic_option_errors() -> None:
    with pytest.raises(ConfigError, match="stochastic.*supported: none, power, softmax"):
        strategies.get("entropy", stochastic="gumbel")
    with pytest.raises(ConfigError, match="beta"):
        strategies.get("margin", stochastic="softrank", beta=0)


def test_bald_strategy_ranks_the_bald_scores_of_its_mc_samples() -> None:
    sel = strategies.get("bald", mc_samples=3).select(make_context(dropout=0.4), 5)
    ctx = make_context(dropout=0.4)  # the same model, pool and query generator
    unl = ctx.pool.unlabeled
    scores = bald_scores(ctx.mc_probs(unl, 3))
    assert sel.indices.tolist() == unl[torch.argsort(-scores, stable=True)[:5]].tolist()


def test_batchbald_strategy_options_reach_the_selection() -> None:
    options = {"mc_samples": 3, "num_samples": 40, "max_exact": 16, "max_elements": 100}
    sel = strategies.get("batchbald", **options).select(make_context(dropout=0.4), 6)
    ctx = make_context(dropout=0.4)
    unl = ctx.pool.unlabeled
    probs = ctx.mc_probs(unl, 3)
    picks, scores = batchbald_select(
        probs, 6, num_samples=40, max_exact=16, generator=ctx.generator, max_elements=100
    )
    assert sel.indices.tolist() == unl[picks].tolist()
    assert sel.scores is not None and torch.equal(sel.scores, scores)
    with pytest.raises(ConfigError, match="num_samples"):
        strategies.get("batchbald", num_samples=0)
