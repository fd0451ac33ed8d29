"""BALD (Houlsby et al. 2011; with MC-dropout, Gal et al. 2017): label the images whose
prediction the weights disagree on most.

Index convention: T MC-dropout samples, U unlabeled pool items, C classes.

The score is the mutual information between the label and the weights, estimated from T
stochastic forward passes with dropout active (docs/methods.md §9.2):

    I[y; w | x] = H[ mean_t p_t(y|x) ] - mean_t H[ p_t(y|x) ]

The model needs dropout (``--model cnn:dropout=0.3``); without it every pass is the same
and every score is 0, which :meth:`BALDStrategy.check` refuses up front.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fishermask.errors import ConfigError, check_positive
from fishermask.models.dropout import has_dropout
from fishermask.models.module import ModuleClassifier
from fishermask.strategies.base import QueryContext, ScoreStrategy
from fishermask.strategies.registry import register


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) over the last axis, 0 log 0 = 0."""
    return -(p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))).sum(dim=-1)


def bald_scores(mc_probs: torch.Tensor) -> torch.Tensor:
    """Mutual information ``[U]`` from MC probabilities ``[T, U, C]``, in float64 (nats).

    ``H[mean_t p_t] - mean_t H[p_t]``, clamped at 0 (it is >= 0 in exact arithmetic).
    """
    p = mc_probs.to(torch.float64)
    return (_entropy(p.mean(dim=0)) - _entropy(p).mean(dim=0)).clamp_min(0.0)


def check_mc_model(name: str, model: torch.nn.Module) -> None:
    if has_dropout(model):
        return
    if any(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules()):
        raise ConfigError(
            f"Strategy {name!r} samples only fishermask's SeededDropout layers (their masks "
            "follow the query's seed), and this model's dropout is torch's nn.Dropout; pass "
            "fishermask.models.dropout.seeded_dropout(model) (a copy with SeededDropout "
            "layers: the same dropout in training)."
        )
    cli = "on the command line, --model cnn:dropout=0.3 (model: {dropout: 0.3} in a config file)"
    python = (
        "in Python, a model with nn.Dropout layers (trained with them) passed as "
        "fishermask.models.dropout.seeded_dropout(model), or built with SeededDropout layers"
    )
    # a module of the user's own (fishermask.query) reads the Python way first
    ways = (python, cli) if isinstance(model, ModuleClassifier) else (cli, python)
    raise ConfigError(
        f"Strategy {name!r} needs a model with dropout for its MC samples, and this one has "
        f"none; {ways[0]}; {ways[1]}."
    )


@register
@dataclass(frozen=True)
class BALDStrategy(ScoreStrategy):
    """BALD: highest mutual information between label and weights over T MC-dropout passes.

    Options: ``mc_samples`` (T = 20 stochastic passes; masks from the query generator),
    and every score strategy's ``stochastic`` / ``beta`` (``stochastic=power`` is PowerBALD).
    """

    name = "bald"

    mc_samples: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("mc_samples", self.mc_samples)

    def check(self, model: torch.nn.Module) -> None:
        check_mc_model(self.name, model)

    def scores(self, ctx: QueryContext, unlabeled: torch.Tensor) -> torch.Tensor:
        return bald_scores(ctx.mc_probs(unlabeled, self.mc_samples))
