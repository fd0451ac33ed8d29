"""K-center greedy / core-set (Sener & Savarese 2018, paper eq. 7).

Greedy 2-approximation of the k-center problem on penultimate embeddings: the
labeled points are the initial centers; each step adds the unlabeled point
farthest from its nearest center.

Every squared distance that decides a pick, to a labeled center or to a newly chosen
one, is computed the same way on the CPU, ``((x - c) ** 2).sum()`` over the D embedding
dimensions in the embeddings' dtype (:func:`sq_dist`), so points at equal distances
(duplicated images) compare equal rather than by rounding. Tie rule: among points
equally far from their nearest centers, the lowest pool position is chosen (``argmax``
returns the first maximum; candidates are in pool order).

Fast form (the picks and distances are exactly those of the formula above): distances are
first computed on the embeddings' device as ``|x|^2 + |c|^2 - 2 x.c`` (one matrix
product, chunked), whose error against :func:`sq_dist` has a proven bound (see
:func:`_bound_coef`); only the pairs that the bound cannot rule out (a labeled center that
may be a point's nearest, a new center that may be nearer than a point's current nearest)
are then evaluated with :func:`sq_dist`. The running nearest-center distances are thus
always the exact ones, and each greedy step re-checks only the few points whose nearest
center may change. See docs/methods.md §4.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fishermask.strategies.base import QueryContext, Selection, Strategy
from fishermask.strategies.registry import register

_BLOCK = 1 << 22  # entries of one [rows, chunk, D] difference block (16 MiB in float32)
_GEMM_BLOCK = 1 << 22  # entries of one [rows, chunk] block of approximate distances


def sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared distances ``[U]`` of the rows of ``x [U, D]`` to one point ``c [D]``.

    The one formula for every distance in k-center greedy (see the module docstring).
    """
    return (x - c).pow(2).sum(dim=-1)


def _min_sq_dist(x: torch.Tensor, centers: torch.Tensor, chunk: int) -> torch.Tensor:
    """Squared distance of each row of ``x [U, D]`` to its nearest row of ``centers [M, D]``.

    The same arithmetic as :func:`sq_dist` (differences, squares, a sum over D), in
    ``[rows, chunk, D]`` blocks, for every pair (the slow form; used when the fast one
    cannot bound its error).
    """
    u, dim = x.shape
    out = torch.full((u,), float("inf"), dtype=x.dtype, device=x.device)
    for i in range(0, len(centers), chunk):
        c = centers[i : i + chunk]  # [m, D]
        rows = max(1, _BLOCK // max(1, len(c) * dim))
        for j in range(0, u, rows):
            d = sq_dist(x[j : j + rows, None, :], c[None, :, :])  # [rows, m]
            out[j : j + rows] = torch.minimum(out[j : j + rows], d.min(dim=1).values)
    return out


def _pair_sq_dist(x: torch.Tensor, rows: torch.Tensor, c: torch.Tensor, cols: torch.Tensor):
    """:func:`sq_dist` of the pairs ``(x[rows[k]], c[cols[k]])``, ``[len(rows)]``, in blocks."""
    out = torch.empty(len(rows), dtype=x.dtype)
    step = max(1, _BLOCK // max(1, x.shape[1]))
    for s in range(0, len(rows), step):
        r, k = rows[s : s + step], cols[s : s + step]
        out[s : s + step] = sq_dist(x[r], c[k])
    return out


def _full_precision_matmul(device: torch.device) -> bool:
    """Whether float32 matrix products on ``device`` round as IEEE float32 (no TF32/bf16)."""
    if torch.get_float32_matmul_precision() != "highest":
        return False
    if device.type == "cuda":
        cuda = torch.backends.cuda.matmul
        if cuda.allow_tf32 or getattr(cuda, "fp32_precision", "none") not in ("none", "ieee"):
            return False
    mkldnn = getattr(torch.backends.mkldnn, "matmul", None)
    return getattr(mkldnn, "fp32_precision", "none") in ("none", "ieee")


def _gemm_dtype(x: torch.Tensor) -> torch.dtype:
    """Dtype of the approximate distances: the embeddings' own, float64 where that is unsafe."""
    if x.dtype == torch.float64 or (x.dtype == torch.float32 and _full_precision_matmul(x.device)):
        return x.dtype
    return torch.float64


def _bound_coef(exact: torch.dtype, gemm: torch.dtype, dim: int) -> float:
    """``K`` such that the computed ``g`` is within ``K/2 (|a|^2 + |b|^2)`` of ``f``.

    ``f`` is :func:`sq_dist` of rows ``a, b`` in dtype ``exact`` (unit roundoff ``u``), ``g``
    the expansion ``fl(|a|^2) + fl(|b|^2) - 2 fl(a.b)`` in dtype ``gemm`` (unit roundoff
    ``v``), every sum of D terms in any order, and ``S = |a|^2 + |b|^2``. With
    ``s = |a - b|^2`` the true value and ``gamma_n(u) = n u / (1 - n u)`` (Higham, Accuracy
    and Stability of Numerical Algorithms, 2nd ed., section 3.1):
    ``|f - s| <= gamma_{D+2}(u) s <= 2 gamma_{D+2}(u) S`` (a rounded difference, a rounded
    square, a D-term sum of non-negative terms; ``s <= 2 S``), and
    ``|g - s| <= 3.01 gamma_{D+3}(v) S`` (the computed norms, a D-term dot product added to
    their sum by one product-accumulate, and the roundings of forming the sum). The returned
    ``K = 8 (gamma_{D+3}(u) + gamma_{D+3}(v))`` is twice the sum of the two, which also
    covers the roundings of the thresholds compared against it; underflow is covered by the
    absolute term of :func:`_abs_term`.
    """
    gamma = 0.0
    for dtype in (exact, gemm):
        nu = (dim + 3) * torch.finfo(dtype).eps / 2
        gamma += nu / (1 - nu)
    return 8 * gamma


def _abs_term(exact: torch.dtype, gemm: torch.dtype, dim: int) -> float:
    """Absolute slack for underflow: ``8 (D + 3)`` of the larger smallest normal number."""
    return 8 * (dim + 3) * max(torch.finfo(exact).tiny, torch.finfo(gemm).tiny)


def _min_sq_dist_fast(
    x: torch.Tensor,
    centers: torch.Tensor,
    x_cpu: torch.Tensor,
    norms: torch.Tensor,
    coef: float,
    slack0: float,
) -> torch.Tensor:
    """:func:`_min_sq_dist` of ``x`` to ``centers``, exactly, through the matrix-product form.

    A pass of approximate distances finds each row's approximate minimum ``m``; a second
    pass keeps the centers with approximate distance ``<= m + 2 e`` (``e`` the row's error
    bound against every center), which include every center at the exact minimum, and
    evaluates only those pairs with :func:`sq_dist`. Returns ``[U]`` on the CPU.
    """
    gd = norms.dtype
    u, dim = x.shape
    c = centers.to(gd)
    nc = c.pow(2).sum(dim=1)  # [M]
    c_cpu = centers.cpu()
    xg = x.to(gd)
    slack = coef * (norms + nc.max()) + slack0  # [U] bound for every center
    rows = max(1, _GEMM_BLOCK // max(1, len(c)))
    out = torch.empty(u, dtype=x.dtype)
    for s in range(0, u, rows):
        xb, nb, sb = xg[s : s + rows], norms[s : s + rows], slack[s : s + rows]
        g = torch.addmm(nb[:, None] + nc[None, :], xb, c.T, alpha=-2)  # [rows, M]
        keep = g <= (g.min(dim=1).values + 2 * sb)[:, None]
        pi, pc = keep.nonzero(as_tuple=True)
        pi, pc = pi.cpu(), pc.cpu()
        d = _pair_sq_dist(x_cpu, pi + s, c_cpu, pc)
        best = torch.full((len(xb),), float("inf"), dtype=x.dtype)
        out[s : s + rows] = best.scatter_reduce(0, pi, d, reduce="amin")
    return out


def _k_center_greedy_slow(
    unlabeled: torch.Tensor,
    labeled: torch.Tensor,
    budget: int,
    generator: torch.Generator | None,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every distance by :func:`sq_dist` (for embeddings with infinities, NaNs or huge norms)."""
    x = unlabeled.cpu()
    u = len(x)
    if len(labeled):
        min_d = _min_sq_dist(x, labeled.cpu(), chunk)
    else:
        min_d = torch.full((u,), float("inf"), dtype=x.dtype)
    chosen = torch.empty(budget, dtype=torch.int64)
    dist = torch.empty(budget, dtype=torch.float64)
    for t in range(budget):
        if t == 0 and not len(labeled):
            j = int(torch.randint(u, (1,), generator=generator))
        else:
            j = int(torch.argmax(min_d))
        chosen[t] = j
        dist[t] = float(min_d[j].clamp_min(0).sqrt()) if torch.isfinite(min_d[j]) else float("inf")
        min_d = torch.minimum(min_d, sq_dist(x, x[j]))  # [U]
        min_d[j] = -1.0  # never choose it again
    return chosen, dist


@torch.no_grad()
def k_center_greedy(
    unlabeled: torch.Tensor,
    labeled: torch.Tensor,
    budget: int,
    *,
    generator: torch.Generator | None = None,
    chunk: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy k-center selection.

    Args:
        unlabeled: embeddings ``[U, D]`` of the candidates (the matrix products run on their
            device if that is CUDA, else on the CPU; the exact re-checks on the CPU).
        labeled: embeddings ``[nL, D]`` of the initial centers (may be empty).
        budget: number of points to choose.
        generator: draws the first center when there are no labeled points.
        chunk: labeled centers per block of the slow form.

    Returns:
        ``(positions [budget], distances [budget])`` on the CPU: positions into
        ``unlabeled`` in the order chosen, and each one's distance to its nearest center
        when it was chosen.
    """
    u, dim = unlabeled.shape
    if unlabeled.device.type not in ("cpu", "cuda"):  # rounding of other devices' products
        unlabeled = unlabeled.cpu()  # is not covered by the bound
    labeled = labeled.to(unlabeled.device, unlabeled.dtype)
    if unlabeled.dtype not in (torch.float32, torch.float64):
        return _k_center_greedy_slow(unlabeled, labeled, budget, generator, chunk)
    gd = _gemm_dtype(unlabeled)
    xg = unlabeled.to(gd)
    norms = xg.pow(2).sum(dim=1)  # [U]
    norm_max = max(
        float(norms.max()) if u else 0.0,
        float(labeled.to(gd).pow(2).sum(dim=1).max()) if len(labeled) else 0.0,
    )
    if not norm_max <= torch.finfo(unlabeled.dtype).max / 16:  # infinities, NaNs, overflow
        return _k_center_greedy_slow(unlabeled, labeled, budget, generator, chunk)
    x_cpu = unlabeled.cpu()
    coef, slack0 = _bound_coef(unlabeled.dtype, gd, dim), _abs_term(unlabeled.dtype, gd, dim)
    if len(labeled):
        min_d = _min_sq_dist_fast(unlabeled, labeled, x_cpu, norms, coef, slack0)
    else:
        min_d = torch.full((u,), float("inf"), dtype=unlabeled.dtype)
    # Point i can come nearer to the new center j only where g_ij - e_ij < min_d[i], with
    # g the expansion and e_ij = coef (|x_i|^2 + |x_j|^2) + slack0 its error bound:
    # g_ij - e_ij = shrunk[i] + (1 - coef) |x_j|^2 - 2 x_i.x_j, one addmv.
    shrunk = (1 - coef) * norms - slack0  # [U] (device)
    norms_cpu = norms.cpu().tolist()
    values = min_d.numpy()  # a view: min_d is only updated in place below
    chosen: list[int] = []
    at_pick: list[float] = []
    for t in range(budget):
        if t == 0 and not len(labeled):
            j = int(torch.randint(u, (1,), generator=generator))
        else:
            j = int(torch.argmax(min_d))  # the first of equal maxima
        chosen.append(j)
        at_pick.append(values[j])
        low = torch.addmv(shrunk + (1 - coef) * norms_cpu[j], xg, xg[j], alpha=-2)  # [U]
        near = (low.cpu() < min_d).nonzero(as_tuple=True)[0]
        if near.numel():
            min_d[near] = torch.minimum(min_d[near], sq_dist(x_cpu[near], x_cpu[j]))
        values[j] = -1.0  # never choose it again
    picked = torch.tensor(at_pick, dtype=min_d.dtype)  # the squared distances, exactly
    return torch.tensor(chosen, dtype=torch.int64), picked.clamp_min(0).sqrt().double()


@register
@dataclass(frozen=True)
class KCenterStrategy(Strategy):
    """Greedy k-center on penultimate embeddings, labeled points as initial centers."""

    name = "kcenter"

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        unlabeled = ctx.pool.unlabeled
        emb_u = ctx.embeddings(unlabeled)  # [U, D]
        emb_l = ctx.embeddings(ctx.pool.labeled)  # [nL, D]
        pick, dist = k_center_greedy(emb_u, emb_l, budget, generator=ctx.generator)
        return Selection(unlabeled[pick], dist)
