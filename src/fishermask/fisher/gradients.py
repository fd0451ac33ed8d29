"""Diagonal Fisher, masked per-sample gradients, gradient-norm scores (docs/methods.md §2, §5.5).

Index convention: N samples, C classes, k masked weights (columns of the gradient matrix),
T parameter tensors. For one sample x, ``masked_grads`` returns ``V[x]`` of shape ``[C, k]``:
row c is ``sqrt(p(c|x)) * d log p(c|x) / d theta_mask``, so that the sample's Fisher on the
masked weights is ``V[x]^T V[x]``.

All three are thin callers of one engine (:func:`fishermask.fisher._engine.per_sample_grads`):
a cotangent on the logits and a reduction; one forward and one output-only backward pass
per cotangent and chunk of samples, per-sample quantities in closed form per layer.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from fishermask.errors import ConfigError, check_choice, check_positive
from fishermask.fisher._engine import (
    Method,
    Scale,
    log_prob_cotangents,
    loss_cotangents,
    per_sample_grads,
)

Norm = Literal["per_tensor", "global"]
Scheme = Literal["entropy", "expected"]
NORMS: tuple[str, ...] = get_args(Norm)
SCHEMES: tuple[str, ...] = get_args(Scheme)


def _fisher_cotangents(scale: str) -> Callable[[Tensor], Tensor]:
    return lambda logits: log_prob_cotangents(torch.softmax(logits, dim=1), scale)


def diag_fisher(
    model: nn.Module,
    inputs: Tensor,
    *,
    batch_size: int = 64,
    params: Collection[str] | None = None,
) -> dict[str, Tensor]:
    """Diagonal of the Fisher information of every parameter (paper eq. 8, docs/methods.md §2.1).

    ``F_j = (1/N) sum_i sum_c p(c|x_i) (d log p(c|x_i) / d theta_j)^2``, the exact expectation
    over the model's own predictive distribution (no label sampling).

    Args:
        model: maps ``[N, ...]`` to logits ``[N, C]``; must be in eval mode (BatchNorm uses its
            running statistics). Not modified.
        inputs: ``[N, ...]`` normalised inputs (moved chunk by chunk to the model's device and
            dtype).
        batch_size: samples per chunk (bounds memory).
        params: names (as in ``model.named_parameters()``) of the parameters to compute;
            ``None``, every parameter. The others are never differentiated: a frozen
            backbone left out (``requires_grad=False``) runs forward only, as in training.
            Each entry equals the one computed with ``params=None``.

    Returns:
        ``{name: Tensor}`` keyed and ordered like ``model.named_parameters()`` (only ``params``
        when given), each shaped like its parameter, on the model's device and dtype.

    Raises:
        ConfigError: a name in ``params`` that is not a parameter, an empty ``params``, or
            one name as a string (a collection of its characters).
    """
    all_params = dict(model.named_parameters())
    if isinstance(params, str):  # a string is a collection of its characters
        raise ConfigError(
            f"`params`={params!r} is one string; pass a collection of names: params=[{params!r}]."
        )
    if params is not None:
        unknown = sorted(set(params) - set(all_params))
        if unknown:
            raise ConfigError(
                f"`params` names {unknown[:3]}{' ...' if len(unknown) > 3 else ''}, which are "
                "not parameters of the model; use names from model.named_parameters()."
            )
        if not params:
            raise ConfigError(
                "`params` is empty, so there is no Fisher to compute; pass at least one "
                "parameter name, or params=None for all of them."
            )
        keep = set(params)
        all_params = {n: p for n, p in all_params.items() if n in keep}
    acc = {
        name: torch.zeros_like(p, memory_format=torch.contiguous_format)
        for name, p in all_params.items()
    }
    chunks = per_sample_grads(
        model,
        inputs,
        dict.fromkeys(all_params),
        cotangents=_fisher_cotangents("sqrt_prob"),
        reduction="sq_sum",
        batch_size=batch_size,
    )
    for _, _, sq_sums in chunks:  # sum_c sum_n (sqrt(p_c) d log p_c / d theta)^2
        for name, g in sq_sums.items():
            acc[name] += g.view_as(acc[name])
    return {name: acc[name].div_(inputs.shape[0]) for name in all_params}


def mask_indices(model: nn.Module, mask: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Flat row-major indices of the masked entries of each parameter, in parameter order.

    Parameters absent from ``mask`` or with no ``True`` entry are left out.

    Raises:
        ConfigError: a mask name that is not a parameter, or a mask of the wrong shape.
    """
    params = dict(model.named_parameters())
    unknown = [name for name in mask if name not in params]
    if unknown:
        raise ConfigError(
            f"Mask names {unknown} are not parameters of the model; use names from "
            "model.named_parameters()."
        )
    out = {}
    for name, p in params.items():
        if name not in mask:
            continue
        m = mask[name]
        if tuple(m.shape) != tuple(p.shape):
            raise ConfigError(
                f"Mask for {name!r} has shape {tuple(m.shape)}, the parameter {tuple(p.shape)}; "
                "build the mask from this model's parameters."
            )
        idx = m.detach().reshape(-1).nonzero().squeeze(1).to(p.device)  # [k_p], ascending
        if idx.numel():
            out[name] = idx
    return out


def masked_grads(
    model: nn.Module,
    inputs: Tensor,
    mask: Mapping[str, Tensor],
    *,
    scale: Scale = "sqrt_prob",
    batch_size: int = 128,
) -> Tensor:
    """Per-sample, per-class gradients of ``log p(c|x)`` on the masked weights only.

    Only the masked entries are ever formed: per chunk one forward pass, C backward passes
    w.r.t. the outputs of the layers that own masked weights, and closed forms for Linear,
    Conv2d (any stride, padding, dilation, groups) and eval-mode BatchNorm weights and biases;
    other layers use exact ``torch.func`` vector-Jacobian products.

    Args:
        model: maps ``[N, ...]`` to logits ``[N, C]``; eval mode; not modified.
        inputs: ``[N, ...]`` normalised inputs.
        mask: ``{name: BoolTensor}`` (e.g. from :func:`top_k_mask`), k ``True`` entries in all.
        scale: ``"sqrt_prob"`` multiplies row c by ``sqrt(p(c|x))`` (the paper's V_x);
            ``"none"`` gives the plain gradients (the authors' code).
        batch_size: samples per chunk (bounds memory).

    Returns:
        ``[N, C, k]`` on the model's device and dtype; columns in ``named_parameters()`` order,
        row-major inside each parameter.
    """
    idx = mask_indices(model, mask)
    cols, offset = {}, 0
    for name, i in idx.items():
        cols[name] = slice(offset, offset + i.numel())
        offset += i.numel()
    out: Tensor | None = None
    chunks = per_sample_grads(
        model,
        inputs,
        idx,
        cotangents=_fisher_cotangents(scale),
        reduction="entries",
        batch_size=batch_size,
    )
    for sl, probs, grads in chunks:
        if out is None:
            out = probs.new_zeros(inputs.shape[0], probs.shape[1], offset)  # [N, C, k]
        for name, g in grads.items():  # g: [n, C, k_p]
            out[sl, :, cols[name]] = g
    assert out is not None  # per_sample_grads yields at least one chunk
    return out


def entropy_gradnorm_scores(
    model: nn.Module,
    inputs: Tensor,
    *,
    norm: Norm = "per_tensor",
    scheme: Scheme = "entropy",
    include: Callable[[str], bool] | None = None,
    batch_size: int = 64,
    method: Method = "auto",
) -> Tensor:
    """Per-image gradient-norm uncertainty (GradNorm / LPLgrad query score, docs/methods.md §5.5).

    For image x with logits z = f(x; θ) and p = softmax(z), and g_t the gradient w.r.t.
    parameter tensor t (those of ``model.named_parameters()`` that require grad and pass
    ``include``):

    - ``scheme="entropy"`` (LPLgrad): g_t = ∂H(p)/∂θ_t with H(p) = −Σ_c p_c log p_c, and
      the score is ``Σ_t ‖g_t‖`` (``norm="per_tensor"``, the reference) or
      ``sqrt(Σ_t ‖g_t‖²)`` (``norm="global"``).
    - ``scheme="expected"``: the expected gradient norm over the model's own predictive
      distribution, ``Σ_c p_c · ν(∂CE(x, c)/∂θ)`` with p_c constants and ν the chosen norm
      (the norm is taken *inside* the expectation, as in expected gradient length; computed
      as ``Σ_c ν(∂(p_c CE(x, c))/∂θ)``, a norm being homogeneous). Two other readings are
      degenerate and not offered: ``ν(Σ_c p_c ∂CE(x, c)/∂θ)`` with p_c constants is
      identically 0 (the score function has zero mean under p), and the reference code's
      ``∂(Σ_c p_c CE(x, c))/∂θ`` with p_c differentiated equals ∂H/∂θ exactly
      (``Σ_c p_c CE(x, c) = H(p)``), i.e. ``scheme="entropy"``.

    Args:
        model: maps ``[n, ...]`` to logits ``[n, C]``; every module in eval mode; not
            modified (no ``.grad`` is written).
        inputs: ``[N, ...]`` normalised inputs (moved chunk by chunk to the model's device
            and dtype).
        norm: ``"per_tensor"`` or ``"global"``.
        scheme: ``"entropy"`` or ``"expected"`` (costs C backward passes per chunk).
        include: keeps the parameters whose name (as in ``model.named_parameters()``) it
            accepts; ``None`` keeps all (the reference: every parameter of the classifier,
            its final linear layer included).
        batch_size: images per chunk (bounds memory).
        method: ``"hooks"`` (per-layer forms), ``"func"`` (``torch.func`` per-sample
            gradients of the whole model) or ``"auto"`` (hooks, or func where hooks cannot
            see a layer's output as a tensor).

    Returns:
        Scores ``[N]`` on the model's device, in the model's dtype.

    Raises:
        ConfigError: an unknown option, a module in training mode, or no parameter selected.
    """
    check_choice("norm", norm, NORMS)
    check_choice("scheme", scheme, SCHEMES)
    check_positive("batch_size", batch_size)
    if inputs.dim() >= 1 and inputs.shape[0] == 0:
        return next(model.parameters()).new_zeros(0)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    names = [n for n in names if include is None or include(n)]
    if not names:
        raise ConfigError(
            "No parameter of the model is selected for the gradient norm; "
            "loosen the parameter filter (e.g. parameters='all')."
        )
    chunks = per_sample_grads(
        model,
        inputs,
        dict.fromkeys(names),
        cotangents=loss_cotangents(_entropy if scheme == "entropy" else _weighted_ce),
        reduction="sq_norms",
        batch_size=batch_size,
        method=method,
    )
    out = []
    for _, _, sq_norms in chunks:
        sq = torch.stack([sq_norms[n] for n in names], dim=2).clamp_min(0)  # [n, K, T]
        v = sq.sqrt().sum(dim=2) if norm == "per_tensor" else sq.sum(dim=2).sqrt()  # [n, K]
        out.append(v.sum(dim=1))
    return torch.cat(out)


def _entropy(z: Tensor) -> Tensor:
    """``[n, 1]``: the entropy of the prediction, H(softmax(z))."""
    logp = z.log_softmax(dim=-1)
    return -(logp.exp() * logp).sum(dim=-1, keepdim=True)


def _weighted_ce(z: Tensor) -> Tensor:
    """``[n, C]``: ``p_c CE(x, c)`` for every class c, ``p_c`` a constant."""
    return -z.log_softmax(dim=-1) * z.detach().softmax(dim=-1)
