"""The per-sample engine with an arbitrary cotangent, every reduction and every method, against
a plain loop of torch.autograd.grad (float64)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from fishermask.errors import ConfigError
from fishermask.fisher import per_sample_grads
from tests.fisher.fisher_models import make_inputs, make_model

TOL = 1e-8
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


def _cotangents(logits: Tensor) -> Tensor:
    """K = 2 cotangents ``[2, n, C]`` that depend on the logits (not a Fisher's)."""
    p = torch.softmax(logits, dim=1)  # [n, C]
    ramp = torch.linspace(-1.0, 1.0, logits.shape[1], dtype=logits.dtype)
    return torch.stack([p * ramp, p.square() - 0.3 * ramp.flip(0)])


def _loop(model: nn.Module, x: Tensor) -> list[list[dict[str, Tensor]]]:
    """``[i][k] -> {name: d <cot_k(x_i), logits(x_i)> / d theta}``: one autograd call each."""
    params = dict(model.named_parameters())
    out = []
    for i in range(x.shape[0]):
        z = model(x[i : i + 1])[0]  # [C]
        cot = _cotangents(z.detach()[None])[:, 0]  # [K, C]
        row = []
        for k in range(cot.shape[0]):
            g = torch.autograd.grad(z, list(params.values()), cot[k], retain_graph=True)
            row.append(dict(zip(params, g, strict=True)))
        out.append(row)
    return out


def _wanted(model: nn.Module, gen: torch.Generator) -> dict[str, Tensor | None]:
    """Random entries of every other parameter, whole tensors of the rest."""
    out: dict[str, Tensor | None] = {}
    for j, (name, p) in enumerate(model.named_parameters()):
        k = max(1, p.numel() // 3)
        out[name] = None if j % 2 else torch.randperm(p.numel(), generator=gen)[:k].sort().values
    return out


def _run(model: nn.Module, x: Tensor, wanted: dict, reduction: str, method: str) -> list:
    return list(
        per_sample_grads(
            model,
            x,
            wanted,
            cotangents=_cotangents,
            reduction=reduction,
            batch_size=3,
            method=method,
        )
    )


@pytest.mark.parametrize("method", ["auto", "hooks", "func"])
@pytest.mark.parametrize(("name", "size"), [("tiny_cnn", 8), ("tiny_cnn", 12), ("odd_net", 8)])
def test_every_reduction_matches_the_loop(name: str, size: int, method: str) -> None:
    # tiny_cnn at size 8 takes the Gram path for its 'same' (3, 2) convolution, at size 12 the
    # flat-window path (asymmetric padding); its other convolutions are strided or grouped
    model, x = make_model(name), make_inputs(7, size=size)
    ref = _loop(model, x)
    names = [n for n, _ in model.named_parameters()]
    whole = dict.fromkeys(names)
    wanted = _wanted(model, torch.Generator().manual_seed(4))

    for reduction, request in (("entries", wanted), ("sq_sum", whole), ("sq_norms", whole)):
        chunks = _run(model, x, request, reduction, method)
        assert [sl.start for sl, _, _ in chunks] == [0, 3, 6]
        for sl, probs, res in chunks:
            assert list(res) == names
            torch.testing.assert_close(probs, torch.softmax(model(x[sl]), 1), atol=TOL, rtol=0)
        for n in names:
            if reduction == "sq_sum":
                got = sum(res[n] for _, _, res in chunks)
                want = sum(g[n].square() for row in ref for g in row)
            else:
                got = torch.cat([res[n] for _, _, res in chunks])  # [N, K(, E)]
                if reduction == "entries":
                    idx = wanted[n]
                    flat = [[g[n].flatten() for g in row] for row in ref]
                    want = torch.stack([torch.stack([f if idx is None else f[idx] for f in row])
                                        for row in flat])  # fmt: skip
                else:
                    want = torch.tensor([[g[n].square().sum() for g in row] for row in ref])
            torch.testing.assert_close(got, want.to(got), atol=TOL, rtol=0, msg=f"{n} {reduction}")


def test_bad_reduction_and_method_are_errors() -> None:
    model, x = make_model("tiny_cnn"), make_inputs(2)
    with pytest.raises(ConfigError, match="Unknown reduction 'sum'; supported: entries, sq_sum"):
        _run(model, x, {"fc.weight": None}, "sum", "auto")
    with pytest.raises(ConfigError, match="Unknown gradient method 'loop'"):
        _run(model, x, {"fc.weight": None}, "sq_sum", "loop")
