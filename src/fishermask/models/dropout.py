"""Dropout that draws its masks from an explicit generator, and MC-dropout at query time.

:class:`SeededDropout` is active while the model trains and, in eval mode, only inside
:func:`mc_dropout` (Monte-Carlo dropout, Gal & Ghahramani 2016): BatchNorm keeps its
running statistics while the dropout masks vary between the T stochastic passes. Masks
are drawn on the CPU from the generator that :func:`dropout_generator` or
:func:`mc_dropout` installs (the round's training generator, see
:func:`set_dropout_generator`, or the query generator), so a run is
deterministic under its seed and a resumed trial draws the masks an uninterrupted one
draws. Without an installed generator the modules fall back to torch's global one.

A model built with dropout 0 holds no such module at all, so its parameters, random
draws and results are exactly those of a model without the option.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from fishermask.errors import ConfigError


class SeededDropout(nn.Module):
    """Element-wise dropout with rate ``p``; masks from ``self.generator`` when set."""

    def __init__(self, p: float) -> None:
        super().__init__()
        check_rate("dropout", p)
        self.p = float(p)
        self.generator: torch.Generator | None = None
        self.mc = False  # active in eval mode too (MC-dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not (self.training or self.mc):
            return x
        if self.generator is None:
            return F.dropout(x, self.p, training=True)
        keep = torch.rand(x.shape, generator=self.generator) >= self.p  # CPU, [x.shape]
        return x * keep.to(device=x.device, dtype=x.dtype) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def check_rate(name: str, p: float) -> None:
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p < 1.0:
        raise ConfigError(f"`{name}`={p!r}, must be a rate in [0, 1) (0 = no dropout).")


def seeded_dropout(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose ``nn.Dropout`` layers are :class:`SeededDropout` of the same rate.

    The same dropout while training; at query time (``bald``, ``batchbald``) its masks come
    from the query's seeded generator. The weights are copied; ``module`` is unchanged. Other
    dropout kinds (``Dropout2d``, ``AlphaDropout``, ...) have other semantics and are refused.
    """
    import copy

    other = [
        type(m).__name__
        for m in module.modules()
        if isinstance(m, nn.modules.dropout._DropoutNd) and type(m) is not nn.Dropout
    ]
    if other:
        raise ConfigError(
            f"seeded_dropout replaces nn.Dropout only; this model also has {', '.join(other)}, "
            "whose masks SeededDropout does not reproduce."
        )
    out = copy.deepcopy(module)

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, SeededDropout(child.p))
            else:
                swap(child)

    if type(out) is nn.Dropout:
        return SeededDropout(out.p)
    swap(out)
    return out


def dropout_modules(model: nn.Module) -> list[SeededDropout]:
    return [m for m in model.modules() if isinstance(m, SeededDropout) and m.p > 0]


def has_dropout(model: nn.Module) -> bool:
    """Whether ``model`` holds any dropout with a rate > 0."""
    return bool(dropout_modules(model))


def set_dropout_generator(model: nn.Module, generator: torch.Generator | None) -> None:
    """Draw ``model``'s dropout masks from ``generator`` from now on (``None``: torch's global)."""
    for m in dropout_modules(model):
        m.generator = generator


@contextmanager
def dropout_generator(
    model: nn.Module, generator: torch.Generator, *, mc: bool = False
) -> Iterator[int]:
    """Draw ``model``'s dropout masks from ``generator`` (and, with ``mc``, in eval mode too).

    Yields the number of dropout modules; restores their previous state on exit.
    """
    mods = dropout_modules(model)
    saved = [(m.generator, m.mc) for m in mods]
    for m in mods:
        m.generator, m.mc = generator, mc
    try:
        yield len(mods)
    finally:
        for m, (g, flag) in zip(mods, saved, strict=True):
            m.generator, m.mc = g, flag


@contextmanager
def mc_dropout(model: nn.Module, generator: torch.Generator) -> Iterator[int]:
    """Dropout active in eval mode, masks from ``generator``: the T passes of MC-dropout."""
    with dropout_generator(model, generator, mc=True) as n:
        yield n
