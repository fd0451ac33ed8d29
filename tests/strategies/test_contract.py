"""The contract every registered strategy obeys (style.md): budget-many unique unlabeled
indices, the same result under the same seed, the model unchanged, a clear error when the
budget exceeds the pool."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from fishermask import strategies
from fishermask.errors import ConfigError, FishermaskError
from fishermask.strategies.base import QueryContext
from tests.strategies.conftest import make_context

ALL = strategies.available()
# options that make each strategy fit the tiny test model (defaults otherwise)
OPTIONS = {"fishermask": {"sparsity": 0.05}}
# the MC-dropout strategies need a model with dropout
CONTEXT = {"bald": {"dropout": 0.3}, "batchbald": {"dropout": 0.3}}


def _get(name: str) -> strategies.Strategy:
    return strategies.get(name, **OPTIONS.get(name, {}))


def _ctx(name: str, **kwargs: object) -> QueryContext:
    """A context as the runner builds it: with the strategy's auxiliary module, if any."""
    ctx = make_context(**{**CONTEXT.get(name, {}), **kwargs})  # type: ignore[arg-type]
    aux = _get(name).make_auxiliary(ctx.model)
    if aux is not None:
        ctx.aux = aux.eval()
    return ctx


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


@pytest.mark.parametrize("name", ALL)
def test_returns_budget_unique_unlabeled(name: str) -> None:
    ctx = _ctx(name)
    sel = _get(name).select(ctx, 7)
    assert len(sel.indices) == 7
    assert len(set(sel.indices.tolist())) == 7
    assert not (ctx.pool.labels_of(sel.indices) >= 0).any()


@pytest.mark.parametrize("name", ALL)
def test_deterministic_under_seed(name: str) -> None:
    a = _get(name).select(_ctx(name, generator_seed=5), 6).indices
    b = _get(name).select(_ctx(name, generator_seed=5), 6).indices
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_model_unchanged(name: str) -> None:
    """Neither the model nor the strategy's auxiliary module (if any) is changed by a query."""
    ctx = _ctx(name)
    before = _params(ctx.model) + (_params(ctx.aux) if ctx.aux is not None else [])
    _get(name).select(ctx, 5)
    after = _params(ctx.model) + (_params(ctx.aux) if ctx.aux is not None else [])
    assert all(torch.equal(x, y) for x, y in zip(before, after, strict=True))
    assert not ctx.model.training


@pytest.mark.parametrize("name", ALL)
def test_budget_larger_than_pool_is_a_clear_error(name: str) -> None:
    ctx = _ctx(name, n=30, n_labeled=10)
    with pytest.raises(ConfigError, match=r"budget 21 is larger than the unlabeled pool \(20"):
        _get(name).select(ctx, 21)


@pytest.mark.parametrize("name", ALL)
def test_whole_pool(name: str) -> None:
    ctx = _ctx(name, n=30, n_labeled=10)
    sel = _get(name).select(ctx, 20)
    assert sorted(sel.indices.tolist()) == ctx.pool.unlabeled.tolist()


def test_unknown_strategy_and_option() -> None:
    with pytest.raises(ConfigError, match="Unknown strategy 'nope'; supported: .*entropy"):
        strategies.get("nope")
    with pytest.raises(ConfigError, match="Unknown option.*foo.*'random'"):
        strategies.get("random", foo=1)
    # a name that is not a string stopped with a TypeError from the spelling suggestion
    with pytest.raises(ConfigError, match=r"Unknown strategy 3 \(an int\); a strategy is named by"):
        strategies.get(3)


def test_a_misspelt_strategy_or_option_is_suggested() -> None:
    with pytest.raises(ConfigError, match=r"supported: .*typiclust; did you mean 'entropy'\?$"):
        strategies.get("entrpy")
    with pytest.raises(ConfigError, match=r"its options: .*; did you mean 'sparsity'\?$"):
        strategies.get("fishermask", sparsty=0.01)


def test_option_values_are_coerced() -> None:
    s = strategies.get("fishermask", k="1500", lam="2")
    assert (s.k, s.lam) == (1500, 2.0)
    assert strategies.get("fishermask", k=None).k is None
    with pytest.raises(ConfigError, match="lam"):
        strategies.get("fishermask", lam=None)
    with pytest.raises(ConfigError, match="`fishermask:k`=.many., must be a valid integer"):
        strategies.get("fishermask", k="many")


# -- a strategy that breaks the contract gets one line naming it and the fix -------------------


def _broken(name: str, result) -> strategies.Strategy:  # noqa: ANN001 - any return value
    """An unregistered strategy whose query returns ``result(ctx, budget)``."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Broken(strategies.Strategy):
        def query(self, ctx: QueryContext, budget: int) -> strategies.Selection:
            return result(ctx, budget)

    Broken.name = name
    return Broken()


def _sel(indices, **kw) -> strategies.Selection:  # noqa: ANN001
    return strategies.Selection(indices, **kw)


BROKEN = [
    ("short", lambda c, b: _sel(c.pool.unlabeled[: b - 1]), r"returned 4 indices for budget 5"),
    (
        "repeated",
        lambda c, b: _sel(torch.cat([c.pool.unlabeled[: b - 1], c.pool.unlabeled[:1]])),
        r"returned pool indices \[\d+\] more than once",
    ),
    (
        "negative",  # -1 used to pass and label the pool's last item (or the last image)
        lambda c, b: _sel(torch.cat([c.pool.unlabeled[: b - 1], torch.tensor([-1])])),
        r"indices \[-1\] outside the pool \[0, 60\)",
    ),
    (
        "too_large",  # used to be a bare IndexError
        lambda c, b: _sel(torch.cat([c.pool.unlabeled[: b - 1], torch.tensor([60])])),
        r"indices \[60\] outside the pool \[0, 60\)",
    ),
    (
        "labeled",
        lambda c, b: _sel(torch.cat([c.pool.unlabeled[: b - 1], c.pool.labeled[:1]])),
        r"already-labeled pool indices \[\d+\].*ctx.pool.unlabeled\[pick\]",
    ),
    (
        "floats",  # used to be truncated to integers silently
        lambda c, b: _sel(c.pool.unlabeled[:b].double() + 0.7),
        r"returned torch.float64 indices; return integer pool indices",
    ),
    (
        "column",  # [B, 1] used to pass select
        lambda c, b: _sel(c.pool.unlabeled[:b, None]),
        r"indices of shape \(5, 1\); return a 1-D tensor of 5",
    ),
    (
        "mask",
        lambda c, b: _sel(torch.isin(torch.arange(60), c.pool.unlabeled[:b])),
        r"returned a boolean mask",
    ),
    (
        "scores",  # used to be written to queries.jsonl as they were
        lambda c, b: _sel(c.pool.unlabeled[:b], scores=torch.zeros(b + 3)),
        r"scores of shape \(8,\) for 5 indices",
    ),
    ("tensor", lambda c, b: c.pool.unlabeled[:b], r"query\(\) returned Tensor; return Selection"),
    (
        "info",
        lambda c, b: _sel(c.pool.unlabeled[:b], info={"x": torch.ones(2)}),
        r"info that is not JSON-serialisable",
    ),
]


@pytest.mark.parametrize(("case", "result", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_contract_breach_is_one_clear_line(case: str, result, message: str) -> None:  # noqa: ANN001
    ctx = make_context()
    with pytest.raises(strategies.StrategyError, match=rf"strategy 'mine'.*{message}") as err:
        _broken("mine", result).select(ctx, 5)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, FishermaskError)  # the CLI prints it as one line


def test_lists_and_arrays_of_pool_indices_are_accepted() -> None:
    ctx = make_context()
    want = ctx.pool.unlabeled[:5]
    for value in (want.tolist(), want.numpy(), want.to(torch.int32)):
        sel = _broken("mine", lambda c, b, v=value: _sel(v)).select(ctx, 5)
        assert sel.indices.dtype == torch.int64 and torch.equal(sel.indices, want)


# -- check_strategy: the same contract, for a strategy of your own -----------------------------


def _mine(query) -> strategies.Strategy:  # noqa: ANN001 - query(ctx, budget) -> Selection
    return _broken("mine", query)


def _lowest_top(ctx: QueryContext) -> torch.Tensor:
    return -ctx.probs(ctx.pool.unlabeled).max(dim=1).values


def top(ctx: QueryContext, budget: int) -> torch.Tensor:
    return strategies.top_k(_lowest_top(ctx), budget)


def test_check_strategy_passes_a_correct_strategy_and_the_built_ins() -> None:
    strategies.check_strategy(_mine(lambda c, b: _sel(c.pool.unlabeled[top(c, b)])))
    for name in ("random", "entropy", "kcenter", "lpl"):
        strategies.check_strategy(strategies.get(name))


def _train_mode(ctx: QueryContext, budget: int) -> strategies.Selection:
    ctx.model.train()
    return _sel(ctx.pool.unlabeled[:budget])


def _changes_weights(ctx: QueryContext, budget: int) -> strategies.Selection:
    with torch.no_grad():
        next(ctx.model.parameters()).add_(1.0)
    return _sel(ctx.pool.unlabeled[:budget])


def _submodule_train_mode(ctx: QueryContext, budget: int) -> strategies.Selection:
    next(ctx.model.children()).train()  # e.g. dropout switched on by hand and left on
    return _sel(ctx.pool.unlabeled[:budget])


def _backward(ctx: QueryContext, budget: int) -> strategies.Selection:
    ctx.model(ctx.inputs(ctx.pool.unlabeled[:4])).logsumexp(dim=1).sum().backward()
    return _sel(ctx.pool.unlabeled[:budget])


def _freezes(ctx: QueryContext, budget: int) -> strategies.Selection:
    for p in ctx.model.parameters():
        p.requires_grad_(False)
    return _sel(ctx.pool.unlabeled[:budget])


CHECKS = [
    (  # the silent mistake: positions within `unlabeled` taken for pool indices
        "positions",
        lambda c, b: _sel(top(c, b)),
        r"already-labeled pool indices .*not the positions pick",
    ),
    (
        "global_rng",
        lambda c, b: _sel(c.pool.unlabeled[torch.randperm(c.pool.num_unlabeled)[:b]]),
        r"under the same query generator; draw every random number from ctx.generator",
    ),
    ("train_mode", _train_mode, r"left the model in training mode"),
    ("changes_weights", _changes_weights, r"changed the model's weights"),
    # these passed: only the top module's mode and the state_dict were compared, yet
    # fishermask.query hands a researcher's own model to the strategy
    ("submodule_train_mode", _submodule_train_mode, r"left the model in training mode \(sub"),
    ("backward", _backward, r"changed the model's .grad or requires_grad.*autograd.grad"),
    ("requires_grad", _freezes, r"changed the model's .grad or requires_grad"),
]


@pytest.mark.parametrize(("case", "query", "message"), CHECKS, ids=[c[0] for c in CHECKS])
def test_check_strategy_names_the_breach(case: str, query, message: str) -> None:  # noqa: ANN001
    with pytest.raises(strategies.StrategyError, match=rf"strategy 'mine'.*{message}"):
        strategies.check_strategy(_mine(query))


# -- NaN / infinite scores: refused, never ranked by position -----------------------------------


def _scoring(name: str, fill: float, *, every: int = 2, **options: object) -> strategies.Strategy:
    """A score strategy whose scores have ``fill`` at every ``every``-th item."""

    class _Filled(strategies.ScoreStrategy):
        def score(self, probs: torch.Tensor) -> torch.Tensor:
            s = -probs.max(dim=1).values
            s[::every] = fill
            return s

    _Filled.name = name
    return dataclass(frozen=True)(_Filled)(**options)  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("fill", "every", "options", "message"),
    [
        (float("nan"), 2, {}, r"25 NaN of its 50 scores"),  # used to skip the NaN items silently
        (float("nan"), 1, {}, r"50 NaN of its 50 scores"),  # used to pick the first 5 by position
        (float("nan"), 1, {"stochastic": "softmax"}, r"50 NaN of its 50 scores"),
        (float("nan"), 1, {"stochastic": "softrank"}, r"50 NaN of its 50 scores"),
        (float("inf"), 5, {}, r"10 infinite of its 50 scores"),
    ],
)
def test_non_finite_scores_are_one_clear_line(fill, every, options, message) -> None:  # noqa: ANN001
    ctx = make_context()
    with pytest.raises(strategies.StrategyError, match=rf"strategy 'mine': {message}") as err:
        _scoring("mine", fill, every=every, **options).select(ctx, 5)
    assert "\n" not in str(err.value) and "pick by position" in str(err.value)


def test_top_k_helpers_refuse_nan() -> None:
    nan = torch.tensor([0.3, float("nan"), 0.1])
    with pytest.raises(strategies.NonFiniteScores, match="1 NaN of its 3 scores"):
        strategies.top_k(nan, 2)
    with pytest.raises(strategies.NonFiniteScores, match="1 NaN of its 3 scores"):
        strategies.stochastic_top_k(nan, 2, "softmax", 1.0, torch.Generator().manual_seed(0))
    # -inf log-weights (zero weight under stochastic=power) stay allowed inside the Gumbel path
    u = torch.tensor([0.0, 0.0, 1.0, 2.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    assert sorted(strategies.stochastic_top_k(u, 2, "power", 1.0, g).tolist()) == [2, 3]


def test_own_ranking_with_nan_scores_is_refused() -> None:
    """A strategy that ranks by itself (no top_k) and returns NaN scores for its picks."""
    ctx = make_context()
    result = lambda c, b: _sel(c.pool.unlabeled[:b], scores=torch.full((b,), float("nan")))  # noqa: E731
    with pytest.raises(strategies.StrategyError, match=r"strategy 'mine' returned 5 NaN scores"):
        _broken("mine", result).select(ctx, 5)
