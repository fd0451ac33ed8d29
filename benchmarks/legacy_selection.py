"""The greedy selection as it was before the block-folded rewrite (commit 88564a8), kept verbatim
for `fisher_query.py --compare-baseline` and `selection_bench.py`: the new
`fishermask.fisher.greedy_select` is timed beside it in one process and must pick the same
indices. Not part of the package.

Greedy A-optimal batch selection shared by FisherMask and BAIT (see docs/methods.md §2.5).

Index convention: N unlabeled candidates, nL labeled samples, C classes, d selection
dimension (k masked weights for FisherMask, D*C for BAIT), B budget. ``V[x]`` is ``[C, d]``;
the ``V_x`` (d x C) of docs/methods.md §2.3 is its transpose, and a sample's Fisher is
``V_x V_x^T``.

Objective: with ``M = lam I + F_C nL/(nL+B)`` and every ``V_x`` scaled by ``sqrt(B/(nL+B))``,
greedily add the candidate maximising
``score(x) = tr(V_x^T M^-1 F_S M^-1 V_x (I_C + V_x^T M^-1 V_x)^-1)``, i.e. the largest
decrease of ``tr(M^-1 F_S)`` (paper eqs. 10-12), then update ``M^-1`` by Woodbury; in the
backward phase remove the chosen point maximising the same trace with ``-I_C`` (the point
whose removal increases ``tr(M^-1 F_S)`` least).

Fast form: each candidate carries two C x C matrices, ``K_x = V_x^T M^-1 V_x`` and
``H_x = V_x^T M^-1 F_S M^-1 V_x``. After adding (sigma = +1) or removing (sigma = -1) a
point y, with ``W = M^-1 V_y``, ``T = M^-1 F_S W``, ``S = sigma I + K_y``, ``P = W^T F_S W``,
``Q_x = V_x^T W``, ``R_x = V_x^T T`` and ``U_x = Q_x S^-1``:

    M^-1 <- M^-1 - W S^-1 W^T
    K_x  <- K_x - U_x Q_x^T
    H_x  <- H_x - R_x U_x^T - U_x R_x^T + U_x P U_x^T

which is exact (the Woodbury identity multiplied out), O(d C^2) per candidate per step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from fishermask.errors import ConfigError, check_positive  # noqa: F401

_CARRY = torch.float64  # dtype of M^-1, F_S and the carried C x C matrices
_MAX_REFINE = 512  # at most this many near-tied candidates are re-scored exactly per step
# Candidates up to this size are converted to float64 once: a float64 update product costs
# about twice a float32 one, but float32 carried scores drift and the near-tie re-scoring
# (O(C d^2) per re-scored candidate) then dominates; measured 114 s -> 30 s for 1375 picks
# among 4125 candidates (C=4, d=880) on one CPU thread.
UPCAST_MAX_BYTES = 1 << 30


def mean_fisher(*vs: Tensor, dtype: torch.dtype | None = None, chunk_size: int = 4096) -> Tensor:
    """``F_S``: the mean of ``V[x]^T V[x]`` over all rows of all arguments; ``[d, d]``.

    Each argument is ``[n_i, C, d]``. ``dtype`` (default: the first input's) is the dtype of
    the products and the result; chunks of ``chunk_size`` samples are converted one at a time.
    """
    rows = sum(v.shape[0] for v in vs)
    if rows == 0:
        raise ConfigError("mean_fisher needs at least one sample; all arguments are empty.")
    d = vs[0].shape[-1]
    acc = vs[0].new_zeros(d, d, dtype=dtype or vs[0].dtype)
    for v in vs:
        for start in range(0, v.shape[0], chunk_size):
            flat = v[start : start + chunk_size].reshape(-1, d).to(acc.dtype)  # [b C, d]
            acc += flat.T @ flat
    return acc / rows


def _validate(
    vu: Tensor, vl: Tensor, budget: int, lam: float, backward_steps: int, fs: Tensor | None
) -> None:
    if vu.dim() != 3 or vl.dim() != 3:
        raise ConfigError(
            f"V_unlabeled {tuple(vu.shape)} and V_labeled {tuple(vl.shape)} must be [N, C, d] "
            "(use an empty [0, C, d] tensor when nothing is labeled)."
        )
    if vl.shape[1:] != vu.shape[1:]:
        raise ConfigError(
            f"V_labeled has [C, d] = {tuple(vl.shape[1:])}, V_unlabeled {tuple(vu.shape[1:])}; "
            "compute both with the same model and mask."
        )
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"`budget`={budget!r}, must be an integer >= 1.")
    if budget > vu.shape[0]:
        raise ConfigError(
            f"`budget`={budget} exceeds the {vu.shape[0]} unlabeled candidates; choose "
            f"budget <= {vu.shape[0]}."
        )
    if not (isinstance(lam, int | float) and math.isfinite(lam) and lam > 0):
        raise ConfigError(f"`lam`={lam!r}, must be a finite number > 0.")
    check_positive("backward_steps", backward_steps, allow_zero=True)
    d = vu.shape[2]
    if fs is not None and tuple(fs.shape) != (d, d):
        raise ConfigError(f"`pool_fisher` has shape {tuple(fs.shape)}, must be ({d}, {d}).")


def _traces(h: Tensor, k: Tensor, sigma: float) -> Tensor:
    """``tr(H_x (sigma I + K_x)^-1)`` for a stack: ``[n, C, C]`` x2 -> ``[n]``."""
    eye = torch.eye(k.shape[-1], dtype=k.dtype, device=k.device)
    return torch.linalg.solve(k + sigma * eye, h).diagonal(dim1=-2, dim2=-1).sum(-1)


def legacy_greedy_select(
    V_unlabeled: Tensor,
    V_labeled: Tensor,
    budget: int,
    *,
    lam: float = 1.0,
    backward_steps: int = 1,
    pool_fisher: Tensor | None = None,
    chunk_size: int = 4096,
    upcast_max_bytes: int = UPCAST_MAX_BYTES,
) -> Tensor:
    """Pick ``budget`` candidates greedily by the trace criterion of docs/methods.md §2.5.

    Args:
        V_unlabeled: ``[N, C, d]`` candidate matrices ``V[x]`` (rows = classes).
        V_labeled: ``[nL, C, d]`` for the labeled set (``nL`` may be 0).
        budget: B, the number of points to return (1 <= B <= N).
        lam: ridge constant lambda of ``M = lam I + F_C nL/(nL+B)``.
        backward_steps: the forward phase picks ``min((backward_steps+1) B, N)`` points, the
            backward phase then removes points until B remain (0: forward only).
        pool_fisher: ``F_S`` ``[d, d]``; default the mean of ``V[x]^T V[x]`` over all rows of
            both ``V_unlabeled`` and ``V_labeled`` (:func:`mean_fisher`).
        chunk_size: candidates per block in the O(N C d^2) set-up (bounds its memory).
        upcast_max_bytes: run everything in float64 when the candidates' float64 copy takes
            at most this many bytes (0: keep the inputs' dtype for the big products).

    Returns:
        LongTensor ``[B]`` of indices into ``V_unlabeled``, in the order chosen.

    Complexity: set-up O((N + nL) C d^2 + d^3); each step O(N d C^2) for the candidates'
    rank-C updates (one ``[N C, d] x [d, 2C]`` product) plus O(N C^3 + d^2 C) once; memory
    O(N C^2 + d^2) besides the inputs. The naive per-candidate formula costs O(N d^2 C).

    Precision: inputs whose float64 copy takes at most ``upcast_max_bytes`` (1 GiB) are
    converted to float64 once and everything runs in float64. Larger inputs keep their
    dtype for the big products; ``M^-1``, ``F_S`` (default) and the
    carried C x C matrices are float64. At every step the candidates whose carried score lies
    within a band of the best (``100 eps`` of the inputs' dtype, widened to 10x the largest
    error seen so far) are re-scored from scratch in float64 and the best of those is taken,
    so float32 inputs pick the same points as float64 ones even through near-ties (random
    networks give top-2 gaps of ~1e-7 relative, below float32 resolution). Exact ties go to
    the lowest index (forward) or the earliest chosen (backward).
    """
    vu, vl = V_unlabeled, V_labeled
    _validate(vu, vl, budget, lam, backward_steps, pool_fisher)
    n, c, d = vu.shape
    n_lab = vl.shape[0]
    work, dev = vu.dtype, vu.device
    if work != _CARRY and n * c * d * 8 <= upcast_max_bytes:
        vu, work = vu.to(_CARRY), _CARRY
    vl = vl.to(dtype=work, device=dev)
    fs = pool_fisher if pool_fisher is not None else mean_fisher(vu, vl, dtype=_CARRY)
    fs = fs.to(dtype=_CARRY, device=dev)  # [d, d]
    m = lam * torch.eye(d, dtype=_CARRY, device=dev)  # [d, d]
    if n_lab:
        flat = vl.reshape(-1, d).to(_CARRY)  # [nL C, d]
        m += (flat.T @ flat) / n_lab * (n_lab / (n_lab + budget))
    a_inv = torch.cholesky_inverse(torch.linalg.cholesky(m))  # M^-1, [d, d]
    s = math.sqrt(budget / (n_lab + budget))  # scale of every V_x

    # initial K_x, H_x for all candidates (chunked): Z = V A, K = s^2 Z V^T, H = s^2 Z F Z^T
    k_all = torch.empty(n, c, c, dtype=_CARRY, device=dev)
    h_all = torch.empty(n, c, c, dtype=_CARRY, device=dev)
    a_w, fs_w = a_inv.to(work), fs.to(work)
    for start in range(0, n, chunk_size):
        v = vu[start : start + chunk_size]  # [b, C, d]
        z = v @ a_w  # [b, C, d]
        k_all[start : start + chunk_size] = (z @ v.transpose(1, 2)).to(_CARRY) * s**2
        h_all[start : start + chunk_size] = ((z @ fs_w) @ z.transpose(1, 2)).to(_CARRY) * s**2
    del z

    flat_u = vu.reshape(n * c, d)  # [N C, d] view
    eye = torch.eye(c, dtype=_CARRY, device=dev)

    def commit(y: int, sigma: float, rows: Tensor | None) -> None:
        """Add (sigma=+1) or remove (sigma=-1) candidate y; update rows (None: all)."""
        nonlocal a_inv
        x_y = vu[y].to(_CARRY).T * s  # [d, C]
        w = a_inv @ x_y  # [d, C]
        fw = fs @ w  # [d, C]
        t = a_inv @ fw  # [d, C]
        p = w.T @ fw  # [C, C]
        s_inv = torch.linalg.inv(sigma * eye + k_all[y])  # [C, C]
        wt = (torch.cat([w, t], 1) * s).to(work)  # [d, 2C], the candidates' scale folded in
        if rows is None:
            qr = (flat_u @ wt).view(n, c, 2 * c).to(_CARRY)  # [N, C, 2C]
            k, h = k_all, h_all
        else:
            qr = (vu[rows] @ wt).to(_CARRY)  # [r, C, 2C]
            k, h = k_all[rows], h_all[rows]
        q, r = qr[..., :c], qr[..., c:]  # [., C, C] each
        u = q @ s_inv  # [., C, C]
        k -= u @ q.transpose(1, 2)
        # H - R U^T - U R^T + U P U^T = H - (E + E^T) with E = (R - U P / 2) U^T
        e = (r - 0.5 * (u @ p)) @ u.transpose(1, 2)  # [., C, C]
        h -= e + e.transpose(1, 2)
        if rows is not None:
            k_all[rows], h_all[rows] = k, h
        a_inv = a_inv - w @ s_inv @ w.T

    def exact(rows: Tensor) -> tuple[Tensor, Tensor]:
        """K_x and H_x of ``rows`` recomputed from scratch in float64: ``[r, C, C]`` each."""
        x = vu[rows].to(_CARRY) * s  # [r, C, d]
        z = x @ a_inv  # [r, C, d]
        return z @ x.transpose(1, 2), (z @ fs) @ z.transpose(1, 2)

    base_tol = 100 * torch.finfo(work).eps
    drift = 0.0  # largest relative error of a carried score seen so far

    def pick(rows: Tensor, sigma: float) -> int:
        """Position in ``rows`` of the best score; near-ties re-scored exactly in float64."""
        nonlocal drift
        approx = _traces(h_all[rows], k_all[rows], sigma)  # [r]
        scale_ = float(approx.abs().max()) or 1.0
        top = float(approx.max())
        band = max(base_tol, 10 * drift) * scale_
        near = torch.nonzero(approx >= top - band).squeeze(1)[:_MAX_REFINE]  # ascending
        if near.numel() == 0:  # NaN scores: re-score the first rows exactly
            near = torch.arange(min(len(rows), _MAX_REFINE), device=rows.device)
        k_ex, h_ex = exact(rows[near])
        k_all[rows[near]], h_all[rows[near]] = k_ex, h_ex
        exact_scores = _traces(h_ex, k_ex, sigma)  # [m]
        drift = max(drift, float((exact_scores - approx[near]).abs().max()) / scale_)
        return int(near[torch.argmax(exact_scores)])

    chosen: list[int] = []
    free = torch.ones(n, dtype=torch.bool, device=dev)
    for _ in range(min((backward_steps + 1) * budget, n)):
        rows = torch.nonzero(free).squeeze(1)  # [N - len(chosen)], ascending
        y = int(rows[pick(rows, 1.0)])
        chosen.append(y)
        free[y] = False
        commit(y, 1.0, None)

    while len(chosen) > budget:
        pos = pick(torch.tensor(chosen, device=dev), -1.0)
        y = chosen.pop(pos)
        commit(y, -1.0, torch.tensor(chosen, device=dev))
    return torch.tensor(chosen, dtype=torch.long, device=dev)
