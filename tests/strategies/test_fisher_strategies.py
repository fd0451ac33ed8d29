"""The `fishermask` and `bait` strategies: wiring of the fisher engine, options, run output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fishermask import strategies
from fishermask.errors import ConfigError
from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.runner import Experiment, run_experiment
from fishermask.fisher import (
    bait_embeddings,
    diag_fisher,
    greedy_select,
    masked_grads,
    top_k_mask,
)
from fishermask.strategies.bait import BaitStrategy
from tests.strategies.conftest import make_context


def test_fishermask_equals_the_manual_pipeline() -> None:
    ctx = make_context(n=50, n_labeled=8)
    s = strategies.get("fishermask", sparsity=0.06, fisher_samples=20, batch_size=7)
    sel = s.select(ctx, 6)
    g = torch.Generator().manual_seed(123)  # make_context's generator seed
    sample = torch.randperm(50, generator=g)[:20]
    diag = diag_fisher(ctx.model, ctx.inputs(sample))
    total = sum(p.numel() for p in ctx.model.parameters())
    mask = top_k_mask(diag, round(0.06 * total))
    unl, lab = ctx.pool.unlabeled, ctx.pool.labeled
    v_u = masked_grads(ctx.model, ctx.inputs(unl), mask)
    v_l = masked_grads(ctx.model, ctx.inputs(lab), mask)
    expected = unl[greedy_select(v_u, v_l, 6, lam=1.0, backward_steps=0)]
    assert sel.indices.tolist() == expected.tolist()
    profile = sel.info["mask_profile"]
    assert sum(r["kept"] for r in profile) == sel.info["mask_k"] == round(0.06 * total)
    names = [n for n, _ in ctx.model.named_parameters()]
    assert [r["name"] for r in profile] == names
    fc = next(r for r in profile if r["name"] == "classifier.weight")
    assert fc["kept"] == fc["size"]  # standard mode keeps the final layer whole
    assert set(sel.info["stage_seconds"]) == {
        "diag_fisher",
        "mask",
        "gradients",
        "pool_fisher",
        "selection",
    }


def test_fishermask_masks_only_the_weights_that_train() -> None:
    """A model with frozen layers (requires_grad False: a pretrained backbone) had its mask,
    sized on every parameter, filled mostly with frozen weights, whose information no label
    can change; the selection measured them, silently. The mask now takes its k from, and
    its entries in, the parameters that train, as LPLgrad's gradient norms do."""
    ctx = make_context(n=50, n_labeled=8)
    frozen = {n for n, p in ctx.model.named_parameters() if not n.startswith("classifier.")}
    frozen -= {n for n in frozen if n.startswith("blocks.3")}  # the last block still trains
    for n, p in ctx.model.named_parameters():
        p.requires_grad_(n not in frozen)
    s = strategies.get("fishermask", sparsity=0.1, fisher_samples=20, batch_size=7)
    graph: list[bool] = []  # whether the frozen first block's output joins an autograd graph
    ctx.model.blocks[0].register_forward_hook(lambda m, i, out: graph.append(out.requires_grad))
    sel = s.select(ctx, 6)
    assert graph and not any(graph)  # the diagonal Fisher left the frozen weights alone
    trainable = {n: p for n, p in ctx.model.named_parameters() if n not in frozen}
    g = torch.Generator().manual_seed(123)  # make_context's generator seed
    sample = torch.randperm(50, generator=g)[:20]
    diag = {n: v for n, v in diag_fisher(ctx.model, ctx.inputs(sample)).items() if n in trainable}
    k = round(0.1 * sum(p.numel() for p in trainable.values()))
    mask = top_k_mask(diag, k, always=["classifier.weight"])
    unl, lab = ctx.pool.unlabeled, ctx.pool.labeled
    v_u = masked_grads(ctx.model, ctx.inputs(unl), mask)
    v_l = masked_grads(ctx.model, ctx.inputs(lab), mask)
    expected = unl[greedy_select(v_u, v_l, 6, lam=1.0, backward_steps=0)]
    assert sel.indices.tolist() == expected.tolist()
    assert {r["name"] for r in sel.info["mask_profile"]} == set(trainable)
    assert sel.info["mask_k"] == k
    for p in ctx.model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ConfigError, match="no parameter of the model trains"):
        s.check(ctx.model)


def test_bait_equals_greedy_on_closed_form_embeddings() -> None:
    ctx = make_context(n=40, n_labeled=6)
    sel = strategies.get("bait", lam=0.5, backward_steps=2).select(ctx, 5)
    unl, lab = ctx.pool.unlabeled, ctx.pool.labeled
    p_u, e_u = ctx.predictions(unl)
    p_l, e_l = ctx.predictions(lab)
    pick = greedy_select(
        bait_embeddings(e_u, p_u), bait_embeddings(e_l, p_l), 5, lam=0.5, backward_steps=2
    )
    assert sel.indices.tolist() == unl[pick].tolist()


def test_bait_defaults_to_the_reference_ridge() -> None:
    ctx = make_context(n=40, n_labeled=6)
    sel = strategies.get("bait").select(ctx, 5)
    p_u, e_u = ctx.predictions(ctx.pool.unlabeled)
    p_l, e_l = ctx.predictions(ctx.pool.labeled)
    pick = greedy_select(
        bait_embeddings(e_u, p_u), bait_embeddings(e_l, p_l), 5, lam=0.01, backward_steps=1
    )
    assert sel.indices.tolist() == ctx.pool.unlabeled[pick].tolist()


def test_given_k_too_small_for_the_final_layer_fails_up_front() -> None:
    ctx = make_context()
    final = ctx.model.classifier.weight.numel()
    with pytest.raises(ConfigError, match=rf"k={final - 1}\) cannot hold the {final} final"):
        strategies.get("fishermask", k=final - 1).check(ctx.model)
    strategies.get("fishermask", k=final - 1, mask_mode="dispersed").check(ctx.model)


def test_given_k_above_the_parameter_count_says_the_limit() -> None:
    # it said "FisherMask's k=... exceeds the model's N parameters." with no fix
    ctx = make_context()
    total = sum(p.numel() for p in ctx.model.parameters())
    with pytest.raises(ConfigError) as e:
        strategies.get("fishermask", k=total + 1).check(ctx.model)
    assert str(e.value) == (
        f"FisherMask's k={total + 1} exceeds the model's {total} parameters; use k <= {total}, "
        "or leave k unset (sparsity decides)."
    )


@pytest.mark.parametrize(
    ("model", "width", "shape"),
    [("cnn", 1.0, (1, 28, 28)), ("cnn", 0.25, (1, 8, 8)), ("mlp", 1.0, (1, 28, 28)),
     ("mlp", 0.25, (1, 8, 8)), ("resnet18", 0.125, (3, 32, 32)), ("resnet18", 0.25, (3, 32, 32)),
     ("resnet18", 1.0, (3, 32, 32))],
)  # fmt: skip
def test_default_options_work_on_every_built_in_model(model, width, shape) -> None:
    from fishermask.models import build_model

    net = build_model(model, 10, shape, width)
    s = strategies.get("fishermask")
    s.check(net)  # used to refuse cnn, mlp and narrow ResNets
    total = sum(p.numel() for p in net.parameters())
    final = net.classifier.weight.numel()
    k = s.mask_size(net)
    assert k == max(round(0.002 * total), final + -(-final // 20))
    if (model, width) in (("resnet18", 0.25), ("resnet18", 1.0)):
        assert k == round(0.002 * total)  # the published settings keep the paper's k


def test_default_mask_on_a_small_model_reaches_past_the_final_layer() -> None:
    ctx = make_context()
    sel = strategies.get("fishermask", fisher_samples=20, batch_size=7).select(ctx, 4)
    final = ctx.model.classifier.weight.numel()
    assert sel.info["mask_k"] == final + -(-final // 20)
    others = [r for r in sel.info["mask_profile"] if r["name"] != "classifier.weight"]
    assert sum(r["kept"] for r in others) == -(-final // 20)


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="mask_mode`='sparse', must be 'standard' or 'disp"):
        strategies.get("fishermask", mask_mode="sparse")
    with pytest.raises(ConfigError, match="`bait:scale`='sqrt', must be 'sqrt_prob' or 'none'"):
        strategies.get("bait", scale="sqrt")
    with pytest.raises(ConfigError, match="Unknown gradient scale 'sqrt'"):  # direct construction
        BaitStrategy(scale="sqrt")
    with pytest.raises(ConfigError, match="sparsity"):
        strategies.get("fishermask", sparsity=0)
    # one option per message: `lam` alone used to read "`lam`=-1.0 must be > 0 and
    # `backward_steps`=1 >= 0", as if the default backward_steps were wrong too
    with pytest.raises(ConfigError, match=r"^`lam`=-1.0, must be > 0 \(the ridge λ\)\.$"):
        strategies.get("bait", lam=-1)
    with pytest.raises(ConfigError, match=r"^`backward_steps`=-1, must be an integer >= 0\.$"):
        strategies.get("bait", backward_steps=-1)


def test_run_records_mask_profile(tmp_path: Path) -> None:
    """query_info.jsonl holds FisherMask's mask profile, once per query, for it alone."""
    cfg = ExperimentConfig.from_dict(
        {
            "data": {"dataset": "digits"},
            "model": {"name": "cnn", "width": 0.25},
            "train": {"max_epochs": 1},
            "loop": {"initial": 20, "query_size": 10, "rounds": 1},
            "strategies": [{"name": "fishermask", "sparsity": 0.1, "fisher_samples": 16}, "random"],
            "seeds": [0],
            "device": "cpu",
        }
    )
    run_experiment(Experiment.prepare(cfg), tmp_path)
    info = [json.loads(line) for line in open(tmp_path / "query_info.jsonl")]
    assert [(i["strategy"], i["round"]) for i in info] == [("fishermask", 1)]
    sizes = {r["name"]: r["size"] for r in info[0]["mask_profile"]}
    assert sizes["classifier.weight"] == 10 * 32  # cnn at width 0.25 ends in 32 channels


def test_default_experiment_includes_fishermask_with_its_defaults() -> None:
    from fishermask.experiments.runner import Experiment

    cfg = ExperimentConfig()
    assert "fishermask" in [s.key for s in cfg.strategies]
    assert (cfg.model.name, cfg.model.width) == ("cnn", 0.5)
    exp = Experiment.prepare(cfg)  # checks every strategy against the model: used to refuse
    assert exp.strategies["fishermask"].mask_size(exp.new_model(0, 0)) == 640 + 32


def test_standard_mask_keeps_the_head_of_a_model_that_registers_it_first():
    """FisherMask's standard mode keeps the head's weight whole, found by identity (it used to
    keep the last matrix registered: here a conv layer, silently, with k sized for it)."""
    from torch import nn

    from fishermask.al.pool import Pool
    from fishermask.fisher import head_always
    from fishermask.query_api import ModuleClassifier
    from fishermask.strategies.base import QueryContext
    from fishermask.training import Normalizer

    class HeadFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(16, 4)
            self.body = nn.Sequential(
                nn.Conv2d(1, 8, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(8, 16, 3, padding=1),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    torch.manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8)
    norm = Normalizer.fit(images)
    model = ModuleClassifier(HeadFirst(), example=norm(images[:4])).eval()
    assert head_always(model) == ["module.head.weight"]
    pool = Pool(40)
    pool.add([0, 1, 2, 3], torch.tensor([0, 1, 2, 3]))
    ctx = QueryContext(model, pool, images, norm, torch.Generator().manual_seed(0))
    strategy = strategies.get("fishermask", sparsity=0.01)
    assert strategy.mask_size(model) == 64 + 4  # the head's 64 weights + 5 %
    profile = {r["name"]: r for r in strategy.select(ctx, 3).info["mask_profile"]}
    assert profile["module.head.weight"]["kept"] == 64
