"""BAIT (Ash et al., NeurIPS 2021; docs/methods.md §3): greedy A-optimal last-layer design.

Same selection engine as FisherMask, with ``V_x`` built in closed form from the penultimate
embedding ``e(x)`` and probabilities ``p(x)``: column c is
``sqrt(p_c) · ((onehot_c − p) ⊗ e)`` — the gradient of ``log p(c|x)`` w.r.t. the final linear
layer's weight. No backward pass.

Index convention: U unlabeled, nL labeled, C classes, D embedding size, d = D·C.
"""

from __future__ import annotations

from dataclasses import dataclass

from fishermask.errors import ConfigError, check_choice, check_positive
from fishermask.fisher import (
    SCALES,
    Scale,
    bait_embeddings,
    bait_factors,
    greedy_select,
    last_layer_grads,
)
from fishermask.strategies.base import QueryContext, Selection, Strategy
from fishermask.strategies.registry import register


@register
@dataclass(frozen=True)
class BaitStrategy(Strategy):
    """BAIT: greedy forward-backward A-optimal batch on the last layer's Fisher.

    Options: ``lam`` (ridge λ; 0.01, the value reported for the BAIT reference's CIFAR runs,
    whose ``select`` defaults to 1; FisherMask keeps 1, see docs/decisions.md),
    ``backward_steps`` (1 = BAIT's 2x oversampling), ``scale`` (``sqrt_prob`` or ``none``).
    """

    name = "bait"
    lam: float = 0.01
    backward_steps: int = 1
    scale: Scale = "sqrt_prob"

    def __post_init__(self) -> None:
        check_choice("gradient scale", self.scale, SCALES)
        if not self.lam > 0:  # one message per option: the other one may be fine
            raise ConfigError(f"`lam`={self.lam!r}, must be > 0 (the ridge λ).")
        check_positive("backward_steps", self.backward_steps, allow_zero=True)

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        unlabeled, labeled = ctx.pool.unlabeled, ctx.pool.labeled
        p_u, e_u = ctx.head_predictions(unlabeled)  # [U, C], [U, D]
        p_l, e_l = ctx.head_predictions(labeled)  # [nL, C], [nL, D]
        # V of the candidates from its two factors, which also give faster block products
        factors = bait_factors(e_u, p_u, scale=self.scale)
        v_u = last_layer_grads(*factors)  # [U, C, D*C], = bait_embeddings(e_u, p_u)
        v_l = bait_embeddings(e_l, p_l, scale=self.scale)  # [nL, C, D*C]
        pick = greedy_select(
            v_u, v_l, budget, lam=self.lam, backward_steps=self.backward_steps, factors=factors
        ).cpu()
        return Selection(unlabeled[pick])
