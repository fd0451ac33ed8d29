"""BAIT's last-layer gradient embeddings in closed form (Ash et al. 2021; docs/methods.md §3).

Index convention: N samples, C classes, D embedding size (input of the final linear layer).
For logits ``z = W e + b`` with ``W`` of shape ``[C, D]``, ``d log p_c / d W = (onehot_c - p) e^T``,
so row c of ``V[x]`` is ``sqrt(p_c) * vec((onehot_c - p) e^T)`` flattened row-major
(output class major, then input feature): exactly :func:`masked_grads` with a mask that
keeps the whole final weight.
"""

from __future__ import annotations

from torch import Tensor

from fishermask.errors import ConfigError
from fishermask.fisher._engine import Scale, log_prob_cotangents


def last_layer_grads(cotangents: Tensor, embeddings: Tensor) -> Tensor:
    """Gradients w.r.t. the final linear layer's weight ``W [C, D]`` (logits ``z = W e + b``).

    ``d loss / d W = (d loss / d z) e^T``: from cotangents on the logits ``[N, ..., C]`` and
    embeddings ``[N, D]``, the gradients ``[N, ..., C*D]`` flattened row-major (class major,
    then input feature). BAIT's ``V_x`` and BADGE's gradient embeddings are both this.
    """
    # D named, not -1: with no samples (an empty labeled set) -1 would be ambiguous
    e = embeddings.view(embeddings.shape[0], *([1] * (cotangents.dim() - 1)), embeddings.shape[-1])
    return (cotangents[..., None] * e).reshape(
        *cotangents.shape[:-1], cotangents.shape[-1] * embeddings.shape[-1]
    )


def bait_factors(
    embeddings: Tensor, probs: Tensor, *, scale: Scale = "sqrt_prob"
) -> tuple[Tensor, Tensor]:
    """The two factors of :func:`bait_embeddings`: ``(A [N, C, C], embeddings [N, D])`` with
    ``V[n, c, o*D + i] = A[n, c, o] embeddings[n, i]``, ``A[n, c, o] = s_c (1[c = o] - p[n, o])``.

    :func:`fishermask.fisher.greedy_select` takes them as ``factors`` to compute its block
    products from them (O(N C (C + D)) per column instead of O(N C^2 D))."""
    if embeddings.dim() != 2 or probs.dim() != 2 or embeddings.shape[0] != probs.shape[0]:
        raise ConfigError(
            f"embeddings {tuple(embeddings.shape)} and probs {tuple(probs.shape)} must be "
            "[N, D] and [N, C] with the same N."
        )
    # [N, C, C]: s_c d log p_c / d z_o at [n, c, o]
    # contiguous [N, C, C], so that V comes out contiguous: the selection then uses it in place
    # (a strided V was copied whole by its reshape to [N C, d])
    coef = log_prob_cotangents(probs.to(embeddings), scale).transpose(0, 1).contiguous()
    return coef, embeddings


def bait_embeddings(embeddings: Tensor, probs: Tensor, *, scale: Scale = "sqrt_prob") -> Tensor:
    """Last-layer gradient matrices ``[N, C, C*D]`` from embeddings ``[N, D]``, probs ``[N, C]``.

    Args:
        embeddings: penultimate features ``e(x)``.
        probs: softmax probabilities ``p(.|x)`` (rows sum to 1).
        scale: ``"sqrt_prob"`` scales row c by ``sqrt(p_c)`` (BAIT's V_x); ``"none"`` does not.

    Returns:
        ``V`` with ``V[n, c, o*D + i] = s_c (1[c = o] - p[n, o]) e[n, i]``, ``s_c = sqrt(p[n, c])``
        or 1; dtype and device of ``embeddings``.
    """
    coef, _ = bait_factors(embeddings, probs, scale=scale)
    return last_layer_grads(coef, embeddings)  # [N, C, C*D]
