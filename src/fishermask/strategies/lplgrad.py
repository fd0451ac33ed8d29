"""LPLgrad: loss-prediction training, entropy-gradient-norm queries (docs/methods.md §5).

Index convention: M candidates drawn from the U unlabeled pool items.

**Training phase.** The classifier is trained jointly with a loss-prediction module
(Yoo & Kweon 2019, :mod:`fishermask.strategies._lossnet`). Its prediction is *not* used to
select; it shapes the features.

**Query phase.** On a random subset of the unlabeled pool (reference: 10 000), each image
gets the score of :func:`fishermask.fisher.entropy_gradnorm_scores` (the gradient norm of
the entropy of its prediction w.r.t. the model's parameters, vectorised by the per-sample
engine of :mod:`fishermask.fisher`); the highest are labeled. This follows the GradNorm
query of Wang et al. ("Boosting active learning via improving test performance", AAAI
2022), which LPLgrad's reference code reuses one image at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from fishermask.errors import check_choice, check_positive
from fishermask.fisher import (
    METHODS,
    NORMS,
    SCHEMES,
    Method,
    Norm,
    Scheme,
    entropy_gradnorm_scores,
)
from fishermask.strategies._lossnet import LossPredictionStrategy, check_subset, draw_subset
from fishermask.strategies.base import QueryContext, Selection, top_k
from fishermask.strategies.registry import register

ParameterSet = Literal["all", "backbone"]
PARAMETER_SETS: tuple[str, ...] = get_args(ParameterSet)


@register
@dataclass(frozen=True)
class LPLGradStrategy(LossPredictionStrategy):
    """LPLgrad: highest entropy-gradient norm on a random unlabeled subset (docs/methods.md §5.5).

    Trains Yoo & Kweon's loss-prediction module with the classifier (options ``weight``,
    ``margin``, ``detach_fraction``, ``ties``, ``module_width`` as for ``lpl``); its
    prediction is not used to select. Query options: ``subset`` (10 000 random unlabeled
    candidates; None = all), ``scheme`` (``entropy`` | ``expected``), ``norm`` (``per_tensor`` = the
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
    scheme: Scheme = "entropy"
    norm: Norm = "per_tensor"
    parameters: ParameterSet = "all"
    grad_batch_size: int = 64
    method: Method = "auto"

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
            # by identity, not by name: a plain module's head (fishermask.query, your own
            # model in the runner) is named after its own attribute (module.fc.weight)
            head = {id(p) for p in ctx.model.classifier.parameters()}
            names = {n for n, p in ctx.model.named_parameters() if id(p) in head}
            include = lambda name: name not in names  # noqa: E731
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
