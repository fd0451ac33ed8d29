"""Diagonal Fisher and masked per-sample gradients (spec §2.1 and §2.3).

Index convention: N samples, C classes, k masked weights (columns of the gradient matrix).
For one sample x, ``masked_grads`` returns ``V[x]`` of shape ``[C, k]``: row c is
``sqrt(p(c|x)) * d log p(c|x) / d theta_mask``, so that the sample's Fisher on the masked
weights is ``V[x]^T V[x]`` (the spec's ``V_x V_x^T`` with ``V_x = V[x]^T``, k x C).

Both functions use one forward and C output-only backward passes per chunk of samples and
assemble the per-sample entries in closed form (see :mod:`fishermask.fisher._engine`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fishermask.errors import ConfigError
from fishermask.fisher import _engine


def diag_fisher(model: nn.Module, inputs: Tensor, *, batch_size: int = 64) -> dict[str, Tensor]:
    """Diagonal of the Fisher information of every parameter (paper eq. 8, spec §2.1).

    ``F_j = (1/N) sum_i sum_c p(c|x_i) (d log p(c|x_i) / d theta_j)^2``, the exact expectation
    over the model's own predictive distribution (no label sampling).

    Args:
        model: maps ``[N, ...]`` to logits ``[N, C]``; must be in eval mode (BatchNorm uses its
            running statistics). Not modified.
        inputs: ``[N, ...]`` normalised inputs (moved chunk by chunk to the model's device and
            dtype).
        batch_size: samples per chunk (bounds memory).

    Returns:
        ``{name: Tensor}`` keyed and ordered like ``model.named_parameters()``, each shaped
        like its parameter, on the model's device and dtype.
    """
    names = [name for name, _ in model.named_parameters()]
    params = dict(model.named_parameters())
    acc = {
        name: torch.zeros_like(params[name], memory_format=torch.contiguous_format)
        for name in names
    }

    def on_class(sl: slice, c: int, sq_sums: dict[str, Tensor]) -> None:
        for name, g in sq_sums.items():  # g: sum_c sum_n (sqrt(p_c) d log p_c / d theta)^2
            acc[name] += g.view_as(acc[name])

    def on_fallback(sl: slice, grads: dict[str, Tensor]) -> None:
        for name, g in grads.items():  # g: [n, C, *shape]
            acc[name] += g.square().sum((0, 1))

    _engine.run(
        model,
        inputs,
        dict.fromkeys(names),
        scale="sqrt_prob",
        batch_size=batch_size,
        reduce=True,
        on_start=lambda num_classes: None,
        on_class=on_class,
        on_fallback=on_fallback,
    )
    return {name: acc[name].div_(inputs.shape[0]) for name in names}


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
    scale: str = "sqrt_prob",
    batch_size: int = 128,
) -> Tensor:
    """Per-sample, per-class gradients of ``log p(c|x)`` on the masked weights only.

    Only the masked entries are ever formed: per chunk one forward pass, C backward passes
    w.r.t. the outputs of the layers that own masked weights, and closed forms for Linear,
    Conv2d (any stride, padding, dilation, groups) and eval-mode BatchNorm weights and biases;
    any other parameter uses an exact ``torch.func`` fallback over that parameter alone.

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
    p0 = next(model.parameters())
    holder: list[Tensor] = []

    def on_start(num_classes: int) -> None:
        holder.append(p0.new_zeros(inputs.shape[0], num_classes, offset))  # [N, C, k]

    def on_class(sl: slice, c: int, grads: dict[str, Tensor]) -> None:
        for name, g in grads.items():  # g: [n, k_p]
            holder[0][sl, c, cols[name]] = g

    def on_fallback(sl: slice, grads: dict[str, Tensor]) -> None:
        for name, g in grads.items():  # g: [n, C, k_p]
            holder[0][sl, :, cols[name]] = g

    _engine.run(
        model,
        inputs,
        idx,
        scale=scale,
        batch_size=batch_size,
        on_start=on_start,
        on_class=on_class,
        on_fallback=on_fallback,
    )
    return holder[0]
