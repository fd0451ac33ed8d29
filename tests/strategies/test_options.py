"""Every option of every registered strategy is exercised by a named test.

As scikit-activeml checks that each constructor parameter has its test, ``COVERAGE``
names, for each (strategy, option), a test that sets the option to a non-default value
and checks its effect (or its refusal of bad values). A strategy or option added without
an entry here fails :func:`test_every_strategy_option_has_a_test`.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest
import torch

from fishermask import strategies
from fishermask.fisher import diag_fisher, greedy_select, masked_grads, top_k_mask
from tests.strategies.conftest import make_context

FISHER = "tests.strategies.test_fisher_strategies"
LPL = "tests.strategies.test_lpl"
LPLGRAD = "tests.strategies.test_lplgrad"
HERE = "tests.strategies.test_options"
BADGE = "tests.strategies.test_badge"
BAYES = "tests.strategies.test_bayesian"
COLD = "tests.strategies.test_coldstart"

STOCHASTIC = {  # the options every score strategy shares (ScoreStrategy)
    "stochastic": f"{BAYES}::test_stochastic_option_on_score_strategies",
    "beta": f"{BAYES}::test_stochastic_option_on_score_strategies",
}

LOSS_NET = {  # the options LPL and LPLgrad share (LossPredictionStrategy)
    "weight": f"{LPL}::test_loss_uses_weight_and_margin",
    "margin": f"{LPL}::test_loss_uses_weight_and_margin",
    "detach_fraction": f"{LPL}::test_features_detached_after_detach_fraction_of_the_epoch_limit",
    "module_width": f"{LPL}::test_module_predicts_one_scalar_per_image",
    "ties": f"{LPL}::test_loss_reference_tie_rule_by_hand",
}

COVERAGE: dict[tuple[str, str], str] = {
    ("badge", "chunk"): f"{HERE}::test_badge_chunk_does_not_change_the_selection",
    ("fishermask", "sparsity"): f"{FISHER}::test_fishermask_equals_the_manual_pipeline",
    ("fishermask", "fisher_samples"): f"{FISHER}::test_fishermask_equals_the_manual_pipeline",
    ("fishermask", "batch_size"): f"{FISHER}::test_fishermask_equals_the_manual_pipeline",
    (
        "fishermask",
        "mask_mode",
    ): f"{FISHER}::test_given_k_too_small_for_the_final_layer_fails_up_front",
    ("fishermask", "k"): f"{HERE}::test_fishermask_k_lam_backward_steps_and_scale",
    ("fishermask", "lam"): f"{HERE}::test_fishermask_k_lam_backward_steps_and_scale",
    ("fishermask", "backward_steps"): f"{HERE}::test_fishermask_k_lam_backward_steps_and_scale",
    ("fishermask", "scale"): f"{HERE}::test_fishermask_k_lam_backward_steps_and_scale",
    ("bait", "lam"): f"{FISHER}::test_bait_equals_greedy_on_closed_form_embeddings",
    ("bait", "backward_steps"): f"{FISHER}::test_bait_equals_greedy_on_closed_form_embeddings",
    ("bait", "scale"): f"{FISHER}::test_bad_options",
    **{("lpl", k): v for k, v in LOSS_NET.items()},
    ("lpl", "subset"): f"{LPL}::test_lpl_subset_is_drawn_with_the_query_generator",
    **{("lplgrad", k): v for k, v in LOSS_NET.items()},
    ("lplgrad", "subset"): f"{LPLGRAD}::test_lplgrad_picks_the_highest_scores_of_its_subset",
    ("lplgrad", "scheme"): f"{LPLGRAD}::test_lplgrad_contract",
    ("lplgrad", "norm"): f"{LPLGRAD}::test_lplgrad_contract",
    ("lplgrad", "parameters"): f"{LPLGRAD}::test_lplgrad_contract",
    ("lplgrad", "method"): f"{LPLGRAD}::test_lplgrad_contract",
    ("lplgrad", "grad_batch_size"): f"{HERE}::test_lplgrad_grad_batch_size_does_not_change_scores",
    **{
        (name, k): v
        for name in ("entropy", "margin", "least_confidence", "bald")
        for k, v in STOCHASTIC.items()
    },
    ("bald", "mc_samples"): f"{BAYES}::test_bald_strategy_ranks_the_bald_scores_of_its_mc_samples",
    **{
        ("batchbald", k): f"{BAYES}::test_batchbald_strategy_options_reach_the_selection"
        for k in ("mc_samples", "num_samples", "max_exact", "max_elements")
    },
    **{
        ("typiclust", k): f"{COLD}::test_typiclust_options_reach_the_pipeline"
        for k in ("embedding", "normalize", "max_clusters", "min_cluster_size", "knn")
    },
    **{
        ("probcover", k): f"{COLD}::test_probcover_options_reach_the_pipeline"
        for k in ("radius", "purity", "embedding", "normalize", "max_edges")
    },
}


def _options() -> set[tuple[str, str]]:
    return {
        (name, f.name)
        for name in strategies.available()
        for f in dataclasses.fields(strategies.registry.strategy_class(name))
    }


def test_every_strategy_option_has_a_test() -> None:
    missing = sorted(_options() - set(COVERAGE))
    assert not missing, f"options without a test (add one and name it in COVERAGE): {missing}"
    stale = sorted(set(COVERAGE) - _options())
    assert not stale, f"COVERAGE names options that no longer exist: {stale}"


@pytest.mark.parametrize(("key", "where"), sorted(COVERAGE.items()))
def test_each_named_test_exists_and_sets_the_option(key: tuple[str, str], where: str) -> None:
    module, name = where.split("::")
    test = getattr(importlib.import_module(module), name, None)
    assert callable(test), f"{where} (named for {key}) does not exist"
    source = inspect.getsource(test)  # with its decorators (parametrised option values)
    assert key[1] in source, f"{where} never mentions {key[1]!r}"


def test_fishermask_k_lam_backward_steps_and_scale() -> None:
    """Non-default k, lam, backward_steps and scale reach the pipeline as given."""
    ctx = make_context(n=50, n_labeled=8)
    options = {"k": 400, "lam": 0.5, "backward_steps": 1, "scale": "none", "fisher_samples": 20}
    sel = strategies.get("fishermask", **options).select(ctx, 6)
    g = torch.Generator().manual_seed(123)  # make_context's generator seed
    sample = torch.randperm(50, generator=g)[:20]
    mask = top_k_mask(diag_fisher(ctx.model, ctx.inputs(sample)), 400)
    unl, lab = ctx.pool.unlabeled, ctx.pool.labeled
    v_u = masked_grads(ctx.model, ctx.inputs(unl), mask, scale="none")
    v_l = masked_grads(ctx.model, ctx.inputs(lab), mask, scale="none")
    expected = unl[greedy_select(v_u, v_l, 6, lam=0.5, backward_steps=1)]
    assert sel.info["mask_k"] == 400
    assert sel.indices.tolist() == expected.tolist()


def test_badge_chunk_does_not_change_the_selection() -> None:
    a = strategies.get("badge").select(make_context(), 9).indices
    b = strategies.get("badge", chunk=7).select(make_context(), 9).indices
    assert torch.equal(a, b)


def test_lplgrad_grad_batch_size_does_not_change_scores() -> None:
    def scores(**options: object) -> torch.Tensor:
        ctx = make_context()
        s = strategies.get("lplgrad", subset=None, **options)
        aux = s.make_auxiliary(ctx.model)
        assert aux is not None
        ctx.aux = aux.eval()
        sel = s.select(ctx, 8)
        assert sel.scores is not None
        return sel.scores

    torch.testing.assert_close(scores(grad_batch_size=3), scores(), rtol=1e-5, atol=1e-7)
