"""Exact and fast per-sample gradients and Fisher information (docs/methods.md §2-§3, §5.5).

Pure tensor functions: one per-sample gradient engine (a cotangent on the logits and a
reduction, :func:`per_sample_grads`) and its callers — the diagonal Fisher of every
parameter, per-sample gradients on masked weights, gradient-norm scores — parameter masks,
BAIT's closed-form embeddings and the greedy A-optimal selection they feed.
"""

from fishermask.fisher._engine import (
    METHODS,
    SCALES,
    Method,
    Scale,
    log_prob_cotangents,
    loss_cotangents,
    per_sample_grads,
)
from fishermask.fisher.bait import bait_embeddings, bait_factors, last_layer_grads
from fishermask.fisher.gradients import (
    NORMS,
    SCHEMES,
    Norm,
    Scheme,
    diag_fisher,
    entropy_gradnorm_scores,
    mask_indices,
    masked_grads,
)
from fishermask.fisher.masks import (
    MASK_MODES,
    MaskMode,
    MaskProfileRow,
    default_always,
    head_always,
    mask_profile,
    mask_size,
    random_mask,
    top_k_mask,
)
from fishermask.fisher.selection import greedy_select, mean_fisher
from fishermask.fisher.storage import disk_tensor, pool_tensor

__all__ = [
    "MASK_MODES",
    "METHODS",
    "NORMS",
    "SCALES",
    "SCHEMES",
    "MaskMode",
    "MaskProfileRow",
    "Method",
    "Norm",
    "Scale",
    "Scheme",
    "bait_embeddings",
    "bait_factors",
    "default_always",
    "diag_fisher",
    "disk_tensor",
    "entropy_gradnorm_scores",
    "greedy_select",
    "head_always",
    "last_layer_grads",
    "mask_indices",
    "mask_profile",
    "log_prob_cotangents",
    "loss_cotangents",
    "mask_size",
    "masked_grads",
    "mean_fisher",
    "per_sample_grads",
    "pool_tensor",
    "random_mask",
    "top_k_mask",
]
