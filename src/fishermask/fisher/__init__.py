"""Exact and fast Fisher information for FisherMask and BAIT (spec §2, §3).

Pure tensor functions: the diagonal Fisher of every parameter, parameter masks,
per-sample gradients on the masked weights, BAIT's closed-form embeddings and the
greedy A-optimal selection they all feed.
"""

from fishermask.fisher.bait import bait_embeddings
from fishermask.fisher.gradients import diag_fisher, mask_indices, masked_grads
from fishermask.fisher.masks import (
    MASK_MODES,
    MaskProfileRow,
    default_always,
    mask_profile,
    mask_size,
    random_mask,
    top_k_mask,
)
from fishermask.fisher.selection import greedy_select, mean_fisher

__all__ = [
    "MASK_MODES",
    "MaskProfileRow",
    "bait_embeddings",
    "default_always",
    "diag_fisher",
    "greedy_select",
    "mask_indices",
    "mask_profile",
    "mask_size",
    "masked_grads",
    "mean_fisher",
    "random_mask",
    "top_k_mask",
]
