"""LPLgrad: vectorised entropy-gradient norms against a plain per-image autograd loop (float64),
and the strategy contract."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fishermask import strategies
from fishermask.errors import ConfigError
from fishermask.models import build_model
from fishermask.strategies import entropy_gradnorm_scores
from tests.strategies.conftest import make_context

# ----------------------------------------------------------------- slow reference


def reference_scores(
    model: nn.Module,
    x: torch.Tensor,
    scheme: str,
    norm: str,
    include: Callable[[str], bool] | None = None,
) -> torch.Tensor:
    """One image at a time, ``torch.autograd.grad`` per loss (the reference code's way)."""
    params = [p for n, p in model.named_parameters() if include is None or include(n)]

    def nu(grads: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if norm == "per_tensor":
            return sum(g.norm() for g in grads)
        return torch.sqrt(sum(g.square().sum() for g in grads))

    out = []
    for i in range(len(x)):
        z = model(x[i : i + 1])  # [1, C]
        p = z.softmax(dim=1)[0]
        if scheme == "entropy":
            h = -(p * p.log()).sum()
            out.append(nu(torch.autograd.grad(h, params)))
        else:
            s = 0.0
            for c in range(z.shape[1]):
                ce = F.cross_entropy(z, torch.tensor([c]))
                s = s + p[c].detach() * nu(torch.autograd.grad(ce, params, retain_graph=True))
            out.append(s)
    return torch.stack(out)


# ----------------------------------------------------------------- test models


class Tiny(nn.Module):
    """Conv2d (+bias, stride 2, padding 1) -> BatchNorm2d -> ReLU -> Conv2d (no bias, padding 1,
    dilation 2, groups 2) -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1, dilation=2, groups=2, bias=False)
        self.fc = nn.Linear(6 * 2 * 2, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv1(x)))  # [n, 4, 4, 4]
        h = torch.tanh(self.conv2(h))  # [n, 6, 2, 2]
        return self.fc(h.flatten(1))


class Scale(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.linspace(0.5, 1.5, c))

    def forward(self, x: torch.Tensor, *, power: int = 1) -> torch.Tensor:
        return x * self.s.view(1, -1, 1, 1) ** power


class AddInPlace(nn.Module):
    """Modifies its own input in place before using its parameter."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.linspace(-1.0, 1.0, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.add_(1.0)
        return x * self.s.view(1, -1, 1, 1)


class Awkward(nn.Module):
    """Every path the closed forms do not cover: an unknown layer type with a keyword argument,
    GroupNorm, a convolution called twice, a reflect-padded convolution, a Linear applied to a
    sequence, in-place ops on recorded outputs and inputs, a head used only functionally, and a
    parameter of the root module."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.scale = Scale(3)
        self.gn = nn.GroupNorm(1, 3)
        self.shared = nn.Conv2d(3, 3, 1)
        self.inplace = AddInPlace(3)
        self.reflect = nn.Conv2d(3, 2, 3, padding=1, padding_mode="reflect")
        self.seq = nn.Linear(16, 3)
        self.head = nn.Linear(2 * 3, 4)
        self.offset = nn.Parameter(torch.tensor([0.1, -0.2, 0.3, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        h.relu_()  # in place on a recorded output
        h = self.gn(self.scale(h, power=2))
        h = self.inplace(self.shared(torch.tanh(self.shared(h))))
        h = self.reflect(h)  # [n, 2, 4, 4]
        s = self.seq(h.flatten(2))  # [n, 2, 16] -> [n, 2, 3]
        return F.linear(s.flatten(1), self.head.weight, self.head.bias) + self.offset


def _randomise(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return model.double().eval()


CASES = {
    "tiny": (lambda: Tiny(), (2, 8, 8)),
    "awkward": (lambda: Awkward(), (2, 4, 4)),
    "cnn": (lambda: build_model("cnn", 4, (1, 8, 8), 0.5), (1, 8, 8)),
    "resnet18": (lambda: build_model("resnet18", 3, (3, 8, 8), 0.125), (3, 8, 8)),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest) -> tuple[str, nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    build, shape = CASES[request.param]
    model = _randomise(build())
    x = torch.randn(7, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return request.param, model, x


# ----------------------------------------------------------------- exactness


@pytest.mark.parametrize("scheme", ["entropy", "expected"])
@pytest.mark.parametrize("norm", ["per_tensor", "global"])
@pytest.mark.parametrize("method", ["hooks", "func"])
def test_matches_the_per_image_loop(case, scheme: str, norm: str, method: str) -> None:
    name, model, x = case
    if name == "resnet18" and (method == "func" or scheme == "expected"):
        pytest.skip("covered on the smaller models; keeps the suite fast")
    ref = reference_scores(model, x, scheme, norm)
    got = entropy_gradnorm_scores(model, x, scheme=scheme, norm=norm, method=method, batch_size=3)
    assert got.dtype == torch.float64 and got.shape == (7,)
    torch.testing.assert_close(got, ref, rtol=1e-8, atol=1e-10)


def test_parameter_filter_matches_the_loop() -> None:
    torch.manual_seed(0)
    model = _randomise(build_model("cnn", 4, (1, 8, 8), 0.5))
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    backbone = lambda n: not n.startswith("classifier.")  # noqa: E731
    ref = reference_scores(model, x, "entropy", "per_tensor", backbone)
    got = entropy_gradnorm_scores(model, x, include=backbone)
    torch.testing.assert_close(got, ref, rtol=1e-8, atol=1e-10)
    assert not torch.allclose(got, entropy_gradnorm_scores(model, x))


def test_auto_equals_hooks_and_leaves_the_model_alone(case) -> None:
    _, model, x = case
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = entropy_gradnorm_scores(model, x, method="auto", batch_size=4)
    b = entropy_gradnorm_scores(model, x, method="hooks", batch_size=7)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert not any(m.training for m in model.modules())
    assert not any(m._forward_hooks for m in model.modules())


def test_the_other_readings_of_expected_are_degenerate() -> None:
    """Why ``expected`` takes the norm inside the expectation (see its docstring)."""
    torch.manual_seed(0)
    model = _randomise(Tiny())
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    params = list(model.parameters())
    for i in range(3):
        z = model(x[i : i + 1])
        p = z.softmax(dim=1)
        c = torch.arange(z.shape[1])
        ce = F.cross_entropy(z.expand(len(c), -1), c, reduction="none")  # [C]
        # p constant: the expected gradient is identically zero
        g_const = torch.autograd.grad((p[0].detach() * ce).sum(), params, retain_graph=True)
        assert max(float(g.abs().max()) for g in g_const) < 1e-12
        # p differentiated (the reference code): exactly the entropy gradient
        g_ref = torch.autograd.grad((p[0] * ce).sum(), params, retain_graph=True)
        g_ent = torch.autograd.grad(-(p * p.log()).sum(), params)
        for a, b in zip(g_ref, g_ent, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_float32_agrees_with_float64() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 10, (3, 16, 16), 0.125).eval()
    x = torch.randn(6, 3, 16, 16)
    lo = entropy_gradnorm_scores(model, x)
    hi = entropy_gradnorm_scores(model.double(), x.double())
    assert lo.dtype == torch.float32
    torch.testing.assert_close(lo.double(), hi, rtol=1e-4, atol=1e-6)


def test_hooks_only_error_names_the_alternatives() -> None:
    class Pair(nn.Module):  # owns a parameter, returns a tuple
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(2, 3))

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x @ self.w.T, x

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pair = Pair()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pair(x)[0]

    net = Net().double().eval()
    x = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(ConfigError, match="method='hooks' cannot follow.*'auto' or 'func'"):
        entropy_gradnorm_scores(net, x, method="hooks")
    ref = reference_scores(net, x, "entropy", "per_tensor")
    torch.testing.assert_close(entropy_gradnorm_scores(net, x), ref, rtol=1e-8, atol=1e-10)


def test_clear_errors() -> None:
    model = build_model("cnn", 3, (1, 8, 8), 0.5)
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(ConfigError, match="eval mode"):
        entropy_gradnorm_scores(model.train(), x)
    model.eval()
    with pytest.raises(ConfigError, match="Unknown norm 'l1'; supported: per_tensor, global"):
        entropy_gradnorm_scores(model, x, norm="l1")
    with pytest.raises(ConfigError, match="Unknown scheme"):
        entropy_gradnorm_scores(model, x, scheme="bald")
    with pytest.raises(ConfigError, match="No parameter"):
        entropy_gradnorm_scores(model, x, include=lambda n: False)
    bn = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.BatchNorm2d(2, track_running_stats=False),
        nn.Flatten(),
        nn.Linear(72, 3),
    ).eval()
    with pytest.raises(ConfigError, match="running statistics"):
        entropy_gradnorm_scores(bn, x)


# ----------------------------------------------------------------- the strategy


def test_lplgrad_picks_the_highest_scores_of_its_subset() -> None:
    ctx = make_context()
    sel = strategies.get("lplgrad", subset=20).select(ctx, 6)
    again = make_context()
    cand = again.pool.unlabeled[
        torch.randperm(len(again.pool.unlabeled), generator=again.generator)[:20].sort().values
    ]
    scores = entropy_gradnorm_scores(again.model, again.inputs(cand))
    order = torch.argsort(-scores, stable=True)[:6]
    assert sel.indices.tolist() == cand[order].tolist()
    torch.testing.assert_close(sel.scores, scores[order])
    assert sel.info == {"candidates": 20}


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"scheme": "expected", "norm": "global"},
        {"parameters": "backbone", "subset": "none"},
        {"method": "func", "subset": 15},
    ],
)
def test_lplgrad_contract(options: dict) -> None:
    s = strategies.get("lplgrad", **options)
    ctx = make_context()
    before = [t.clone() for t in ctx.model.state_dict().values()]
    sel = s.select(ctx, 8)
    assert len(sel.indices) == 8 and len(set(sel.indices.tolist())) == 8
    assert not (ctx.pool.labels_of(sel.indices) >= 0).any()
    assert all(
        torch.equal(a, b) for a, b in zip(before, ctx.model.state_dict().values(), strict=True)
    )
    assert not ctx.model.training
    assert torch.equal(sel.indices, s.select(make_context(), 8).indices)
    with pytest.raises(ConfigError, match=r"budget 51 is larger than the unlabeled pool \(50"):
        s.select(make_context(), 51)


def test_lplgrad_subset_depends_on_the_generator_only() -> None:
    s = strategies.get("lplgrad", subset=10)
    picks = [tuple(s.select(make_context(generator_seed=g), 4).indices.tolist()) for g in range(4)]
    assert len(set(picks)) > 1
    assert picks[2] == tuple(s.select(make_context(generator_seed=2), 4).indices.tolist())


def test_lplgrad_trains_a_loss_prediction_module_and_checks_options() -> None:
    model = build_model("cnn", 3, (1, 8, 8), 0.5)
    aux = strategies.get("lplgrad", module_width=8, margin=0.5).make_auxiliary(model)
    assert aux is not None and aux.margin == 0.5 and aux.head.in_features == 32
    with pytest.raises(ConfigError, match="`lplgrad:scheme`='x', must be 'entropy' or 'expected'"):
        strategies.get("lplgrad", scheme="x")
    with pytest.raises(ConfigError, match="`lplgrad:parameters`='head', must be 'all' or 'backb"):
        strategies.get("lplgrad", parameters="head")


class _HeadFirst(nn.Module):
    """A plain module whose head is registered first (so its parameters are not named
    ``classifier.*`` once fishermask wraps it)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(6, 3)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_lplgrad_backbone_leaves_out_a_plain_modules_head() -> None:
    # parameters=backbone once left out parameters named "classifier.*"; a plain module's
    # head is "module.head.*" in its wrapper, so "backbone" scored every parameter, silently
    import fishermask

    torch.manual_seed(0)
    model = _HeadFirst().double().eval()
    x = torch.randn(12, 1, 4, 4, dtype=torch.float64)
    got = fishermask.query(
        model, x, budget=12, strategy="lplgrad", parameters="backbone", subset=None
    )
    body = lambda n: n.startswith("body.")  # noqa: E731
    ref = reference_scores(model, x, "entropy", "per_tensor", body)
    torch.testing.assert_close(got.scores, ref[got.indices])
    every = reference_scores(model, x, "entropy", "per_tensor")
    assert not torch.allclose(ref, every)  # the head's gradients count in "all"
