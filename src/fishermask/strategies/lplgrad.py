"""LPLgrad: loss-prediction training, entropy-gradient-norm queries (spec §5, seed 000).

Index convention: N images (n in one chunk), C classes, K per-sample losses whose gradients
are taken (1 for the entropy scheme, C for the expected scheme), T selected parameter
tensors; inside a layer: I/O input/output features, P output positions of a convolution,
J = (I/G)·kh·kw unfolded inputs per output channel of a convolution with G groups.

**Training phase.** The classifier is trained jointly with a loss-prediction module
(Yoo & Kweon 2019, :mod:`fishermask.strategies._lossnet`). Its prediction is *not* used to
select; it shapes the features.

**Query phase.** On a random subset of the unlabeled pool (reference: 10 000), each image
gets the score of :func:`entropy_gradnorm_scores` (the gradient norm of the entropy of its
prediction w.r.t. the model's parameters); the highest are labeled. This follows the
GradNorm query of Wang et al. ("Boosting active learning via improving test performance",
AAAI 2022), which LPLgrad's reference code reuses one image at a time.

Here the per-sample gradients are vectorised. ``method="hooks"`` (the default through
``"auto"``): one forward pass per chunk records the input and output of every layer that
owns a selected parameter; one backward pass *w.r.t. those outputs only* (no weight
gradient is formed) gives each layer's output gradient ``g``; per-sample gradients or their
norms then follow in closed form:

- ``nn.Linear``: weight ``g_n ⊗ a_n`` (squared norm ``‖g_n‖²‖a_n‖²``), bias ``g_n``;
- ``nn.Conv2d``: weight ``g_n [O, P] · unfold(x_n)ᵀ [P, J]`` per group, built one kernel
  offset at a time from windows of the padded input (no ``unfold`` copy); for a layer called
  once, the squared norm is taken without forming the gradient when that is cheaper,
  ``Σ_pq (gᵀg)_pq (UᵀU)_pq`` if ``P (O + J) < O J`` (deep layers with few positions);
  bias ``Σ_p g_n``;
- ``nn.BatchNorm*d`` in eval mode: weight ``Σ_pos g_n · x̂_n``, bias ``Σ_pos g_n`` with
  ``x̂ = (x − running_mean) / sqrt(running_var + eps)``;
- any other module with parameters (or a Conv2d with a non-zero or string padding mode): an
  exact ``torch.func`` vector-Jacobian product of that module alone, vmapped over the chunk;
- a layer called more than once, or a parameter shared by several layers: the per-sample
  gradients of every call are formed and summed before the norm is taken;
- parameters whose module is never called as a module (used functionally elsewhere): an
  exact ``torch.func`` per-sample gradient of the whole model w.r.t. those parameters.

Tensors modified in place after they were recorded are detected (version counters) and
the chunk is redone on copies. ``method="func"`` computes ``vmap(grad)`` of the whole model
instead (simpler, slower on CPU; see ``docs/benchmarks.md``). Both need per-sample
independence: every module in eval mode (BatchNorm with running statistics), which is
checked. Limitation: a parameter used *both* inside its module's forward and functionally
elsewhere would only be counted through its module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap
from torch.utils import _pytree as pytree

from fishermask.errors import ConfigError, check_choice, check_positive
from fishermask.fisher._engine import check_model
from fishermask.strategies._lossnet import LossPredictionStrategy, check_subset, draw_subset
from fishermask.strategies.base import QueryContext, Selection, top_k
from fishermask.strategies.registry import register

SCHEMES = ("entropy", "expected")
NORMS = ("per_tensor", "global")
METHODS = ("auto", "hooks", "func")
PARAMETER_SETS = ("all", "backbone")

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


# --------------------------------------------------------------------------- public API


def entropy_gradnorm_scores(
    model: nn.Module,
    inputs: Tensor,
    *,
    norm: str = "per_tensor",
    scheme: str = "entropy",
    include: Callable[[str], bool] | None = None,
    batch_size: int = 64,
    method: str = "auto",
) -> Tensor:
    """Per-image gradient-norm uncertainty (GradNorm / LPLgrad query score).

    For image x with logits z = f(x; θ) and p = softmax(z), and g_t the gradient w.r.t.
    parameter tensor t (those of ``model.named_parameters()`` that require grad and pass
    ``include``):

    - ``scheme="entropy"`` (LPLgrad): g_t = ∂H(p)/∂θ_t with H(p) = −Σ_c p_c log p_c, and
      the score is ``Σ_t ‖g_t‖`` (``norm="per_tensor"``, the reference) or
      ``sqrt(Σ_t ‖g_t‖²)`` (``norm="global"``).
    - ``scheme="expected"``: the expected gradient norm over the model's own predictive
      distribution, ``Σ_c p_c · ν(∂CE(x, c)/∂θ)`` with p_c constants and ν the chosen norm
      (the norm is taken *inside* the expectation, as in expected gradient length). Two
      other readings are degenerate and not offered: ``ν(Σ_c p_c ∂CE(x, c)/∂θ)`` with p_c
      constants is identically 0 (the score function has zero mean under p), and the
      reference code's ``∂(Σ_c p_c CE(x, c))/∂θ`` with p_c differentiated equals ∂H/∂θ
      exactly (``Σ_c p_c CE(x, c) = H(p)``), i.e. ``scheme="entropy"``.

    Args:
        model: maps ``[n, ...]`` to logits ``[n, C]``; every module in eval mode; not
            modified (no ``.grad`` is written).
        inputs: ``[N, ...]`` normalised inputs (moved chunk by chunk to the model's device
            and dtype).
        norm: ``"per_tensor"`` or ``"global"``.
        scheme: ``"entropy"`` or ``"expected"`` (costs C backward passes per chunk).
        include: keeps the parameters whose name (as in ``model.named_parameters()``) it
            accepts; ``None`` keeps all (the reference: every parameter of the classifier,
            its final linear layer included — "backbone" in the reference code means the
            classifier as opposed to the loss-prediction module).
        batch_size: images per chunk (bounds memory).
        method: ``"hooks"`` (closed forms per layer), ``"func"`` (``torch.func`` per-sample
            gradients of the whole model) or ``"auto"`` (hooks, or func where hooks cannot
            see a layer's output as a tensor).

    Returns:
        Scores ``[N]`` on the model's device, in the model's dtype.

    Raises:
        ConfigError: an unknown option, a module in training mode, or no parameter selected.
    """
    check_choice("norm", norm, NORMS)
    check_choice("scheme", scheme, SCHEMES)
    check_choice("gradient method", method, METHODS)
    check_positive("batch_size", batch_size)
    names = _selected_names(model, include)
    p0 = next(model.parameters())
    out = []
    for i in range(0, inputs.shape[0], batch_size):
        x = inputs[i : i + batch_size].to(device=p0.device, dtype=p0.dtype)
        sq, probs = per_sample_sq_norms(model, x, scheme=scheme, names=names, method=method)
        out.append(_combine(sq, probs, norm=norm, scheme=scheme))
    return torch.cat(out) if out else p0.new_zeros(0)


def per_sample_sq_norms(
    model: nn.Module,
    x: Tensor,
    *,
    scheme: str = "entropy",
    names: list[str] | None = None,
    method: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Squared per-sample gradient norms of each parameter tensor, for one chunk.

    Args:
        model: as in :func:`entropy_gradnorm_scores` (eval mode).
        x: inputs ``[n, ...]`` on the model's device and dtype.
        scheme: ``"entropy"`` (K = 1 loss: H(p)) or ``"expected"`` (K = C losses: CE(x, c)).
        names: parameter names (default: all that require grad), in the order of the result.
        method: ``"auto"``, ``"hooks"`` or ``"func"``.

    Returns:
        ``(sq [n, K, T], probs [n, C])``: ``sq[i, k, t] = ‖∂loss_k(x_i)/∂θ_t‖²`` and the
        softmax probabilities (detached).
    """
    check_model(model)  # eval mode, BatchNorm with running statistics
    if names is None:
        names = _selected_names(model, None)
    losses = _scheme_losses(scheme)
    if method != "func":
        try:
            try:
                return _hooks_sq_norms(model, x, names, losses, clone=False)
            except _InPlace:  # retry with copies of every recorded tensor
                return _hooks_sq_norms(model, x, names, losses, clone=True)
        except (_Unsupported, _InPlace) as err:
            if method == "hooks":
                raise ConfigError(
                    f"method='hooks' cannot follow this model ({err}); use method='auto' or 'func'."
                ) from None
    with torch.no_grad():
        probs = model(x).softmax(dim=1)
    return _func_sq_norms(model, x, names, losses), probs


# --------------------------------------------------------------------------- helpers


def _selected_names(model: nn.Module, include: Callable[[str], bool] | None) -> list[str]:
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if include is not None:
        names = [n for n in names if include(n)]
    if not names:
        raise ConfigError(
            "No parameter of the model is selected for the gradient norm; "
            "loosen the parameter filter (e.g. parameters='all')."
        )
    return names


def _scheme_losses(scheme: str) -> Callable[[Tensor], Tensor]:
    """Per-sample losses ``[n, K]`` of the logits ``[n, C]``."""
    if scheme == "entropy":

        def entropy(z: Tensor) -> Tensor:
            logp = z.log_softmax(dim=-1)
            return -(logp.exp() * logp).sum(dim=-1, keepdim=True)  # [n, 1]

        return entropy

    def all_ce(z: Tensor) -> Tensor:
        return -z.log_softmax(dim=-1)  # [n, C]: CE(x, c) for every c

    return all_ce


def _combine(sq: Tensor, probs: Tensor, *, norm: str, scheme: str) -> Tensor:
    """Scores ``[n]`` from ``sq [n, K, T]`` and ``probs [n, C]``."""
    sq = sq.clamp_min(0)
    v = sq.sqrt().sum(dim=2) if norm == "per_tensor" else sq.sum(dim=2).sqrt()  # [n, K]
    if scheme == "entropy":
        return v[:, 0]
    return (probs * v).sum(dim=1)


class _Unsupported(Exception):
    """A layer the hooks cannot follow (its output is not a tensor)."""


class _InPlace(Exception):
    """A recorded tensor was modified in place after it was recorded."""

    def __str__(self) -> str:
        return "a layer input is modified in place inside the layer"


# --------------------------------------------------------------------------- torch.func path


def _func_sq_norms(
    model: nn.Module, x: Tensor, names: list[str], losses: Callable[[Tensor], Tensor]
) -> Tensor:
    """``[n, K, len(names)]`` by ``vmap`` of per-sample gradients of the whole model."""
    params = dict(model.named_parameters())
    sel = {k: params[k].detach() for k in names}
    const = {k: v.detach() for k, v in params.items() if k not in sel}
    const.update({k: v.detach() for k, v in model.named_buffers()})

    def per_sample(pd: dict[str, Tensor], xi: Tensor) -> Tensor:
        z = functional_call(model, (pd, const), (xi.unsqueeze(0),))  # [1, C]
        return losses(z)[0]  # [K]

    with torch.no_grad():
        k = losses(model(x[:1])).shape[1]
    if k == 1:
        g = vmap(grad(lambda pd, xi: per_sample(pd, xi)[0]), in_dims=(None, 0))(sel, x)
        return torch.stack([g[n].flatten(1).square().sum(1) for n in names], dim=1)[:, None]
    jac = vmap(jacrev(per_sample), in_dims=(None, 0))(sel, x)  # name -> [n, K, *shape]
    return torch.stack([jac[n].flatten(2).square().sum(2) for n in names], dim=2)


# --------------------------------------------------------------------------- hooks path


@dataclass
class _Call:
    module: nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    output: Tensor
    versions: list[tuple[Tensor, int]]


@contextmanager
def _record(owners: list[nn.Module], clone: bool) -> Iterator[list[_Call]]:
    """Record every call of ``owners``: its inputs (detached; cloned before the call when
    ``clone``) and its output (as it is; the forward continues on a clone when ``clone``)."""
    calls: list[_Call] = []
    pending: dict[int, list[tuple[Any, list[tuple[Tensor, int]]]]] = {}

    def keep(a: Any) -> Any:
        if not isinstance(a, Tensor):
            return a
        return a.detach().clone() if clone else a.detach()

    def pre_hook(m: nn.Module, args: tuple, kwargs: dict) -> None:
        saved = pytree.tree_map(keep, (args, kwargs))
        leaves = [t for t in pytree.tree_leaves(saved) if isinstance(t, Tensor)]
        pending.setdefault(id(m), []).append((saved, [(t, t._version) for t in leaves]))

    def hook(m: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        (args_k, kwargs_k), versions = pending[id(m)].pop()
        if not isinstance(output, Tensor):
            raise _Unsupported(f"{type(m).__name__} returns {type(output).__name__}")
        calls.append(_Call(m, args_k, kwargs_k, output, [*versions, (output, output._version)]))
        return output.clone() if clone else None

    handles = []
    for m in owners:
        handles.append(m.register_forward_pre_hook(pre_hook, with_kwargs=True))
        handles.append(m.register_forward_hook(hook, with_kwargs=True))
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


def _hooks_sq_norms(
    model: nn.Module,
    x: Tensor,
    names: list[str],
    losses: Callable[[Tensor], Tensor],
    *,
    clone: bool,
) -> tuple[Tensor, Tensor]:
    n = x.shape[0]
    col = {id(p): t for t, (name, p) in enumerate(_named(model, names))}
    # owner module -> its selected direct parameters (local name, column)
    owned: dict[nn.Module, list[tuple[str, int]]] = {}
    for m in model.modules():
        mine = [(ln, col[id(p)]) for ln, p in m.named_parameters(recurse=False) if id(p) in col]
        if mine:
            owned[m] = mine
    with torch.enable_grad(), _record(list(owned), clone) as calls:
        z = model(x)  # [n, C]
    per_loss = losses(z)  # [n, K]
    if any(t._version != v for c in calls for t, v in c.versions):
        raise _InPlace
    probs = z.detach().softmax(dim=1)
    k_count = per_loss.shape[1]
    sq = z.new_zeros(n, k_count, len(names))  # [n, K, T]

    contributions: dict[int, int] = {}
    for c in calls:
        for _, t in owned[c.module]:
            contributions[t] = contributions.get(t, 0) + 1
    called = {c.module for c in calls}
    functional = [(ln, t) for m, lst in owned.items() if m not in called for ln, t in lst]
    outputs = [c.output for c in calls]
    uncovered: list[int] = []
    if functional:  # parameters whose module was never called: used elsewhere, or unused
        named = _named(model, names)
        ps = [named[t][1] for _, t in functional]
        g = torch.autograd.grad(per_loss.sum(), ps, retain_graph=True, allow_unused=True)
        uncovered = [t for (_, t), gi in zip(functional, g, strict=True) if gi is not None]

    for k in range(k_count):
        grads = (
            torch.autograd.grad(
                per_loss[:, k].sum(), outputs, retain_graph=k + 1 < k_count, allow_unused=True
            )
            if outputs
            else []
        )
        dense: dict[int, Tensor] = {}  # column -> summed per-sample gradient [n, numel]
        for c, g in zip(calls, grads, strict=True):
            if g is None:
                continue
            wanted = {ln: t for ln, t in owned[c.module]}
            sq_ok = {ln: contributions[t] == 1 for ln, t in wanted.items()}
            for ln, val in _layer(c, g.detach(), sq_ok).items():
                t = wanted[ln]
                if sq_ok[ln]:
                    sq[:, k, t] += val
                else:
                    dense[t] = dense[t] + val if t in dense else val
        for t, val in dense.items():
            sq[:, k, t] = val.square().sum(dim=1)
    if uncovered:
        sub = [names[t] for t in uncovered]
        sq[:, :, uncovered] = _func_sq_norms(model, x, sub, losses)
    return sq.detach(), probs


def _named(model: nn.Module, names: list[str]) -> list[tuple[str, nn.Parameter]]:
    params = dict(model.named_parameters())
    return [(n, params[n]) for n in names]


def _layer(c: _Call, g: Tensor, sq_ok: dict[str, bool]) -> dict[str, Tensor]:
    """Per-sample ``[n]`` squared norms (where ``sq_ok``) or gradients ``[n, numel]``."""
    m = c.module
    if type(m) is nn.Linear:
        return _linear(m, c.args[0], g, sq_ok)
    if type(m) is nn.Conv2d and m.padding_mode == "zeros" and not isinstance(m.padding, str):
        return _conv2d(m, c.args[0], g, sq_ok)
    if type(m) in _BATCHNORMS:
        return _batchnorm(m, c.args[0], g, sq_ok)
    return _generic(c, g, sq_ok)


def _sq_or_flat(grads: Tensor, sq: bool) -> Tensor:
    flat = grads.flatten(1)  # [n, numel]
    return flat.square().sum(dim=1) if sq else flat


def _linear(m: nn.Linear, a: Tensor, g: Tensor, sq_ok: dict[str, bool]) -> dict[str, Tensor]:
    n = a.shape[0]
    a3 = a.reshape(n, -1, a.shape[-1])  # [n, S, I] (S = 1 for plain batches)
    g3 = g.reshape(n, -1, g.shape[-1])  # [n, S, O]
    out = {}
    if "weight" in sq_ok:
        if a3.shape[1] == 1 and sq_ok["weight"]:
            out["weight"] = g3[:, 0].square().sum(1) * a3[:, 0].square().sum(1)
        else:
            out["weight"] = _sq_or_flat(torch.bmm(g3.transpose(1, 2), a3), sq_ok["weight"])
    if "bias" in sq_ok:
        out["bias"] = _sq_or_flat(g3.sum(dim=1), sq_ok["bias"])
    return out


def _conv2d(m: nn.Conv2d, xin: Tensor, g: Tensor, sq_ok: dict[str, bool]) -> dict[str, Tensor]:
    n, o = g.shape[0], g.shape[1]
    g3 = g.reshape(n, o, -1)  # [n, O, P]
    out = {}
    if "weight" in sq_ok:
        groups, p = m.groups, g3.shape[2]
        kh, kw = m.kernel_size
        j = xin.shape[1] // groups * kh * kw
        if sq_ok["weight"] and groups == 1 and p * (o + j) < o * j:
            # few positions (deep layers): ‖Σ_p g_p u_pᵀ‖² = Σ_pq (gᵀg)_pq (uᵀu)_pq
            u = F.unfold(xin, m.kernel_size, m.dilation, m.padding, m.stride)  # [n, J, P]
            gg = torch.bmm(g3.transpose(1, 2), g3)  # [n, P, P]
            uu = torch.bmm(u.transpose(1, 2), u)  # [n, P, P]
            out["weight"] = (gg * uu).sum(dim=(1, 2))
        else:
            out["weight"] = _conv2d_weight(m, xin, g, sq_ok["weight"])
    if "bias" in sq_ok:
        out["bias"] = _sq_or_flat(g3.sum(dim=2), sq_ok["bias"])
    return out


def _conv2d_weight(m: nn.Conv2d, xin: Tensor, g: Tensor, sq: bool) -> Tensor:
    """Per-sample weight gradient of a convolution, one kernel offset at a time.

    For offset (i, j) the gradient slice ``[n, O, I/G]`` is ``g [n, O, P] · x_ijᵀ`` with
    ``x_ij [n, I, P]`` the padded input seen from that offset (cheaper on CPU than
    ``F.unfold``). With stride 1, ``x_ij`` is a contiguous window of the flattened padded
    input once ``g`` is zero-padded to the padded width, so no copy is made per offset.
    Returns squared norms ``[n]`` when ``sq``, else the gradients ``[n, O·(I/G)·kh·kw]`` in
    the weight's layout.
    """
    n, o, ho, wo = g.shape
    groups = m.groups
    ph, pw = m.padding  # type: ignore[misc]
    sh, sw = m.stride
    dh, dw = m.dilation
    kh, kw = m.kernel_size
    ig = xin.shape[1] // groups
    xp = F.pad(xin, (pw, pw, ph, ph)) if ph or pw else xin  # [n, I, Hp, Wp]
    hp, wp = xp.shape[2], xp.shape[3]
    if sh == sw == 1:
        # flat windows: position (h, w) of offset (i, j) is (i·dh + h)·Wp + j·dw + w
        span = ho * wp
        flat = F.pad(xp.reshape(n * groups, ig, hp * wp), (0, (kw - 1) * dw))  # [n·G, I/G, S]
        gb = F.pad(g, (0, wp - wo)).reshape(n * groups, o // groups, span)  # [n·G, O/G, Ho·Wp]

        def window(i: int, j: int) -> Tensor:
            start = i * dh * wp + j * dw
            return flat[:, :, start : start + span]  # [n·G, I/G, Ho·Wp]
    else:
        gb = g.reshape(n * groups, o // groups, ho * wo)  # [n·G, O/G, P]

        def window(i: int, j: int) -> Tensor:
            xs = xp[:, :, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw :: sw][..., :wo]
            return xs.reshape(n * groups, ig, ho * wo)  # [n·G, I/G, P]

    parts = []
    total = g.new_zeros(n)
    for i in range(kh):
        for j in range(kw):
            part = torch.bmm(gb, window(i, j).transpose(1, 2))  # [n·G, O/G, I/G]
            if sq:
                total += part.reshape(n, -1).square().sum(dim=1)
            else:
                parts.append(part.reshape(n, o, ig))
    if sq:
        return total
    return torch.stack(parts, dim=3).reshape(n, -1)  # [n, O·(I/G)·kh·kw]


def _batchnorm(m: nn.Module, xin: Tensor, g: Tensor, sq_ok: dict[str, bool]) -> dict[str, Tensor]:
    shape = (1, -1) + (1,) * (xin.dim() - 2)
    dims = tuple(range(2, xin.dim()))
    out = {}
    if "weight" in sq_ok:
        xhat = (xin - m.running_mean.view(shape)) * torch.rsqrt(m.running_var.view(shape) + m.eps)
        gw = (g * xhat).sum(dim=dims) if dims else g * xhat  # [n, Ch]
        out["weight"] = _sq_or_flat(gw, sq_ok["weight"])
    if "bias" in sq_ok:
        gb = g.sum(dim=dims) if dims else g  # [n, Ch]
        out["bias"] = _sq_or_flat(gb, sq_ok["bias"])
    return out


def _generic(c: _Call, g: Tensor, sq_ok: dict[str, bool]) -> dict[str, Tensor]:
    """Exact per-sample VJP of one call of any module w.r.t. its own (selected) parameters."""
    m, n = c.module, g.shape[0]
    params = {ln: p.detach() for ln, p in m.named_parameters(recurse=False) if ln in sq_ok}
    tree = (c.args, c.kwargs)
    in_dims = pytree.tree_map(
        lambda a: 0 if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == n else None, tree
    )

    def vjp_one(pd: dict[str, Tensor], tree_i: Any, gi: Tensor) -> dict[str, Tensor]:
        def inner(pd2: dict[str, Tensor]) -> Tensor:
            # fresh copies: the module may modify its inputs in place, and the recorded
            # inputs serve every loss of the scheme
            args_i, kwargs_i = _unsqueeze_batched(tree_i, in_dims)
            return (functional_call(m, pd2, args_i, kwargs_i) * gi.unsqueeze(0)).sum()

        return grad(inner)(pd)

    # the recording hooks are already removed here: the forward pass has finished
    per = vmap(vjp_one, in_dims=(None, in_dims, 0))(params, tree, g)  # ln -> [n, *shape]
    return {ln: _sq_or_flat(v, sq_ok[ln]) for ln, v in per.items()}


def _unsqueeze_batched(tree_i: Any, in_dims: Any) -> Any:
    """Copies of the batched leaves of one sample's ``(args, kwargs)``, with a batch axis of 1."""
    leaves, spec = pytree.tree_flatten(tree_i)
    dims = pytree.tree_leaves(in_dims, is_leaf=lambda d: d is None)
    out = [a.unsqueeze(0).clone() if d == 0 else a for a, d in zip(leaves, dims, strict=True)]
    return pytree.tree_unflatten(out, spec)


# --------------------------------------------------------------------------- strategy


@register
@dataclass(frozen=True)
class LPLGradStrategy(LossPredictionStrategy):
    """LPLgrad: highest entropy-gradient norm on a random unlabeled subset (spec §5).

    Trains Yoo & Kweon's loss-prediction module with the classifier (options ``weight``,
    ``margin``, ``detach_epoch``, ``module_width`` as for ``lpl``); its prediction is not
    used to select. Query options: ``subset`` (10 000 random unlabeled candidates; None =
    all), ``scheme`` (``entropy`` | ``expected``), ``norm`` (``per_tensor`` = the
    reference's sum of per-tensor norms | ``global``), ``parameters`` (``all`` = every
    classifier parameter, as the reference; ``backbone`` = all but the final linear layer),
    ``grad_batch_size`` (images per vectorised chunk), ``method`` (``auto`` | ``hooks`` |
    ``func``).

    The reference recipe is a training configuration, not a strategy option: SGD lr 0.1,
    momentum 0.9, weight decay 5e-4, batch 128, exactly 200 epochs with the lr ×0.1 at epoch
    160 and the module detached after epoch 120, the model *not* re-initialised between
    cycles (``TrainConfig(optimizer="sgd", lr=0.1, weight_decay=5e-4, batch_size=128,
    stop="epochs", epochs=200, milestones=(160,), reinit=False)``).
    """

    name = "lplgrad"

    subset: int | None = 10_000
    scheme: str = "entropy"
    norm: str = "per_tensor"
    parameters: str = "all"
    grad_batch_size: int = 64
    method: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_subset(self.subset)
        check_choice("scheme", self.scheme, SCHEMES)
        check_choice("norm", self.norm, NORMS)
        check_choice("parameter set", self.parameters, PARAMETER_SETS)
        check_choice("gradient method", self.method, METHODS)
        check_positive("grad_batch_size", self.grad_batch_size)

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        candidates = draw_subset(ctx, self.subset, budget)  # [M]
        include = None
        if self.parameters == "backbone":
            head = {f"classifier.{n}" for n, _ in ctx.model.classifier.named_parameters()}
            include = lambda name: name not in head  # noqa: E731
        scores = torch.cat(
            [
                entropy_gradnorm_scores(
                    ctx.model,
                    x,
                    norm=self.norm,
                    scheme=self.scheme,
                    include=include,
                    batch_size=self.grad_batch_size,
                    method=self.method,
                ).cpu()
                for _, x in ctx.batches(candidates)
            ]
        )  # [M]
        pick = top_k(scores, budget)
        return Selection(candidates[pick], scores[pick], {"candidates": len(candidates)})
