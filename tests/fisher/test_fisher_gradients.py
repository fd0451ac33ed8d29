"""diag_fisher and masked_grads against a plain loop of torch.autograd.grad (float64)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fishermask.errors import ConfigError
from fishermask.fisher import closed_form, diag_fisher, masked_grads, random_mask, top_k_mask
from fishermask.fisher._engine import _plan
from tests.fisher.fisher_models import make_inputs, make_model
from tests.fisher.fisher_reference import ref_diag_fisher, ref_masked_grads

TOL = 1e-8
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

# every model: which parameters go through closed forms and which through the fallback
PLANS = {
    "tiny_cnn": {"fallback": set()},
    "odd_net": {
        "fallback": {"scale.alpha", "norm.weight", "norm.bias", "side.weight", "side.bias"}
    },
}

GRAD_CASES = [
    {"model": "tiny_cnn", "mask": "random", "k": 60, "scale": "sqrt_prob", "batch": 3},
    {"model": "tiny_cnn", "mask": "random", "k": 60, "scale": "none", "batch": 7},
    {"model": "tiny_cnn", "mask": "standard", "k": 50, "scale": "sqrt_prob", "batch": 2},
    {"model": "tiny_cnn", "mask": "dispersed", "k": 45, "scale": "none", "batch": 4},
    {"model": "tiny_cnn", "mask": "all", "k": None, "scale": "sqrt_prob", "batch": 5},
    {"model": "odd_net", "mask": "random", "k": 40, "scale": "sqrt_prob", "batch": 2},
    {"model": "odd_net", "mask": "all", "k": None, "scale": "none", "batch": 3},
    {"model": "odd_net", "mask": "standard", "k": 30, "scale": "sqrt_prob", "batch": 5},
]


def _mask(model: nn.Module, kind: str, k: int | None, x: torch.Tensor) -> dict[str, torch.Tensor]:
    if kind == "random":
        return random_mask(model, k, torch.Generator().manual_seed(3), min_per_tensor=1)
    if kind == "all":
        return {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()}
    return top_k_mask(diag_fisher(model, x), k, mode=kind)


@pytest.mark.parametrize("name", sorted(PLANS))
def test_diag_fisher_matches_loop(name: str) -> None:
    model, x = make_model(name), make_inputs(6)
    fast = diag_fisher(model, x, batch_size=4)
    ref = ref_diag_fisher(model, x)
    assert list(fast) == [n for n, _ in model.named_parameters()]
    for n, r in ref.items():
        assert fast[n].shape == r.shape
        torch.testing.assert_close(fast[n], r, atol=TOL, rtol=0)
    assert all(v.abs().sum() > 0 for v in fast.values())


SUBSETS = {  # a frozen early part, a frozen late part, and parameters through the fallback
    "tiny_cnn": [["conv3.weight", "conv3.bias", "bn3.weight", "fc.weight"], ["conv1.weight"]],
    "odd_net": [["tok.weight", "side.weight", "fc.bias"], ["scale.alpha", "norm.bias"]],
}


@pytest.mark.parametrize(
    ("name", "subset"), [(n, s) for n, subsets in SUBSETS.items() for s in subsets]
)
def test_diag_fisher_of_a_parameter_subset_equals_the_full_one(name: str, subset: list) -> None:
    """``params=`` computes only the named parameters, each exactly as the full call does."""
    model, x = make_model(name), make_inputs(6)
    full = diag_fisher(model, x, batch_size=4)
    part = diag_fisher(model, x, batch_size=4, params=set(subset))
    assert list(part) == [n for n in full if n in subset]  # parameter order, not the given one
    for n in subset:
        assert torch.equal(part[n], full[n]), n


def test_diag_fisher_of_a_subset_never_differentiates_the_rest() -> None:
    """The parameters left out (a frozen backbone) keep requires_grad False while the Fisher
    runs, so their layers build no autograd graph (forward only); the full call turns them on
    to differentiate them."""
    model, x = make_model("tiny_cnn"), make_inputs(6)
    late = {"conv3.weight", "conv3.bias", "bn3.weight", "bn3.bias", "fc.weight", "fc.bias"}
    for n, p in model.named_parameters():
        p.requires_grad_(n in late)
    seen: list[bool] = []
    model.bn2.register_forward_hook(lambda m, i, out: seen.append(out.requires_grad))
    diag_fisher(model, x, batch_size=3, params=late)
    assert seen and not any(seen)  # the frozen conv1 .. bn2 ran without a graph
    seen.clear()
    diag_fisher(model, x, batch_size=3)
    assert seen and all(seen)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == sorted(
        late, key=[n for n, _ in model.named_parameters()].index
    )  # restored


def test_diag_fisher_refuses_unknown_or_empty_params() -> None:
    model, x = make_model("tiny_cnn"), make_inputs(3)
    with pytest.raises(ConfigError, match=r"\['nope'\], which are not parameters"):
        diag_fisher(model, x, params=["fc.weight", "nope"])
    with pytest.raises(ConfigError, match="`params` is empty"):
        diag_fisher(model, x, params=[])
    # one name as a string was read as its characters ("names ['.', 'c', 'e'] ...")
    with pytest.raises(
        ConfigError, match=r"one string; pass a collection of names: params=\['fc.weight'\]"
    ):
        diag_fisher(model, x, params="fc.weight")


@pytest.mark.parametrize("route", ["class", "stack", "kr"])
def test_diag_fisher_conv_routes_match_loop(route: str, monkeypatch) -> None:
    """Each Conv2d sq_sum route (per cotangent, cotangents stacked, position pairs) on every
    ungrouped convolution of the tiny CNN gives the loop's diagonal Fisher."""
    monkeypatch.setattr(closed_form, "_SQ_SUM_MODE", route)
    torch.manual_seed(0)
    dilated = nn.Sequential(  # an ungrouped dilated, strided conv: unfold, not windows
        nn.Conv2d(3, 4, 3, stride=2, padding=2, dilation=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64, 3),
    ).double()
    for model in (make_model("tiny_cnn"), dilated.eval()):
        x = make_inputs(5)
        fast = diag_fisher(model, x, batch_size=3)
        for n, r in ref_diag_fisher(model, x).items():
            torch.testing.assert_close(fast[n], r, atol=TOL, rtol=0)


def test_diag_fisher_default_routes_cover_all_three() -> None:
    """The tiny CNN's convolutions take every route by default (4 classes): conv1 (4
    channels, 16 positions) stacks, conv2 (grouped) goes per class, conv3 (4 positions)
    takes position pairs."""
    model = make_model("tiny_cnn")
    routes = {}
    for name in ("conv1", "conv2", "conv3"):
        conv = getattr(model, name)
        size = {"conv1": 8, "conv2": 4, "conv3": 2}[name]
        inp = torch.zeros(2, conv.in_channels, size, size, dtype=torch.float64)
        routes[name] = closed_form.Conv2dForm(conv, inp, {"weight": None}).sq_sum_mode(4)
    assert routes == {"conv1": "stack", "conv2": "class", "conv3": "kr"}


@pytest.mark.parametrize("conv_path", ["gather", "gemm"])
@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_masked_grads_matches_loop(
    case: dict, conv_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pin the Conv2d path so that both the gather and the GEMM forms are checked everywhere
    monkeypatch.setattr(closed_form, "_DENSE_FRACTION", 0.0 if conv_path == "gemm" else 2.0)
    model, x = make_model(case["model"]), make_inputs(7)
    mask = _mask(model, case["mask"], case["k"], x)
    fast = masked_grads(model, x, mask, scale=case["scale"], batch_size=case["batch"])
    ref = ref_masked_grads(model, x, mask, case["scale"])
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast, ref, atol=TOL, rtol=0)


def test_random_masks_reach_every_kind_of_layer() -> None:
    model = make_model("tiny_cnn")
    mask = random_mask(model, 60, torch.Generator().manual_seed(3), min_per_tensor=1)
    touched = {n for n, m in mask.items() if m.any()}
    assert {
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "bn2.weight",
        "bn2.bias",
        "bn3.weight",
        "fc.weight",
        "fc.bias",
    } <= touched


@pytest.mark.parametrize("name", sorted(PLANS))
def test_plan_routes_unhandled_parameters_to_fallback(name: str) -> None:
    model = make_model(name)
    wanted = {n: None for n, _ in model.named_parameters()}
    owners, fallback = _plan(model, wanted)
    closed = {n for o in owners for n in o.names.values()}
    # side.* are owned by a Linear, but the module is never called: decided at run time
    expected = PLANS[name]["fallback"] - {"side.weight", "side.bias"}
    assert set(fallback) == expected
    assert closed | set(fallback) == set(wanted)


def test_chunking_does_not_change_results() -> None:
    model, x = make_model("tiny_cnn"), make_inputs(9)
    mask = random_mask(model, 30, torch.Generator().manual_seed(0), min_per_tensor=1)
    a = masked_grads(model, x, mask, batch_size=1)
    b = masked_grads(model, x, mask, batch_size=100)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_model_is_left_unchanged_and_frozen_params_work() -> None:
    model, x = make_model("tiny_cnn"), make_inputs(4)
    mask = random_mask(model, 30, torch.Generator().manual_seed(1), min_per_tensor=1)
    ref = ref_masked_grads(model, x, mask, "sqrt_prob")
    model.zero_grad(set_to_none=True)
    model.conv1.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():  # the caller's grad mode does not matter
        fast = masked_grads(model, x, mask)
    torch.testing.assert_close(fast, ref, atol=TOL, rtol=0)
    assert not model.conv1.weight.requires_grad and model.conv2.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert not model._forward_hooks and all(not m._forward_hooks for m in model.modules())


def test_column_order_follows_named_parameters() -> None:
    model, x = make_model("tiny_cnn"), make_inputs(3)
    names = [n for n, _ in model.named_parameters()]
    # a mask dict in reverse order gives the same columns
    mask = random_mask(model, 20, torch.Generator().manual_seed(5))
    reversed_mask = {n: mask[n] for n in reversed(names)}
    torch.testing.assert_close(masked_grads(model, x, mask), masked_grads(model, x, reversed_mask))
    # a mask with only some parameters
    part = {"fc.weight": mask["fc.weight"] | True}
    g = masked_grads(model, x, part)
    assert g.shape == (3, 4, model.fc.weight.numel())


def test_float32_model_gives_float32() -> None:
    model, x = make_model("tiny_cnn").float(), make_inputs(3).float()
    mask = random_mask(model, 10, torch.Generator().manual_seed(5))
    assert masked_grads(model, x, mask).dtype == torch.float32
    assert diag_fisher(model, x)["fc.weight"].dtype == torch.float32


def test_training_mode_is_an_error() -> None:
    model, x = make_model("tiny_cnn").train(), make_inputs(3)
    with pytest.raises(ConfigError, match="model.eval"):
        diag_fisher(model, x)


def test_batchnorm_without_running_stats_is_an_error() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 2, 3),
        nn.BatchNorm2d(2, track_running_stats=False),
        nn.Flatten(),
        nn.LazyLinear(2),
    ).double()
    model(make_inputs(2))
    model.eval()
    with pytest.raises(ConfigError, match="running statistics"):
        diag_fisher(model, make_inputs(2))


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        ({"nope.weight": torch.ones(3, dtype=torch.bool)}, "not parameters"),
        ({"fc.weight": torch.ones(3, dtype=torch.bool)}, "shape"),
    ],
)
def test_bad_masks_are_errors(mask: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        masked_grads(make_model("tiny_cnn"), make_inputs(2), mask)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"scale": "p"}, "scale"), ({"batch_size": 0}, "batch_size")]
)
def test_bad_options_are_errors(kwargs: dict, match: str) -> None:
    model = make_model("tiny_cnn")
    mask = random_mask(model, 5, torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match=match):
        masked_grads(model, make_inputs(2), mask, **kwargs)


def test_non_logit_output_is_an_error() -> None:
    model = nn.Sequential(nn.Conv2d(3, 2, 3)).double().eval()
    with pytest.raises(ConfigError, match=r"\[N, C\]"):
        diag_fisher(model, make_inputs(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    model, x = make_model("tiny_cnn"), make_inputs(5)
    mask = random_mask(model, 40, torch.Generator().manual_seed(2), min_per_tensor=1)
    cpu = masked_grads(model, x, mask)
    diag_cpu = diag_fisher(model, x)
    model.cuda()
    gpu = masked_grads(model, x, mask)  # inputs and mask stay on the CPU: moved per chunk
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=TOL, rtol=0)
    diag_gpu = diag_fisher(model, x.cuda())
    for n, v in diag_cpu.items():
        torch.testing.assert_close(diag_gpu[n].cpu(), v, atol=TOL, rtol=0)
