"""LPL (Yoo & Kweon 2019): the ranking loss by hand, the loss-prediction module, the strategy
contract, and end-to-end runs of lpl / lplgrad / badge with resume."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from fishermask import strategies
from fishermask.errors import ConfigError
from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.progress import NullProgress
from fishermask.experiments.runner import Experiment, run_experiment
from fishermask.models import build_model
from fishermask.strategies._lossnet import LossPredictionModule, loss_prediction_loss
from fishermask.training.augment import Normalizer
from fishermask.training.config import TrainConfig
from fishermask.training.trainer import make_augmenter, train
from tests.strategies.conftest import make_context

# ----------------------------------------------------------------- LossPredLoss by hand


def test_loss_even_batch_by_hand() -> None:
    pred = torch.tensor([0.5, 2.0, 3.0, -1.0, 0.4, 0.3], requires_grad=True)
    true = torch.tensor([1.0, 0.2, 5.0, 0.1, 0.2, 3.0])
    # pairs (0,5): l0 < l5, p0 - p5 = 0.2  -> max(0, 1 + 0.2) = 1.2
    #       (1,4): tie (0.2 == 0.2)         -> 0
    #       (2,3): l2 > l3, p2 - p3 = 4.0   -> max(0, 1 - 4) = 0
    loss = loss_prediction_loss(pred, true, margin=1.0)
    assert loss.item() == pytest.approx(1.2 / 3)
    (g,) = torch.autograd.grad(loss, pred)
    assert torch.allclose(g, torch.tensor([1 / 3, 0, 0, 0, 0, -1 / 3]))
    assert loss_prediction_loss(pred, true, margin=0.5).item() == pytest.approx(0.7 / 3)
    assert loss_prediction_loss(pred, true, margin=5.0).item() == pytest.approx((5.2 + 0 + 1) / 3)


def test_loss_reference_tie_rule_by_hand() -> None:
    pred = torch.tensor([0.5, 2.0, 3.0, -1.0, 0.4, 0.3], requires_grad=True)
    true = torch.tensor([1.0, 0.2, 5.0, 0.1, 0.2, 3.0])
    # as above, but the tie (1,4) counts as s = -1: max(0, 1 + (2.0 - 0.4)) = 2.6
    loss = loss_prediction_loss(pred, true, margin=1.0, ties="reference")
    assert loss.item() == pytest.approx((1.2 + 2.6 + 0) / 3)
    (g,) = torch.autograd.grad(loss, pred)
    assert torch.allclose(g, torch.tensor([1 / 3, 1 / 3, 0, 0, -1 / 3, -1 / 3]))
    no_ties = torch.tensor([1.0, 0.25, 5.0, 0.1, 0.2, 3.0])  # the rules agree without ties
    assert loss_prediction_loss(pred, no_ties, ties="reference").item() == pytest.approx(
        loss_prediction_loss(pred, no_ties).item()
    )


def test_loss_odd_batch_leaves_the_middle_sample_out() -> None:
    pred = torch.tensor([0.5, 2.0, 7.0, 3.0, 0.3], requires_grad=True)
    true = torch.tensor([1.0, 0.2, 9.0, 0.1, 3.0])
    # pairs (0,4): l0 < l4, p0 - p4 = 0.2 -> 1.2;  (1,3): l1 > l3, p1 - p3 = -1 -> 2.0
    loss = loss_prediction_loss(pred, true)
    assert loss.item() == pytest.approx((1.2 + 2.0) / 2)
    (g,) = torch.autograd.grad(loss, pred)
    assert torch.allclose(g, torch.tensor([0.5, -0.5, 0.0, 0.5, -0.5]))
    other_middle = loss_prediction_loss(
        pred.detach().index_fill(0, torch.tensor([2]), -9.0),
        true.index_fill(0, torch.tensor([2]), 0.0),
    )
    assert other_middle.item() == pytest.approx(loss.item())


def test_loss_degenerate_batches_and_detached_target() -> None:
    one = torch.tensor([0.7], requires_grad=True)
    assert loss_prediction_loss(one, torch.tensor([2.0])).item() == 0.0
    pred = torch.randn(8, requires_grad=True)
    true = torch.rand(8, requires_grad=True)
    loss = loss_prediction_loss(pred, true)
    loss.backward()
    assert true.grad is None and pred.grad is not None


# ----------------------------------------------------------------- the module


@pytest.mark.parametrize(
    "name,shape", [("cnn", (1, 8, 8)), ("mlp", (1, 8, 8)), ("resnet18", (3, 8, 8))]
)
def test_module_predicts_one_scalar_per_image(name: str, shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = build_model(name, 3, shape, 0.25)
    aux = strategies.get("lpl", module_width=16).make_auxiliary(model)
    assert isinstance(aux, LossPredictionModule)
    assert [b.in_features for b in aux.branches] == model.feature_channels()
    assert aux.head.in_features == 4 * 16
    out = aux(model.forward_features(torch.randn(5, *shape)).features)
    assert out.shape == (5,)


def _grads_into_backbone(epoch: int) -> tuple[list, list]:
    torch.manual_seed(0)
    model = build_model("cnn", 3, (1, 8, 8), 0.5)
    aux = LossPredictionModule(model.feature_channels(), 8, weight=2.0, detach_fraction=0.3)
    out = model.forward_features(torch.randn(6, 1, 8, 8))
    per_sample = F.cross_entropy(out.logits, torch.tensor([0, 1, 2, 0, 1, 2]), reduction="none")
    loss = aux.loss(out, per_sample, epoch, 10)  # joint for epochs 1..3
    backbone = list(model.parameters())
    g_model = torch.autograd.grad(loss, backbone, retain_graph=True, allow_unused=True)
    g_aux = torch.autograd.grad(loss, list(aux.parameters()), allow_unused=True)
    return list(g_model), list(g_aux)


def test_features_detached_after_detach_fraction_of_the_epoch_limit() -> None:
    before_model, before_aux = _grads_into_backbone(epoch=3)  # epochs 1..3: joint
    after_model, after_aux = _grads_into_backbone(epoch=4)  # from epoch 4: detached
    convs = [g for g in before_model[:-2] if g is not None]
    assert convs and any(float(g.abs().sum()) > 0 for g in convs)
    assert all(g is None for g in after_model)
    assert all(g is not None for g in before_aux + after_aux)
    for a, b in zip(before_aux, after_aux, strict=True):
        assert torch.allclose(a, b)  # the module itself learns the same either way


def test_detach_epoch_is_a_floor_of_the_fraction() -> None:
    aux = LossPredictionModule([4, 4, 4, 4], 8, detach_fraction=0.6)
    assert aux.detach_epoch(200) == 120  # the reference: joint for epochs 1..120
    assert aux.detach_epoch(15) == 9
    assert LossPredictionModule([4], 8, detach_fraction=0.0).detach_epoch(50) == 0


def test_a_run_that_can_never_detach_warns() -> None:
    torch.manual_seed(0)
    model = build_model("cnn", 3, (1, 8, 8), 0.5)
    out = model.forward_features(torch.randn(4, 1, 8, 8))
    per_sample = torch.tensor([0.1, 2.0, 0.5, 1.0])
    never = LossPredictionModule(model.feature_channels(), 8, detach_fraction=1.0)
    with pytest.warns(UserWarning, match="never detached"):
        never.loss(out, per_sample, 1, 20)
    ok = LossPredictionModule(model.feature_channels(), 8, detach_fraction=0.6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok.loss(out, per_sample, 1, 20)


def _train_cnn(aux_fraction: float | None) -> list[torch.Tensor]:
    torch.manual_seed(3)
    model = build_model("cnn", 3, (1, 8, 8), 0.5)
    aux = None
    if aux_fraction is not None:
        aux = LossPredictionModule(model.feature_channels(), 8, detach_fraction=aux_fraction)
    data = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=data)
    y = torch.arange(40) % 3
    cfg = TrainConfig(stop="epochs", epochs=3, batch_size=8, augment="none")
    augmenter = make_augmenter(cfg, Normalizer((0.5,), (0.25,)), channels=1)
    train(model, x, y, cfg, augmenter, generator=torch.Generator().manual_seed(1), aux=aux)
    return [p.detach().clone() for p in model.parameters()]


def test_detaching_from_the_start_trains_the_plain_model_exactly() -> None:
    plain = _train_cnn(None)
    query_only = _train_cnn(0.0)  # the module learns, the backbone never sees its loss
    with pytest.warns(UserWarning, match="never detached"):
        joint = _train_cnn(1.0)
    assert all(torch.equal(a, b) for a, b in zip(plain, query_only, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(plain, joint, strict=True))


def test_loss_uses_weight_and_margin() -> None:
    torch.manual_seed(0)
    model = build_model("cnn", 3, (1, 8, 8), 0.5)
    aux = LossPredictionModule(model.feature_channels(), 8, weight=2.5, margin=0.3)
    out = model.forward_features(torch.randn(4, 1, 8, 8))
    per_sample = torch.tensor([0.1, 2.0, 0.5, 1.0])
    expected = 2.5 * loss_prediction_loss(aux(out.features), per_sample, 0.3)
    assert torch.allclose(aux.loss(out, per_sample, 1, 10), expected)


# ----------------------------------------------------------------- the strategy


def _ctx(**kw):
    ctx = make_context(**kw)
    ctx.aux = strategies.get("lpl").make_auxiliary(ctx.model).eval()  # seeded by make_context
    return ctx


def test_lpl_picks_the_highest_predicted_loss() -> None:
    ctx = _ctx()
    sel = strategies.get("lpl").select(ctx, 7)
    unl = ctx.pool.unlabeled
    with torch.no_grad():
        pred = ctx.aux(ctx.model.forward_features(ctx.inputs(unl)).features)
    best = unl[torch.argsort(-pred)[:7]]
    assert sel.indices.tolist() == best.tolist()
    assert torch.allclose(sel.scores, pred.sort(descending=True).values[:7], atol=1e-6)


def test_lpl_subset_is_drawn_with_the_query_generator() -> None:
    s = strategies.get("lpl", subset=12)
    a = s.select(_ctx(generator_seed=1), 5)
    b = s.select(_ctx(generator_seed=1), 5)
    assert torch.equal(a.indices, b.indices) and a.info == {"candidates": 12}
    picks = {tuple(s.select(_ctx(generator_seed=g), 5).indices.tolist()) for g in range(5)}
    assert len(picks) > 1
    small = strategies.get("lpl", subset=3).select(_ctx(), 5)  # subset < budget: enlarged
    assert len(small.indices) == 5 and small.info == {"candidates": 5}


def test_check_needs_stage_feature_maps() -> None:
    from fishermask.models.base import Classifier

    class Bare(Classifier):
        def __init__(self) -> None:
            super().__init__()
            self.classifier = torch.nn.Linear(4, 2)

    for name in ("lpl", "lplgrad"):
        strategies.get(name).check(build_model("cnn", 3, (1, 8, 8), 0.5))
        with pytest.raises(ConfigError, match="feature_channels\\(\\) is empty"):
            strategies.get(name).check(Bare())


def test_lpl_without_its_module_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="loss-prediction module in `ctx.aux`"):
        strategies.get("lpl").select(make_context(), 3)


@pytest.mark.parametrize("name", ["lpl", "lplgrad"])
@pytest.mark.parametrize(
    "options,match",
    [
        ({"margin": -1}, "margin"),
        ({"weight": -0.5}, "weight"),
        ({"detach_fraction": -0.1}, "detach_fraction"),
        ({"detach_fraction": 1.5}, "detach_fraction"),
        ({"ties": "random"}, "ties"),
        ({"module_width": 0}, "module_width"),
        ({"subset": 0}, "subset"),
    ],
)
def test_bad_options(name: str, options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        strategies.get(name, **options)


# ----------------------------------------------------------------- end to end


def _cli(out: Path) -> None:
    from fishermask.cli import app

    args = (
        "run --dataset digits --model cnn --width 0.25 --strategy lplgrad --strategy lpl "
        "--strategy badge --seeds 1 --initial 20 --query-size 10 --rounds 2 --max-epochs 2 "
        "--workers 1 --no-progress --out"
    ).split() + [str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)


def _queries(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_cli_run_and_resume(tmp_path: Path) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    _cli(full)
    queries = _queries(full)
    assert {(q["strategy"], q["round"]) for q in queries} == {
        (s, r) for s in ("lplgrad", "lpl", "badge") for r in range(3)
    }
    for q in queries:
        assert len(q["indices"]) == (20 if q["round"] == 0 else 10)
    shutil.copytree(full, cut)
    (cut / "trials/lpl__seed0/round_002.json").unlink()  # its trial is recomputed on resume
    _cli(cut)
    assert (cut / "queries.jsonl").read_text() == (full / "queries.jsonl").read_text()


class _StopAfter(NullProgress):
    """Interrupts the run right after round ``r`` of the first trial is committed."""

    def __init__(self, r: int) -> None:
        self.r, self.done = r, -1

    def round_done(self, text: str = "") -> None:
        self.done += 1
        if self.done == self.r:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_resume_restores_the_trained_module(tmp_path: Path) -> None:
    """Killed after round 1: round 2 queries with the model and module of the checkpoint
    (a module re-initialised instead would predict other losses and pick other images)."""
    name = "lpl"
    raw = {
        "data": {"dataset": "digits"},
        "model": {"name": "cnn", "width": 0.25},
        "train": {"max_epochs": 2, "batch_size": 16},
        "loop": {"initial": 20, "query_size": 10, "rounds": 2},
        "strategies": [name],
        "seeds": [0],
        "device": "cpu",
    }
    exp = Experiment.prepare(ExperimentConfig.from_dict(raw))
    run_experiment(exp, tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        run_experiment(exp, tmp_path / "cut", progress=_StopAfter(1))
    trial = tmp_path / f"cut/trials/{name}__seed0"
    assert (trial / "model_001.pt").exists() and not (trial / "round_002.json").exists()
    state = torch.load(trial / "model_001.pt")
    assert state["aux"] is not None and any(k.startswith("head.") for k in state["aux"])
    run_experiment(exp, tmp_path / "cut")  # resumes at round 2 from the round-1 checkpoint
    full = (tmp_path / "full/queries.jsonl").read_text()
    assert (tmp_path / "cut/queries.jsonl").read_text() == full
