"""BADGE (Ash et al., ICLR 2020; docs/methods.md §4.6): k-means++ on gradient embeddings.

Index convention: U unlabeled candidates, C classes, D embedding size, F = C·D gradient
embedding size, k chosen centers.

For candidate x with softmax p(x) ∈ R^C, pseudo-label ŷ = argmax p and penultimate
embedding e(x) ∈ R^D, the gradient embedding is

    g(x) = (onehot(ŷ) − p(x)) ⊗ e(x)  ∈ R^{C×D},

which is **minus** the gradient of CE(x, ŷ) w.r.t. the weight ``W [C, D]`` of the final
linear layer (logits = W e + b), flattened in W's row-major layout (the sign does not change
any distance). No backward pass is needed.

BADGE picks k points by k-means++ seeding (Arthur & Vassilvitskii 2007) on the g(x): the
first is the largest-norm embedding; each next one is drawn with probability proportional to
its squared distance to the nearest chosen point. With u = onehot − p the inner products
factorise, ``⟨u ⊗ e, u' ⊗ e'⟩ = ⟨u, u'⟩⟨e, e'⟩``, so distances to each new center cost
O(U (C + D)) and the U × F matrix is never formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fishermask.errors import ConfigError, check_positive
from fishermask.fisher.bait import last_layer_grads
from fishermask.strategies.base import QueryContext, Selection, Strategy
from fishermask.strategies.registry import register


def badge_factors(embeddings: Tensor, probs: Tensor) -> tuple[Tensor, Tensor]:
    """The two factors ``(u [N, C], e [N, D])`` of the gradient embeddings ``u ⊗ e``.

    ``u = onehot(argmax p) − p`` (ties in argmax: the lowest class index).
    """
    u = -probs.clone()  # [N, C]
    u[torch.arange(len(probs), device=probs.device), probs.argmax(dim=1)] += 1.0
    return u, embeddings


def badge_embeddings(embeddings: Tensor, probs: Tensor) -> Tensor:
    """Gradient embeddings ``g [N, C·D]``, ``g = (onehot(ŷ) − p) ⊗ e``, materialised.

    Equals ``−∂CE(x, ŷ)/∂W`` flattened row-major (W: ``[C, D]``). For small problems and
    tests; :func:`kmeans_pp_seeding` works on the factors and never forms it.

    Args:
        embeddings: penultimate embeddings ``[N, D]``.
        probs: softmax probabilities ``[N, C]``.

    Same argument order as :func:`fishermask.fisher.bait_embeddings`.
    """
    return last_layer_grads(*badge_factors(embeddings, probs))


def kmeans_pp_seeding(
    points: Tensor,
    k: int,
    *,
    factor: Tensor | None = None,
    generator: torch.Generator | None = None,
    chunk: int = 65_536,
) -> tuple[Tensor, Tensor]:
    """k-means++ seeding with a deterministic first center, BADGE's variant.

    The points are the rows of ``points [N, A]``, or, when ``factor [N, B]`` is given, the
    outer products ``points_i ⊗ factor_i`` (never formed: inner products factorise).

    1. The first center is the point of largest norm (ties: lowest position).
    2. Each next center is drawn with probability ∝ d², the squared distance to its nearest
       chosen center, using one uniform draw from ``generator`` per pick (inverse CDF over
       the positions in order). A chosen point has weight 0 and is never drawn again; so is
       any point at distance 0 from a chosen one. Squared distances
       ``‖a‖² + ‖b‖² − 2⟨a, b⟩`` within ``64·eps·(‖a‖² + ‖b‖²)`` of 0 count as 0 (rounding
       of duplicates).
    3. If every unchosen point is at distance 0 (all duplicates of chosen centers), the next
       center is the unchosen point of largest norm (ties: lowest position), without a draw.

    Distances are kept in a running minimum vector; each step computes only the distances
    to the new center, in chunks of ``chunk`` rows, in float64.

    Args:
        points: ``[N, A]``.
        k: number of centers, ``1 <= k <= N``.
        factor: ``[N, B]`` or None.
        generator: CPU generator for the draws.
        chunk: rows per distance block (bounds temporary memory).

    Returns:
        ``(positions [k], sq_dist [k])``: positions into ``points`` in the order chosen, and
        each one's squared distance to its nearest earlier center when it was chosen (for the
        first center: its squared norm, the distance to the origin).
    """
    n = points.shape[0]
    check_positive("k", k)
    if k > n:
        raise ConfigError(f"k={k} centers asked from {n} points; k must be <= {n}.")
    a = points.to(torch.float64)  # [N, A]
    b = factor.to(torch.float64) if factor is not None else None  # [N, B]
    sq_a = a.square().sum(dim=1)
    sq = sq_a * b.square().sum(dim=1) if b is not None else sq_a  # [N] ‖g_i‖²
    tol = 64 * torch.finfo(torch.float64).eps
    chosen = torch.zeros(n, dtype=torch.bool, device=a.device)
    min_d = torch.full((n,), float("inf"), dtype=torch.float64, device=a.device)
    order = torch.empty(k, dtype=torch.int64)
    picked_d = torch.empty(k, dtype=torch.float64)

    def largest_norm_unchosen() -> int:
        s = torch.where(chosen, torch.full_like(sq, -1.0), sq)
        return int(torch.argmax(s))  # first maximal position

    for t in range(k):
        if t == 0:
            j = largest_norm_unchosen()
            picked_d[t] = float(sq[j])
        else:
            w = torch.where(chosen, torch.zeros_like(min_d), min_d)  # [N]
            total = float(w.sum())
            if total > 0:
                cdf = torch.cumsum(w, dim=0).cpu()
                r = float(torch.rand((), generator=generator, dtype=torch.float64)) * total
                j = int(torch.searchsorted(cdf, torch.tensor([r], dtype=torch.float64), right=True))
                if j >= n or w[j] <= 0:  # rounding at the top end: the last positive weight
                    j = int(torch.nonzero(w > 0).max())
            else:
                j = largest_norm_unchosen()
            picked_d[t] = float(min_d[j])
        order[t] = j
        chosen[j] = True
        for lo in range(0, n, chunk):
            hi = min(lo + chunk, n)
            dot = a[lo:hi] @ a[j]  # [chunk]
            if b is not None:
                dot = dot * (b[lo:hi] @ b[j])
            both = sq[lo:hi] + sq[j]
            d = both - 2.0 * dot
            d = torch.where(d <= tol * both, torch.zeros_like(d), d)
            min_d[lo:hi] = torch.minimum(min_d[lo:hi], d)
        min_d[j] = 0.0
    return order, picked_d


@register
@dataclass(frozen=True)
class BadgeStrategy(Strategy):
    """BADGE (Ash et al. 2020): k-means++ seeding on last-layer gradient embeddings.

    Only the unlabeled pool is seeded (labeled points are not centers), as in the reference.
    Option ``chunk``: rows per distance block.
    """

    name = "badge"

    chunk: int = 65_536

    def __post_init__(self) -> None:
        check_positive("chunk", self.chunk)

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        unlabeled = ctx.pool.unlabeled  # [U]
        probs, emb = ctx.head_predictions(unlabeled)  # [U, C], [U, D]
        u, e = badge_factors(emb, probs)
        pick, sq_dist = kmeans_pp_seeding(
            u, budget, factor=e, generator=ctx.generator, chunk=self.chunk
        )
        return Selection(unlabeled[pick], sq_dist)
