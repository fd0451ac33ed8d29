"""The loss-prediction module of "Learning Loss for Active Learning" (Yoo & Kweon, CVPR 2019).

Index convention: B samples in a training batch (N in a query), S = 4 backbone stages,
Ch_s channels of stage s, W the module's hidden width (128 in the paper).

The module reads the four stage feature maps of any :class:`~fishermask.models.Classifier`
(``ModelOutput.features``), global-average-pools each, maps it with ``Linear(Ch_s, W)`` +
ReLU, concatenates the S results and maps them with ``Linear(S·W, 1)`` to one scalar, the
predicted loss. It is trained jointly with the classifier through
:meth:`LossPredictionModule.loss` (the trainer adds it to the mean cross-entropy):

    w · LossPredLoss(pred, true_loss.detach())

with the pairwise ranking hinge of :func:`loss_prediction_loss`. After a fraction
``detach_fraction`` of the round's epoch limit (reference: epoch 120 of 200, 0.6) the feature
maps are detached before they enter the module, so its loss no longer shapes the backbone.

Two ablations follow from the options: ``detach_fraction=0`` detaches from the first epoch
(the module learns to predict the loss but never shapes the features: the backbone trains
exactly as without the module, the "query only" variant); ``weight=0`` zeroes the module's
loss, so the module is never trained at all and its predictions are those of its random
initialisation (useless for ``lpl``'s query; for ``lplgrad`` it is the plain model).

Used by the ``lpl`` strategy (query the highest predicted loss) and by ``lplgrad`` (which
trains the module for its effect on the features but selects by entropy gradient norms;
docs/methods.md §5.5).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from fishermask.errors import ConfigError
from fishermask.models.base import Classifier, ModelOutput, eval_mode
from fishermask.strategies.base import QueryContext, Strategy
from fishermask.training.trainer import AuxiliaryModule

TIE_RULES = ("zero", "reference")


def loss_prediction_loss(
    pred: Tensor, target: Tensor, margin: float = 1.0, ties: str = "zero"
) -> Tensor:
    """Pairwise ranking hinge of Yoo & Kweon (2019, eq. 2), batch-flip pairing.

    Sample ``i`` is paired with sample ``B-1-i`` for ``i < B//2`` (the reference flips the
    batch). For each pair, with ``s = sign(l_i - l_j)``::

        max(0, -s · (p_i - p_j) + margin)

    and the result is the mean over the ``B//2`` pairs.

    Odd batches: the middle sample (position ``B//2``) has no partner and is left out.
    Ties (``l_i == l_j``, e.g. two cross-entropies that are both exactly 0 in float32) carry
    no ordering information: with ``ties="zero"`` (default) ``sign(0) = 0`` and the pair
    contributes **0** (no gradient), while still counting in the mean's denominator. The
    reference code maps a tie to ``s = -1`` (it pushes ``p_j`` above ``p_i`` for no reason):
    ``ties="reference"``. The two rules differ only on exact ties. With fewer than two samples
    the loss is 0.

    Args:
        pred: predicted losses ``[B]``.
        target: true per-sample losses ``[B]`` (detached here).
        margin: the hinge margin ξ (1 in the paper).
        ties: ``"zero"`` or ``"reference"``, the rule for exact ties (above).

    Returns:
        A scalar tensor (differentiable w.r.t. ``pred``).
    """
    pred = pred.reshape(-1)
    target = target.detach().reshape(-1)
    half = pred.shape[0] // 2
    if half == 0:
        return pred.sum() * 0.0
    dp = (pred - pred.flip(0))[:half]  # [B//2] p_i - p_{B-1-i}
    dl = (target - target.flip(0))[:half]  # [B//2] l_i - l_{B-1-i}
    if ties == "reference":
        sign = torch.where(dl > 0, 1.0, -1.0).to(dp.dtype)  # [B//2], -1 on ties
        return torch.clamp(margin - sign * dp, min=0.0).sum() / half
    sign = torch.sign(dl)  # [B//2], 0 on ties
    hinge = torch.clamp(margin - sign * dp, min=0.0)
    hinge = torch.where(sign == 0, torch.zeros_like(hinge), hinge)
    return hinge.sum() / half


class LossPredictionModule(AuxiliaryModule):
    """Yoo & Kweon's loss-prediction module for any four-stage :class:`Classifier`.

    Args:
        channels: ``Ch_s`` of each stage feature map (``model.feature_channels()``).
        width: hidden width W of each stage branch (128 in the paper).
        weight: w, the weight of the module's loss in the joint objective (1).
        margin: ξ, the hinge margin (1).
        detach_fraction: with an epoch limit L, epochs ``1 .. floor(detach_fraction · L)``
            (the trainer counts from 1) train the module and the backbone jointly; from the
            next epoch on, the features are detached (reference: 0.6, epoch 120 of 200).
        ties: the ranking loss's rule for exact ties (:func:`loss_prediction_loss`).
    """

    def __init__(
        self,
        channels: Sequence[int],
        width: int = 128,
        *,
        weight: float = 1.0,
        margin: float = 1.0,
        detach_fraction: float = 0.6,
        ties: str = "zero",
    ) -> None:
        super().__init__()
        if not channels:
            raise ConfigError(
                "The loss-prediction module needs the model's stage channels; "
                "model.feature_channels() returned none."
            )
        self.branches = nn.ModuleList(nn.Linear(int(c), width) for c in channels)
        self.head = nn.Linear(width * len(channels), 1)
        self.weight = float(weight)
        self.margin = float(margin)
        self.detach_fraction = float(detach_fraction)
        self.ties = ties

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Predicted loss ``[N]`` from the S stage maps ``[N, Ch_s, H_s, W_s]`` or ``[N, Ch_s]``."""
        if len(features) != len(self.branches):
            raise ValueError(f"Expected {len(self.branches)} feature maps, got {len(features)}.")
        parts = []
        for f, branch in zip(features, self.branches, strict=True):
            pooled = f.mean(dim=tuple(range(2, f.dim()))) if f.dim() > 2 else f  # [N, Ch_s]
            parts.append(torch.relu(branch(pooled)))  # [N, W]
        return self.head(torch.cat(parts, dim=1)).squeeze(1)  # [N]

    def detach_epoch(self, epoch_limit: int) -> int:
        """The last joint epoch under an epoch limit: ``floor(detach_fraction · epoch_limit)``."""
        return math.floor(self.detach_fraction * epoch_limit + 1e-9)

    def loss(
        self, out: ModelOutput, per_sample_loss: Tensor, epoch: int, epoch_limit: int
    ) -> Tensor:
        """``w · LossPredLoss(pred, per_sample_loss.detach())`` for one training batch."""
        if epoch == 1 and self.detach_epoch(epoch_limit) >= epoch_limit:
            warnings.warn(
                f"The loss-prediction module's features are never detached: detach_fraction="
                f"{self.detach_fraction} of {epoch_limit} epochs is the whole training, so its "
                "ranking loss shapes the backbone throughout (use detach_fraction < 1, e.g. "
                "the reference's 0.6).",
                stacklevel=2,
            )
        feats = out.features
        if epoch > self.detach_epoch(epoch_limit):
            feats = [f.detach() for f in feats]
        pred = self(feats)  # [B]
        return self.weight * loss_prediction_loss(pred, per_sample_loss, self.margin, self.ties)


@torch.no_grad()
def predicted_losses(ctx: QueryContext, indices: Tensor) -> Tensor:
    """The trained module's predicted loss ``[len(indices)]`` (CPU) for pool ``indices``."""
    aux = ctx.aux
    if not isinstance(aux, LossPredictionModule):
        raise ConfigError(
            "This strategy needs its trained loss-prediction module in `ctx.aux` (got "
            f"{type(aux).__name__}; fishermask.query(..., aux=module) puts it there); build it "
            "with strategy.make_auxiliary(model) and train it with the model, as the "
            "experiment runner does."
        )
    out = []
    with eval_mode(aux):
        for _, x in ctx.batches(indices):
            out.append(aux(ctx.model.forward_features(x).features).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


@dataclass(frozen=True)
class LossPredictionStrategy(Strategy):
    """Base of strategies that train a loss-prediction module jointly with the classifier.

    Options: ``weight`` (w), ``margin`` (ξ), ``detach_fraction`` (of the epoch limit),
    ``module_width`` (W), ``ties`` (``zero`` or ``reference``).
    """

    weight: float = 1.0
    margin: float = 1.0
    detach_fraction: float = 0.6
    module_width: int = 128
    ties: str = "zero"

    def __post_init__(self) -> None:
        if not self.weight >= 0:
            raise ConfigError(f"`weight`={self.weight!r}, must be >= 0.")
        if not self.margin >= 0:
            raise ConfigError(f"`margin`={self.margin!r}, must be >= 0.")
        if not 0.0 <= self.detach_fraction <= 1.0:
            raise ConfigError(
                f"`detach_fraction`={self.detach_fraction!r}, must be in [0, 1] (a fraction of "
                "the epoch limit; 0 detaches from the start, 1 never)."
            )
        value = self.module_width
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"`module_width`={value!r}, must be an integer >= 1.")
        if self.ties not in TIE_RULES:
            raise ConfigError(f"`ties`={self.ties!r}, must be one of {', '.join(TIE_RULES)}.")

    def check(self, model: Classifier) -> None:
        if len(model.feature_channels()) == 0:
            raise ConfigError(
                f"Strategy {self.name!r} trains a loss-prediction module on the model's stage "
                f"feature maps, but {type(model).__name__}.feature_channels() is empty; use a "
                "fishermask Classifier (resnet18, cnn, mlp)."
            )

    def make_auxiliary(self, model: Classifier) -> AuxiliaryModule:
        return LossPredictionModule(
            model.feature_channels(),
            self.module_width,
            weight=self.weight,
            margin=self.margin,
            detach_fraction=self.detach_fraction,
            ties=self.ties,
        )


def check_subset(subset: int | None) -> None:
    """Validate a ``subset`` option (None = the whole unlabeled pool)."""
    bad = isinstance(subset, bool) or not isinstance(subset, int) or subset < 1
    if subset is not None and bad:
        raise ConfigError(f"`subset`={subset!r}, must be None (whole pool) or an integer >= 1.")


def draw_subset(ctx: QueryContext, subset: int | None, budget: int) -> Tensor:
    """The candidates of one query: unlabeled pool indices, ascending.

    All ``U`` of them when ``subset`` is None or ``>= U``; otherwise ``max(subset, budget)``
    drawn uniformly without replacement with ``ctx.generator`` (a subset smaller than the
    budget is enlarged to the budget).
    """
    unlabeled = ctx.pool.unlabeled  # [U]
    if subset is None or max(subset, budget) >= len(unlabeled):
        return unlabeled
    pick = torch.randperm(len(unlabeled), generator=ctx.generator)[: max(subset, budget)]
    return unlabeled[pick.sort().values]
