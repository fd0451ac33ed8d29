"""FisherMask (docs/methods.md §2): Fisher information on a sparse mask of weights.

Per query, in eval mode: the diagonal Fisher of every parameter that trains on
``fisher_samples`` random pool images; a mask of the k largest entries (k = sparsity x
trainable parameter count; standard mode always keeps the final layer's weight); per-sample,
per-class gradients ``V_x [C, k]`` of ``log p(c|x)`` on the masked weights for every pool
image; then the BAIT-style greedy
A-optimal batch selection of :func:`fishermask.fisher.greedy_select`.

Index convention: N pool items, U unlabeled, nL labeled, C classes, k masked weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from fishermask.errors import ConfigError, check_choice
from fishermask.fisher import (
    MASK_MODES,
    SCALES,
    MaskMode,
    Scale,
    diag_fisher,
    greedy_select,
    head_always,
    mask_profile,
    mask_size,
    masked_grads,
    mean_fisher,
    pool_tensor,
    top_k_mask,
)
from fishermask.strategies.base import QueryContext, Selection, Strategy
from fishermask.strategies.registry import register


def pool_gradients(
    ctx: QueryContext,
    indices: torch.Tensor,
    mask: dict[str, torch.Tensor],
    scale: str,
    batch_size: int,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``V [len(indices), C, k]`` for pool items, fed to the model in chunks of inputs.

    Each chunk's gradients are written into one tensor as they come (``out`` if given, else
    :func:`fishermask.fisher.pool_tensor`: in memory, or a disk-backed memory map when V is
    larger than half the available memory), so the peak is V plus one chunk, never two V.
    """
    start = 0
    for _, x in ctx.batches(indices):
        g = masked_grads(ctx.model, x, mask, scale=scale, batch_size=batch_size)  # [b, C, k]
        if out is None:  # in memory, or on disk if larger than half the available memory
            out = pool_tensor((len(indices), *g.shape[1:]), g.dtype, g.device)
        out[start : start + len(g)] = g
        start += len(g)
    if out is None:
        p = next(ctx.model.parameters())
        out = torch.empty(0, ctx.num_classes, mask_size(mask), device=p.device, dtype=p.dtype)
    return out


def _trainable(model: torch.nn.Module) -> dict[str, torch.Size]:
    """Shapes of the parameters that train (``requires_grad``), in ``named_parameters`` order:
    the ones the mask is drawn from (a frozen backbone's weights never change with labels)."""
    return {n: p.shape for n, p in model.named_parameters() if p.requires_grad}


@register
@dataclass(frozen=True)
class FisherMaskStrategy(Strategy):
    """FisherMask: greedy A-optimal batch on the Fisher of a sparse mask of weights.

    Options:
        sparsity: fraction of the parameters in the mask (paper's best: 0.002): of those
            that train (``requires_grad``; a frozen layer's weights are left out). In
            standard mode k is at least the final layer's weights + 5 %, so the default
            also runs on models whose final layer is more than 0.2 % of the weights
            (cnn, mlp, narrow ResNets); larger models get exactly ``sparsity`` x P.
        k: mask size; overrides ``sparsity`` (and the minimum) when given.
        mask_mode: ``standard`` (final-layer weight always kept, rest global top values) or
            ``dispersed`` (the same fraction from every parameter tensor).
        fisher_samples: random pool images for the diagonal Fisher (reference: 1024).
        lam: ridge λ of ``M = λI + F_C nL/(nL+B)``.
        backward_steps: oversampling rounds of the forward-backward greedy (FisherMask's
            experiments: 0; BAIT: 1).
        scale: ``sqrt_prob`` (the paper's V_x) or ``none`` (the authors' code).
        batch_size: images per gradient chunk (bounds memory).
    """

    name = "fishermask"
    sparsity: float = 0.002
    k: int | None = None
    mask_mode: MaskMode = "standard"
    fisher_samples: int = 1024
    lam: float = 1.0
    backward_steps: int = 0
    scale: Scale = "sqrt_prob"
    batch_size: int = 128

    def __post_init__(self) -> None:
        check_choice("mask mode", self.mask_mode, MASK_MODES)
        check_choice("gradient scale", self.scale, SCALES)
        if self.k is None and not 0.0 < self.sparsity <= 1.0:
            raise ConfigError(f"`sparsity`={self.sparsity}, must be in (0, 1].")
        if self.fisher_samples < 1 or self.batch_size < 1 or self.backward_steps < 0:
            raise ConfigError(
                "fisher_samples and batch_size must be >= 1 and backward_steps >= 0; got "
                f"{self.fisher_samples}, {self.batch_size}, {self.backward_steps}."
            )
        if not self.lam > 0:
            raise ConfigError(f"`lam`={self.lam}, must be > 0.")

    def mask_size(self, model: torch.nn.Module) -> int:
        """k: the given ``k``, else ``sparsity`` x parameters, in standard mode at least the
        final layer plus 5 % (so the default works on every model; docs/decisions.md)."""
        shapes = _trainable(model)
        total = sum(s.numel() for s in shapes.values())
        if self.k is not None:
            return self.k
        k = max(1, round(self.sparsity * total))
        if self.mask_mode == "standard":
            final = sum(shapes[n].numel() for n in head_always(model) if n in shapes)
            k = min(total, max(k, final + math.ceil(final / 20)))
        return k

    def check(self, model: torch.nn.Module) -> None:
        shapes = _trainable(model)
        total = sum(s.numel() for s in shapes.values())
        if not shapes:
            raise ConfigError(
                "FisherMask masks the weights that train, and no parameter of the model trains "
                "(requires_grad is False everywhere); unfreeze some (the head, at least)."
            )
        k = self.mask_size(model)
        if k > total:
            which = "" if total == sum(p.numel() for p in model.parameters()) else " trainable"
            raise ConfigError(
                f"FisherMask's k={k} exceeds the model's {total}{which} parameters; use k <= "
                f"{total}, or leave k unset (sparsity decides)."
            )
        if self.mask_mode == "standard":
            always = [n for n in head_always(model) if n in shapes]
            kept = sum(shapes[n].numel() for n in always)
            if k < kept:  # only a given k can be this small
                raise ConfigError(
                    f"FisherMask's mask (k={k}) cannot hold the {kept} final-layer weights "
                    f"that standard mode always keeps; use k > {kept}, leave k unset (sparsity "
                    "decides, at least the final layer + 5 %), or mask_mode=dispersed."
                )

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        times: dict[str, float] = {}
        t = time.perf_counter()
        n = ctx.pool.size
        sample = torch.randperm(n, generator=ctx.generator)[: self.fisher_samples]
        trainable = _trainable(ctx.model)  # frozen weights: no label changes them
        diag = diag_fisher(
            ctx.model, ctx.inputs(sample), batch_size=self.batch_size, params=trainable
        )  # only the weights that train: a frozen backbone runs forward only
        times["diag_fisher"] = time.perf_counter() - t

        t = time.perf_counter()
        always = None
        if self.mask_mode == "standard":
            always = [n for n in head_always(ctx.model) if n in trainable]
        mask = top_k_mask(diag, self.mask_size(ctx.model), mode=self.mask_mode, always=always)
        times["mask"] = time.perf_counter() - t

        t = time.perf_counter()
        unlabeled, labeled = ctx.pool.unlabeled, ctx.pool.labeled
        v_u = pool_gradients(ctx, unlabeled, mask, self.scale, self.batch_size)  # [U, C, k]
        v_l = pool_gradients(ctx, labeled, mask, self.scale, self.batch_size)  # [nL, C, k]
        times["gradients"] = time.perf_counter() - t

        t = time.perf_counter()
        fs = mean_fisher(v_u, v_l, dtype=torch.float64)  # F_S, [k, k]
        times["pool_fisher"] = time.perf_counter() - t

        t = time.perf_counter()
        pick = greedy_select(
            v_u, v_l, budget, lam=self.lam, backward_steps=self.backward_steps, pool_fisher=fs
        ).cpu()
        times["selection"] = time.perf_counter() - t
        profile = [{"name": r.name, "kept": r.kept, "size": r.size} for r in mask_profile(mask)]
        info = {
            "mask_k": sum(r["kept"] for r in profile),
            "mask_profile": profile,
            "stage_seconds": {k: round(v, 4) for k, v in times.items()},
        }
        return Selection(unlabeled[pick], info=info)
