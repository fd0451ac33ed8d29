"""Greedy A-optimal batch selection shared by FisherMask and BAIT (docs/methods.md §2.4-§2.5, §3).

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

Carried form: each candidate carries two C x C matrices, ``K_x = V_x^T M^-1 V_x`` and
``H_x = V_x^T M^-1 F_S M^-1 V_x``. After adding (sigma = +1) or removing (sigma = -1) a
point y, with ``W = M^-1 V_y``, ``T = M^-1 F_S W``, ``S = sigma I + K_y``, ``P = W^T F_S W``,
``Q_x = V_x^T W``, ``R_x = V_x^T T`` and ``U_x = Q_x S^-1``:

    M^-1 <- M^-1 - W S^-1 W^T
    K_x  <- K_x - U_x Q_x^T
    H_x  <- H_x - R_x U_x^T - U_x R_x^T + U_x P U_x^T

which is exact (the Woodbury identity multiplied out). The carried updates use a factor of
``S^-1 = L D_s L^T`` (eigenvectors times sqrt|eigenvalue|, D_s their signs; all +1 when
adding): with ``Y_x = Q_x L``, ``Y_s = Y_x D_s``, ``G = L^T P L`` and
``Z_x = R_x L - Y_x D_s G / 2``, ``K_x <- K_x - Y_s Y_x^T`` and
``H_x <- H_x - (E + E^T)``, ``E = Z_x Y_s^T``. Y_x and Z_x are V_x^T times the columns
``W L`` and ``T L - W L D_s G / 2``, so the big product gives them directly and a step needs
no C x C products per candidate before the two batched ones.

Blocks (what makes it arithmetic-bound): the ``[Y_x | Z_x]`` of every candidate are the one
big product per step, ``[N C, d] x [d, 2C]``: 4 N C^2 d flops for N C d values read, a
skinny product that runs at a fraction of the GEMM rate (measured 4-5 GFLOPS float64 on the
2-core AMD EPYC of docs/benchmarks.md against ~40-60 GFLOPS float32 for a wide product). So
the next b-1 picks are *guessed* first, cheaply, on the 8b best candidates only (each guess
advances ``M^-1``, which costs O(d^2 C) and no pass over the candidates); then one product
``[N C, d] x [d, 2 b C]`` (float32 by default, in row chunks rearranged in cache so that each
step's blocks are contiguous) gives ``[Y_x | Z_x]`` of every candidate for all b steps at
once; then the b steps are replayed over all candidates exactly as the one-step algorithm
would do them, each real pick compared with the guess (``M^-1`` after each guessed step is
kept when those copies fit, else recomputed by the same operations). On the first wrong
guess the rest of the block is dropped and a new block starts from the right pick. A step
costs the same 4 N C^2 d flops, but V is read once per block instead of once per step, the
product runs at the wide-GEMM rate, and b adapts (doubling after a block that was guessed
right, halving after a miss, at most ``2 b C <= 320`` columns). Once 1/16 of a phase's
rows are chosen they are dropped (one copy of the free rows, at most 1 GiB), so the
products and scores run over the free candidates only.

Per-step work besides the block product (docs/benchmarks.md, session 6): the carried scores
``tr(H_x (sigma I + K_x)^-1)`` come from one symmetric elimination (``L D L^T``) vectorised
across the candidates (``_carried_traces``: C - 1 pivots, each a few elementwise operations on
a ``[C, 2C, N]`` layout), not from one LAPACK LU per 10 x 10 matrix; when adding, a score is
at most ``tr(H_x)``, so only the candidates whose ``tr(H_x)`` plus band reaches a lower bound
of the best score get one (``_Greedy.scores``; BAIT's shape skips nearly all); each step's
two carried updates are one batched product ``[Y; Z] Y_s^T``; ``M^-1`` is written into a few
reused buffers. With ``factors`` (BAIT: ``V_x = A_x (I (x) E_x^T)``) the block product is
computed from them: ``2 N q C (C + D)`` flops for q columns instead of ``2 N q C^2 D``.

Exactness: the carried K, H and their scores (float32 by default, like the products) are only
a filter; every pick is the best *exact* score (``K_x``, ``H_x`` from scratch in float64 from
``M^-1``, ``F_S`` and the input ``V``, O(C d^2) each; exact ties: lowest index forward,
earliest chosen backward). Carried values are rounded relative to their size when they were
last computed from scratch, and scores shrink as points are chosen (by 100x over 300 steps
on the benchmark problems), so the error of a carried score is bounded relative to its
candidate's ``ref``, the top score at that time: ``band_x = max(100 eps scale,
10 rate ref_x)``, ``rate`` being the largest error per unit of ref seen so far (about 1e-6 in
float32). Candidates are re-scored exactly in decreasing order of ``carried + band`` until
the next bound falls below the best exact score; a winner whose ``carried - band`` beats
every other bound needs no re-scoring (once the phase has measured errors). When a step
re-scores ``refresh_at`` candidates or more, the stale ones next in line (ref above twice
today's scale; at most 16x as many as were re-scored) are recomputed from scratch in the
product dtype, which resets their ref. The band is empirical (10x the errors seen), as
before; the tests check picks against the explicit-inverse float64 reference through near
ties and the carried updates against from-scratch values. ``M^-1`` itself is float64 and
updated by the same operations whether a step is guessed or replayed, so a block changes the
speed, never the picks.

Products below float32 (docs/benchmarks.md, session 7): PyTorch's CPU bf16 GEMM rounds its
result to bf16 (no float32-result bf16 GEMM on CPU), so a split-bf16 product cannot be formed.
int8 limbs with exact int32 sums (AMX through oneDNN) were built and measured: with the 64
largest-norm features kept in float32 they matched float32's accuracy on the FisherMask
benchmark and ran the block product 1.6x faster on two threads (~5 % end to end), but their
representation error depends on the data, and a small case picked differently from the
reference under the empirical band; a floor covering that error re-scored 20x more. Products
stay float32 (or float64): their rounding is bounded for every input.
"""

from __future__ import annotations

import bisect
import math
import operator
from dataclasses import dataclass

import torch
from torch import Tensor

from fishermask.errors import ConfigError, check_positive

_CARRY = torch.float64  # dtype of M^-1, F_S and the exact re-scoring
_MAX_COLUMNS = 320  # widest block product [N C, d] x [d, 2 b C]: b <= 320 / (2 C)
_PRODUCT_DTYPES = (torch.float32, torch.float64)
_FOLD_ROWS = 5120  # rows of V per chunk of the block product (about 6 MB at 320 columns)
_COMPACT_BYTES = 1 << 30  # largest copy of the free candidates' rows made to drop chosen ones
_SNAPSHOT_BYTES = 1 << 28  # keep M^-1 after each guessed step when a block's copies fit
_REFRESH_FACTOR = 16  # a partial refresh recomputes up to this many times the re-scored count
_PRUNE_TOP = 32  # carried scores computed first, by largest tr(H), to bound the best score
_PRUNE_WAIT = 16  # picks without pruning after one where it would not halve the work
_TRACE_CHUNK = 16384  # candidates per vectorised carried-score pass ([C, 2C, chunk] buffer)
_FACTOR_CHUNK = 1 << 19  # values of Q (r' x G q) per chunk of a factored block product (2 MiB)
# Memory bounds (docs/benchmarks.md, "The paper's mask size"): above _LEAN_BYTES per d x d
# float64 matrix (d > 11 585) the set-up runs in place on CPU: F_S and M are accumulated by
# in-place GEMMs, M is factorised and inverted in place by LAPACK, the initial K, H come from the
# float64 M^-1 and F_S (no float32 copies of them), so it holds two d x d float64 matrices (F_S,
# M^-1) and one chunk at a time; a chunk of candidates (also a batch of exact re-scorings) is
# then at most _LEAN_CHUNK_BYTES in float64. Below, chunks are at most _CHUNK_BYTES (4 096
# candidates up to C d = 65 536).
_CHUNK_BYTES = 1 << 31
_LEAN_CHUNK_BYTES = 1 << 27
_LEAN_BYTES = 1 << 30


def _chunk_rows(chunk_size: int, c: int, d: int, lean: bool) -> int:
    """Candidates per chunk: ``chunk_size``, fewer when their float64 rows exceed the bound."""
    bound = _LEAN_CHUNK_BYTES if lean else _CHUNK_BYTES
    return max(1, min(chunk_size, bound // (8 * c * d)))


def _lean(d: int, device: torch.device) -> bool:
    """Whether the in-place set-up applies (d x d float64 above _LEAN_BYTES, on CPU)."""
    return device.type == "cpu" and 8 * d * d > _LEAN_BYTES


def mean_fisher(*vs: Tensor, dtype: torch.dtype | None = None, chunk_size: int = 4096) -> Tensor:
    """``F_S``: the mean of ``V[x]^T V[x]`` over all rows of all arguments; ``[d, d]``.

    Each argument is ``[n_i, C, d]`` (it may be a disk-backed tensor, read chunk by chunk).
    ``dtype`` (default: the first input's) is the dtype of the products and the result; chunks
    of ``chunk_size`` samples (fewer when they would exceed 2 GiB in float64, 128 MiB above
    d = 11 585) are converted one at a time. For d > 11 585 on CPU the products accumulate in
    place (``addmm_``), so the only d x d matrix is the result.
    """
    rows = sum(v.shape[0] for v in vs)
    if rows == 0:
        raise ConfigError("mean_fisher needs at least one sample; all arguments are empty.")
    c, d = vs[0].shape[-2:]
    acc = vs[0].new_zeros(d, d, dtype=dtype or vs[0].dtype)
    lean = _lean(d, acc.device)
    chunk = _chunk_rows(chunk_size, c, d, lean)
    for v in vs:
        for start in range(0, v.shape[0], chunk):
            flat = v[start : start + chunk].reshape(-1, d).to(acc)  # [b C, d]
            if lean:
                acc.addmm_(flat.T, flat)
            else:
                acc += flat.T @ flat
    return acc.div_(rows)


def _mirror_upper(m: Tensor, step: int = 1024) -> Tensor:
    """Copy the upper triangle of square ``m`` into its lower one, in place, in row blocks."""
    d = m.shape[0]
    for r in range(0, d, step):
        e = min(r + step, d)
        m[r:e, :r] = m[:r, r:e].T
        blk = m[r:e, r:e]
        blk.copy_(blk.triu() + blk.triu(1).T)
    return m


def _lean_inverse(vl: Tensor, lam: float, weight: float, chunk: int) -> Tensor:
    """``M^-1`` for ``M = lam I + weight * A^T A``, ``A`` = the rows of ``vl`` ``[nL C, d]``;
    float64 CPU, with one d x d buffer.

    Few labeled rows (``3 nL C < d``, the paper's case: 2 500 rows, d = 22 350): Woodbury,
    ``M^-1 = (I - W^T W) / lam`` with ``W = L^-1 A``, ``L L^T = (lam / weight) I + A A^T``, in
    O(d^2 nL C) instead of O(d^3). Otherwise M is accumulated by in-place GEMMs over chunks of
    ``vl``, factorised (LAPACK ``dpotrf``) and inverted (``dpotri``) in place. Either way the
    upper triangle is mirrored, so the result is exactly symmetric.
    """
    d = vl.shape[-1]
    rows = vl.shape[0] * vl.shape[1]
    if 0 < 3 * rows < d:
        a = vl.reshape(rows, d).to(_CARRY)  # [r, d]
        gram = a @ a.T  # [r, r]
        gram.diagonal().add_(lam / weight)
        w = torch.linalg.solve_triangular(torch.linalg.cholesky(gram), a, upper=False)
        del a, gram
        m = torch.mm(w.T, w).mul_(-1 / lam)  # [d, d]
        m.diagonal().add_(1 / lam)
        return _mirror_upper(m)
    from scipy.linalg import lapack

    m = torch.zeros(d, d, dtype=_CARRY)
    m.diagonal().fill_(lam)
    for start in range(0, vl.shape[0], chunk):
        flat = vl[start : start + chunk].reshape(-1, d).to(_CARRY)
        m.addmm_(flat.T, flat, alpha=weight)
    f = m.numpy().T  # M is symmetric: its Fortran-order view is itself, no copy
    f, info = lapack.dpotrf(f, lower=1, overwrite_a=1, clean=0)
    if info == 0:
        f, info = lapack.dpotri(f, lower=1, overwrite_c=1)
    if info != 0:
        raise ConfigError(f"M = lam I + F_C is not positive definite (LAPACK info {info}).")
    if f.ctypes.data != m.data_ptr():  # LAPACK worked on a copy after all: take it back
        m.copy_(torch.from_numpy(f.T))
    return _mirror_upper(m)  # the inverse is in m's upper triangle (f's lower)


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


def _carried_traces(h: Tensor, k: Tensor, sigma: float, chunk: int = _TRACE_CHUNK) -> Tensor:
    """:func:`_traces` of carried (filter) values, vectorised across the candidates.

    ``sigma I + K_x`` is symmetric definite (positive when adding, ``K_x = V_x^T M^-1 V_x``;
    negative when removing a chosen point, ``K_x < I``), so ``A = I + sigma K_x`` is
    positive definite and ``tr(H (sigma I + K)^-1) = sigma tr(H A^-1)``. With ``A = L D L^T``
    (unit lower L), ``tr(H A^-1) = sum_j (L^-1 H L^-T)_jj / D_j``: symmetric Gaussian
    elimination without pivoting (stable for a positive definite A) applied to ``[A | H]``
    rows and to H's columns, each pivot one elementwise operation over all candidates at
    once in a ``[C, 2C, n]`` layout (candidates last, contiguous), instead of one LAPACK
    LU factorisation and solve per 10 x 10 matrix (3-4x faster for 6 750 candidates). A
    zero pivot gives inf/NaN (re-scored first, as a singular LU did); rounding that makes
    A indefinite gives a finite wrong value, as LU gives for a nearly singular A: the
    carried scores are only a filter. ``chunk`` candidates at a time bound the buffer.
    """
    n, c, _ = k.shape
    out = torch.empty(n, dtype=k.dtype, device=k.device)
    for start in range(0, n, chunk):
        end = min(start + chunk, n)
        x = torch.empty(c, 2 * c, end - start, dtype=k.dtype, device=k.device)  # [A | H]
        a, hh = x[:, :c], x[:, c:]
        a.copy_(k[start:end].permute(1, 2, 0))
        if sigma < 0:
            a.neg_()
        a.diagonal(dim1=0, dim2=1).add_(1.0)
        hh.copy_(h[start:end].permute(1, 2, 0))
        col = torch.empty(c, end - start, dtype=k.dtype, device=k.device)
        for j in range(c - 1):
            cj = col[: c - 1 - j]  # the multipliers A_ij / A_jj, i > j
            torch.div(x[j + 1 :, j], x[j, j], out=cj)
            # row operation on A (its trailing columns) and H (all columns) ...
            x[j + 1 :, j + 1 :].addcmul_(cj[:, None], x[j, j + 1 :][None], value=-1)
            # ... and the same column operation on H (H_ij already has its row operation)
            hh[j + 1 :, j + 1 :].addcmul_(hh[j + 1 :, j][:, None], cj[None], value=-1)
        tr = (hh.diagonal(dim1=0, dim2=1) / a.diagonal(dim1=0, dim2=1)).sum(-1)
        out[start:end] = tr if sigma > 0 else -tr
    return out


@dataclass
class _Step:
    """One greedy step's low-rank correction: the point (phase position), ``W^T`` and
    ``S^-1`` of the module docstring (float64, for M^-1), and the product-dtype columns
    ``[L^T W^T; Z^T]`` whose product with a candidate's rows gives its ``Y``, ``Z`` (see
    :meth:`_Greedy.apply`), with the signs ``D_s`` of ``S^-1 = L D_s L^T``."""

    pos: int
    wt: Tensor  # [C, d]
    s_inv: Tensor  # [C, C]
    cols: Tensor  # [2C, d], product dtype, candidates' scale folded in
    signs: Tensor | None  # [C] product dtype, None when all +1 (S positive definite)


def _woodbury(
    a_inv: Tensor, wt: Tensor, s_inv: Tensor, in_place: bool = False, out: Tensor | None = None
) -> Tensor:
    """``M^-1 - W S^-1 W^T`` (one fused product; the same operations wherever it is applied);
    ``in_place`` overwrites ``a_inv`` (the lean set-up: no second d x d matrix); ``out``: a
    spare d x d buffer for the result (same values as a new tensor, without allocating one)."""
    if in_place:
        return a_inv.addmm_(wt.T, s_inv @ wt, alpha=-1)
    return torch.addmm(a_inv, wt.T, s_inv @ wt, alpha=-1, out=out)


@dataclass
class _Phase:
    """Candidates of one phase: their global ids, product-dtype rows and carried K_x, H_x."""

    ids: Tensor  # [r] indices into V_unlabeled
    x: Tensor  # [r C, d] in the product dtype, unscaled
    k: Tensor  # [r, C, C] product dtype
    h: Tensor  # [r, C, C] product dtype
    free: Tensor  # [r] bool: still eligible for this phase's picks
    ref: Tensor  # [r] float64: score scale when the carried K_x, H_x were last from scratch


class _Greedy:
    """State shared by both phases: ``M^-1``, ``F_S``, the scale and the near-tie band."""

    def __init__(
        self, vu: Tensor, fs: Tensor, a_inv: Tensor, s: float, pdt: torch.dtype, block: int
    ) -> None:
        self.vu, self.fs, self.a_inv, self.s, self.pdt = vu, fs, a_inv, s, pdt
        self.c, self.d = vu.shape[1], vu.shape[2]
        self.eye = torch.eye(self.c, dtype=_CARRY, device=vu.device)
        self.block = block
        self.base_tol = 100 * torch.finfo(pdt).eps
        self.rate = 0.0  # largest carried-score error seen, per unit of the candidate's ref
        self.fs_w: Tensor | None = None  # F_S in the product dtype, for refreshes
        self.rescored = 0  # statistics for the benchmark
        self.refreshes = 0
        self.refreshed = 0
        self.compactions = 0
        self.measured = False  # whether this phase has re-scored anyone yet
        self.refresh_at = 4
        self.refresh_factor = _REFRESH_FACTOR
        self.buf: Tensor | None = None  # the block product, reused
        self.snaps: list[Tensor] = []  # M^-1 after each step of the block being prepared
        self.block_start: Tensor | None = None  # M^-1 the block's replay starts from
        self.pool: list[Tensor] = []  # d x d buffers for the next M^-1 (see _spare)
        # the replay reuses those snapshots when they fit, else repeats the same Woodbury ops
        self.keep_snaps = _SNAPSHOT_BYTES >= block * self.d**2 * 8
        self.misses = 0
        self.steps = 0
        self.pruned = 0  # candidates whose carried score a pick did not need (tr(H) bound)
        # (A [N, C, G], E [N, D]) with V[n, c, g*D + i] = A[n, c, g] E[n, i], product dtype
        self.factors: tuple[Tensor, Tensor] | None = None
        self.prune_wait = 0  # picks before pruning is tried again
        self.rescore_cap = 256  # most candidates re-scored in one batch (a chunk when lean)
        self.in_place = False  # M^-1 updated in place (lean: one-step blocks, no copy kept)
        self.lean = False  # no d x d copies in the product dtype (refreshes in float64)

    # --- exact quantities -------------------------------------------------------------------
    def exact(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """K_x and H_x of candidates ``ids`` from scratch in float64: ``[r, C, C]`` each."""
        x = self.vu[ids].to(_CARRY) * self.s  # [r, C, d]
        z = x @ self.a_inv  # [r, C, d]
        return z @ x.transpose(1, 2), (z @ self.fs) @ z.transpose(1, 2)

    def refresh(self, ph: _Phase, sel: Tensor, scale: float, chunk: int) -> None:
        """Recompute the carried K_x, H_x of positions ``sel`` from scratch in the product
        dtype (as the set-up does; O(C d^2) each at the wide-GEMM rate) and reset their ref.
        Lean set-up: exactly in float64, with no product-dtype copy of M^-1."""
        if self.lean:
            for start in range(0, len(sel), chunk):
                part = sel[start : start + chunk]
                k_ex, h_ex = self.exact(ph.ids[part])
                ph.k[part], ph.h[part] = k_ex.to(ph.k.dtype), h_ex.to(ph.h.dtype)
        else:
            if self.fs_w is None:
                self.fs_w = self.fs.to(self.pdt)
            a_w = self.a_inv.to(self.pdt)
            s2 = self.s**2
            for start in range(0, len(sel), chunk):
                part = sel[start : start + chunk]
                v = ph.x.view(-1, self.c, self.d)[part]  # [b, C, d]
                z = v @ a_w  # [b, C, d]
                ph.k[part] = (z @ v.transpose(1, 2)) * s2
                ph.h[part] = ((z @ self.fs_w) @ z.transpose(1, 2)) * s2
        ph.ref[sel] = scale
        self.refreshed += len(sel)
        self.refreshes += 1

    def prepare(self, ph: _Phase, pos: int, sigma: float) -> _Step:
        """The correction of adding (sigma=+1) / removing (-1) candidate ``pos``; updates M^-1."""
        # row-major [C, d] forms: M^-1 and F_S are symmetric, and x^T A runs several times
        # faster than A x on CPUs where the skinny product is memory-bound
        x_y = self.vu[ph.ids[pos]].to(_CARRY) * self.s  # [C, d]
        wt = x_y @ self.a_inv  # W^T, [C, d]
        fwt = wt @ self.fs  # (F_S W)^T, [C, d]
        tt = fwt @ self.a_inv  # T^T, [C, d]
        p = wt @ fwt.T  # [C, C]
        s_inv = torch.linalg.inv(sigma * self.eye + x_y @ wt.T)  # exact K_y = X_y^T M^-1 X_y
        self.a_inv = _woodbury(self.a_inv, wt, s_inv, self.in_place, self._spare())
        if self.keep_snaps:
            self.snaps.append(self.a_inv)
        # S^-1 = L D_s L^T (eigenvectors scaled by sqrt|eigenvalue|, D_s their signs)
        evals, evecs = torch.linalg.eigh((s_inv + s_inv.T) / 2)
        lt = (evecs * evals.abs().sqrt()).T  # L^T, [C, C]
        signs = evals.sign()
        yt = lt @ wt  # (W L)^T, [C, d]
        g = lt @ p @ lt.T  # L^T P L
        zt = lt @ tt - 0.5 * (g * signs) @ yt  # (T L - W L D_s G / 2)^T
        cols = (torch.cat([yt, zt]) * self.s).to(self.pdt)
        neg = bool((signs < 0).any())
        return _Step(pos, wt, s_inv, cols, signs.to(self.pdt) if neg else None)

    # --- carried quantities ------------------------------------------------------------------
    @staticmethod
    def apply(k: Tensor, h: Tensor, yz: Tensor, st: _Step) -> None:
        """Fold one correction into carried K, H (in place), all in the product dtype.

        ``yz``: ``[r, 2C, C]``, each candidate's ``Y`` (rows ``:C``) above its ``Z`` (rows
        ``C:``), the candidates' rows times ``st.cols``. With ``S^-1 = L D_s L^T``:
        ``U = Q S^-1 = Y_s L^T`` where ``Y = Q L``, ``Y_s = Y D_s``, so
        ``K - U Q^T = K - Y Y_s^T`` and ``H - R U^T - U R^T + U P U^T = H - (E + E^T)`` with
        ``E = Z Y_s^T``, ``Z = R L - Y D_s G / 2``, ``G = L^T P L``: one batched product
        ``[Y; Z] Y_s^T`` gives both.
        """
        c = k.shape[-1]
        y = yz[:, :c]
        ys = y if st.signs is None else y * st.signs
        prod = torch.bmm(yz, ys.transpose(1, 2))  # [r, 2C, C]: Y Y_s^T over E
        k -= prod[:, :c]
        e = prod[:, c:]
        h -= e
        h -= e.transpose(1, 2)

    @staticmethod
    def free_traces(ph: _Phase, pos: Tensor, sigma: float) -> Tensor:
        """Carried scores of the free positions ``pos``: computed for every row and then
        indexed (chosen rows are at most a sixteenth of the phase once compacted), so the
        carried K, H are read in place instead of gathered into copies."""
        return _carried_traces(ph.h, ph.k, sigma)[pos]

    def scores(self, ph: _Phase, pos: Tensor, sigma: float) -> tuple[Tensor, Tensor | None, float]:
        """Carried scores of the free positions ``pos`` (product dtype), which of them were
        computed (None: all) and the scale (the largest finite ``|score|``).

        Adding (sigma = +1), a carried score ``tr(H (I + K)^-1)`` is at most ``tr(H)``
        (``K`` positive semi-definite, ``H`` too); with a margin of ``base_tol`` for rounding
        that is an upper bound as good as the score itself for the re-scoring order. So the
        scores are computed only for the candidates whose ``tr(H) + band`` reaches
        ``max(score - band)`` over the ``_PRUNE_TOP`` largest ``tr(H)`` (a lower bound on
        the best exact score); the others keep ``tr(H)`` as their value and, being below
        that bound, are never re-scored or picked. Where that prunes less than half (every
        score close to its ``tr(H)`` bound and to the top, e.g. FisherMask's untrained
        gradients), every score is computed and pruning is retried ``_PRUNE_WAIT`` picks
        later. Removing (sigma = -1) every score is computed.
        """
        e = len(pos)
        if sigma < 0 or e <= 2 * _PRUNE_TOP or self.prune_wait > 0:
            self.prune_wait = max(self.prune_wait - 1, 0)
            approx = self.free_traces(ph, pos, sigma)
            return approx, None, _scale(approx)
        ub = ph.h.diagonal(dim1=1, dim2=2).sum(-1)[pos].to(_CARRY)  # tr(H_x) >= score
        ub += self.base_tol * ub.abs()
        ref = ph.ref[pos]
        top = torch.topk(ub, _PRUNE_TOP).indices
        first = _carried_traces(ph.h[pos[top]], ph.k[pos[top]], sigma)
        scale = _scale(first)
        band = (10 * self.rate * ref).clamp_(min=self.base_tol * scale)
        low = (first.to(_CARRY) - band[top]).nan_to_num_(nan=-math.inf, posinf=-math.inf).max()
        cont = torch.nonzero(ub + band >= low).squeeze(1)
        if 2 * len(cont) > e:
            self.prune_wait = _PRUNE_WAIT
            approx = self.free_traces(ph, pos, sigma)
            return approx, None, _scale(approx)
        vals = _carried_traces(ph.h[pos[cont]], ph.k[pos[cont]], sigma)
        final = _scale(vals)
        if final != scale:  # a larger scale widens the bands: check the others still fall short
            band = (10 * self.rate * ref).clamp_(min=self.base_tol * final)
            low2 = (vals.to(_CARRY) - band[cont]).nan_to_num_(nan=-math.inf, posinf=-math.inf).max()
            out = torch.ones(e, dtype=torch.bool, device=pos.device)
            out[cont] = False
            if bool((ub[out] + band[out] >= low2).any()):
                approx = self.free_traces(ph, pos, sigma)
                return approx, None, _scale(approx)
        approx = ub.to(ph.h.dtype)
        approx[cont] = vals
        known = torch.zeros(e, dtype=torch.bool, device=pos.device)
        known[cont] = True
        self.pruned += e - len(cont)
        return approx, known, final

    def pick(self, ph: _Phase, sigma: float, chunk: int) -> tuple[int, Tensor, Tensor]:
        """Best eligible position, its near-ties re-scored exactly in float64.

        Returns the position and the eligible positions with their carried scores (for the
        speculation). A candidate's carried score may be off by ``10 rate ref_x`` (at least
        ``base_tol`` times the top score): candidates are re-scored from scratch in
        decreasing order of that upper bound until the next bound falls below the best exact
        score. When that took ``refresh_at`` re-scorings or more, the stale candidates next
        in that order (ref well above today's scale) are recomputed in the product dtype.
        """
        pos = torch.nonzero(ph.free).squeeze(1)  # ascending
        approx, known, scale = self.scores(ph, pos, sigma)  # [e]
        ref = ph.ref[pos]  # [e] float64
        band = (10 * self.rate * ref).clamp_(min=self.base_tol * scale)
        upper = torch.where(torch.isnan(approx), math.inf, approx + band)  # NaN: re-score first
        order = torch.argsort(upper, descending=True, stable=True)
        upper_cpu = upper[order].tolist()
        top = int(order[0])
        # a clear winner needs no re-scoring: its lower bound beats every other upper bound
        # (once this phase has measured errors: removals may amplify them more than adds)
        # (a pruned candidate's value is an upper bound only: never a clear winner)
        clear = self.measured and (known is None or bool(known[top]))
        if len(upper_cpu) == 1 or (clear and float(approx[top] - band[top]) > upper_cpu[1]):
            return int(pos[top]), pos, approx
        best, done, size = -math.inf, 0, 1
        seen: list[Tensor] = []
        scores: list[Tensor] = []
        while done < len(upper_cpu):
            if done and upper_cpu[done] < best:
                break
            sel = order[done : done + size]
            at = pos[sel]
            k_ex, h_ex = self.exact(ph.ids[at])
            ph.k[at], ph.h[at] = k_ex.to(ph.k.dtype), h_ex.to(ph.h.dtype)
            ex = _traces(h_ex, k_ex, sigma)
            err = (ex - approx[sel]).abs() / ref[sel]
            err = err[torch.isfinite(err) if known is None else torch.isfinite(err) & known[sel]]
            if err.numel():
                self.rate = max(self.rate, float(err.max()))
                self.measured = True
            ph.ref[at] = scale
            best = max(best, float(ex.max()))
            seen.append(sel)
            scores.append(ex)
            done += len(sel)
            # next: every candidate whose bound reaches the best so far (sorted: a prefix)
            reach = bisect.bisect_right(upper_cpu, -best, lo=done, key=operator.neg) - done
            size = min(max(reach, 1), self.rescore_cap)
        self.rescored += done
        cand, ex = torch.cat(seen), torch.cat(scores)
        # the best exact score; exact ties go to the lowest position (first chosen / index)
        winners = cand[ex == ex.max()] if not torch.isnan(ex).all() else cand[:1]
        if done >= self.refresh_at:
            rest = order[done:]
            stale = rest[ref[rest] > 2 * scale][: self.refresh_factor * done]
            if stale.numel():
                self.refresh(ph, pos[stale], scale, chunk)
                approx[stale] = _carried_traces(ph.h[pos[stale]], ph.k[pos[stale]], sigma)
        return int(pos[int(winners.min())]), pos, approx

    def speculate(
        self, ph: _Phase, sigma: float, first: _Step, count: int, pos: Tensor, approx: Tensor
    ) -> list[_Step]:
        """Guess the ``count`` picks after ``first`` among the best carried scores (cheap,
        float32 products on that subset); advances M^-1 through the guesses."""
        c = self.c
        keep = pos != first.pos
        pos, approx = pos[keep], approx[keep]
        m = min(len(pos), max(8 * count, 64))
        if m == 0 or count == 0:
            return []
        sub = pos[torch.topk(approx, m).indices]  # [m]
        k, h = ph.k[sub].clone(), ph.h[sub].clone()
        x = ph.x.view(-1, c, self.d)[sub].reshape(m * c, self.d)  # [m C, d]
        taken = torch.zeros(m, dtype=torch.bool, device=sub.device)
        steps, prev = [], first
        for _ in range(min(count, m)):
            yz = (x @ prev.cols.T).view(m, c, 2, c).transpose(1, 2)  # [m, 2, C, C]
            self.apply(k, h, yz.reshape(m, 2 * c, c), prev)
            score = _carried_traces(h, k, sigma).masked_fill(taken, -math.inf)
            j = int(torch.argmax(score))
            taken[j] = True
            prev = self.prepare(ph, int(sub[j]), sigma)
            steps.append(prev)
        return steps

    def run(self, ph: _Phase, sigma: float, steps: int, chunk: int) -> list[int]:
        """``steps`` greedy picks (positions in ``ph``), in blocks of verified guesses."""
        picks: list[int] = []
        forced: int | None = None
        self.measured = False
        size = min(4, self.block)
        while len(picks) < steps:
            n_block = min(size, steps - len(picks))
            if forced is None:
                ph = self.compact(ph)
                y, pos, approx = self.pick(ph, sigma, chunk)
            else:
                y, pos, approx = forced, None, None
            # a one-step block keeps M^-1 as prepare leaves it (the replay would redo the same
            # operations on the same inputs); longer blocks replay from a0
            a0 = self.a_inv if n_block > 1 else None
            self.snaps, self.block_start = [], a0
            block = [self.prepare(ph, y, sigma)]
            if n_block > 1:
                if pos is None:
                    pos = torch.nonzero(ph.free).squeeze(1)
                    approx = self.free_traces(ph, pos, sigma)
                block += self.speculate(ph, sigma, block[0], n_block - 1, pos, approx)
            # fold: one GEMM of rank 2 b C gives Y_x, Z_x of every candidate for every step
            g = self.fold(ph.x, torch.cat([st.cols for st in block]), ph.ids)  # [b, r, 2C, C]
            if a0 is not None:
                self.a_inv = a0  # replay: M^-1 steps through the block again
            forced = None
            for j, st in enumerate(block):
                if j:
                    y = self.pick(ph, sigma, chunk)[0]
                    if y != st.pos:  # wrong guess: M^-1 is at step j; restart from y
                        forced = y
                        self.misses += 1
                        break
                self.apply(ph.k, ph.h, g[j], st)
                if a0 is not None:  # (a one-step block: M^-1 is already past this step)
                    if self.keep_snaps:
                        self.a_inv = self.snaps[j]
                    else:
                        self._downdate(st)
                ph.free[st.pos] = False
                picks.append(int(ph.ids[st.pos]))
                self.steps += 1
            size = min(2 * size, self.block) if forced is None else max(2, size // 2)
        return picks

    def compact(self, ph: _Phase) -> _Phase:
        """The phase without its chosen rows once they are a sixteenth of it (every step's
        products and scores run over all rows), if the copy of the free rows takes at most
        ``_COMPACT_BYTES``; the rows keep their order (exact ties: lowest position)."""
        rows = len(ph.ids)
        keep = torch.nonzero(ph.free).squeeze(1)
        size = len(keep) * self.c * self.d * ph.x.element_size()
        if 16 * (rows - len(keep)) < rows or size > _COMPACT_BYTES:
            return ph
        x = ph.x.view(rows, self.c, self.d)[keep].reshape(-1, self.d)
        self.compactions += 1
        return _Phase(ph.ids[keep], x, ph.k[keep], ph.h[keep], ph.free[keep], ph.ref[keep])

    def fold(self, x: Tensor, cols: Tensor, ids: Tensor | None = None) -> Tensor:
        """``x @ cols^T`` rearranged as ``[b, r, 2C, C]`` (step, candidate, Y rows over Z
        rows, column), so that each step's ``[Y; Z]`` blocks are contiguous: computed in row
        chunks whose rearranging copy stays in cache (a strided or whole-block rearrangement
        of the [r C, 2 b C] product cost up to 20 % of a step). With ``factors`` (and ``ids``,
        the candidates of the rows of ``x``) the same product comes from them:
        :meth:`_factored`."""
        c, rows = self.c, x.shape[0]
        b = cols.shape[0] // (2 * c)
        if self.buf is None or self.buf.numel() < b * 2 * rows * c:
            self.buf = x.new_empty(b * 2 * rows * c)
        out = self.buf[: b * 2 * rows * c].view(b, rows // c, 2, c, c)
        if self.factors is not None and ids is not None:
            self._factored(out, cols, ids)
            return out.view(b, rows // c, 2 * c, c)
        step = _FOLD_ROWS // c * c
        for start in range(0, rows, step):
            part = x[start : start + step] @ cols.T  # [rows', b 2C]
            cand = part.shape[0] // c
            out[:, start // c : start // c + cand] = part.view(cand, c, b, 2, c).permute(
                2, 0, 3, 1, 4
            )
        return out.view(b, rows // c, 2 * c, c)

    def _factored(self, out: Tensor, cols: Tensor, ids: Tensor) -> None:
        """The block product from ``V_x = A_x (I_G (x) E_x^T)`` (BAIT: ``G = C``):
        ``V_x cols^T = A_x Q_x`` with ``Q_x[g] = E_x^T cols[:, g D : (g+1) D]^T``, i.e. one GEMM
        ``[r, D] x [D, G q]`` and one batched ``[C, G] x [G, q]`` product per candidate
        (``q = 2 b C`` columns): ``2 r q G (D + C)`` flops instead of ``2 r q C G D``; in
        candidate chunks whose ``Q`` stays in cache."""
        a_all, e_all = self.factors
        c, (g, dim), q = self.c, (a_all.shape[2], e_all.shape[1]), cols.shape[0]
        b = q // (2 * c)
        p = cols.view(q, g, dim).permute(2, 1, 0).reshape(dim, g * q)  # [D, G q]
        step = max(1, _FACTOR_CHUNK // (g * q))
        for start in range(0, len(ids), step):
            part = ids[start : start + step]
            qx = (e_all[part] @ p).view(len(part), g, q)  # [r', G, q]
            res = torch.bmm(a_all[part], qx)  # [r', C, q]
            out[:, start : start + len(part)] = res.view(len(part), c, b, 2, c).permute(
                2, 0, 3, 1, 4
            )

    def _downdate(self, st: _Step) -> None:
        """Re-apply a step's M^-1 update exactly as :meth:`prepare` did (same operations)."""
        self.a_inv = _woodbury(self.a_inv, st.wt, st.s_inv, self.in_place, self._spare())

    def _spare(self) -> Tensor | None:
        """A d x d buffer for the next M^-1 that nothing may still read (not the current M^-1,
        the block's start or its snapshots): reusing a few buffers instead of allocating a
        new matrix per step (6 MB at d = 882: page faults, 40 % of the Woodbury update).
        At most ``block + 2`` buffers (those the snapshots take anyway), 3 without them;
        None in the lean set-up (its memory bound) or when all are busy (a new tensor then)."""
        if self.in_place or self.lean:
            return None
        busy = {id(self.a_inv), id(self.block_start), *map(id, self.snaps)}
        for m in self.pool:
            if id(m) not in busy:
                return m
        if len(self.pool) < (self.block + 2 if self.keep_snaps else 3):
            self.pool.append(torch.empty_like(self.a_inv))
            return self.pool[-1]
        return None


def _check_factors(
    factors: tuple[Tensor, Tensor], vu: Tensor, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """``factors`` of ``vu`` in ``dtype`` on its device, after checking their shapes and that
    they reproduce 16 rows of ``vu`` spread over it (to 1e-4 of each row's largest value, or
    to the precision of ``vu``'s dtype where that is coarser: a bfloat16 or float16 V holds
    the product rounded to it)."""
    n, c, d = vu.shape
    if not (isinstance(factors, tuple | list) and len(factors) == 2):
        raise ConfigError("`factors` must be a pair (A [N, C, G], E [N, D]).")
    a, e = factors
    if a.dim() != 3 or e.dim() != 2 or a.shape[:2] != (n, c) or e.shape[0] != n:
        raise ConfigError(
            f"`factors` have shapes {tuple(a.shape)} and {tuple(e.shape)}; V_unlabeled "
            f"{tuple(vu.shape)} needs A [{n}, {c}, G] and E [{n}, D]."
        )
    if a.shape[2] * e.shape[1] != d:
        raise ConfigError(f"`factors`: G * D = {a.shape[2]} * {e.shape[1]} must equal d = {d}.")
    rows = torch.linspace(0, n - 1, min(n, 16)).long().to(vu.device)
    a_s, e_s = a[rows].to(vu.device, torch.float64), e[rows].to(vu.device, torch.float64)
    rebuilt = (a_s[..., None] * e_s[:, None, None, :]).reshape(len(rows), c, d)
    given = vu[rows].to(torch.float64)
    rel = max(1e-4, torch.finfo(vu.dtype).eps) if vu.is_floating_point() else 1e-4
    tol = rel * given.abs().amax(dim=(1, 2), keepdim=True) + 1e-30
    if not bool(((rebuilt - given).abs() <= tol).all()):
        raise ConfigError(
            "`factors` do not reproduce V_unlabeled (V[n, c, g*D + i] = A[n, c, g] E[n, i])."
        )
    return a.to(vu.device, dtype).contiguous(), e.to(vu.device, dtype).contiguous()


def _scale(scores: Tensor) -> float:
    """The score scale: the largest finite ``|score|`` (1 when there is none, or it is 0)."""
    finite = scores[torch.isfinite(scores)]
    return (float(finite.abs().max()) if finite.numel() else 0.0) or 1.0


def _start_ref(k: Tensor, h: Tensor, sigma: float) -> Tensor:
    """Every candidate's ref at the start of a phase: the largest finite |carried score|."""
    scores = _carried_traces(h, k, sigma)
    finite = scores[torch.isfinite(scores)]
    scale = (float(finite.abs().max()) if finite.numel() else 0.0) or 1.0
    return torch.full((k.shape[0],), scale, dtype=_CARRY, device=k.device)


def greedy_select(
    V_unlabeled: Tensor,
    V_labeled: Tensor,
    budget: int,
    *,
    lam: float = 1.0,
    backward_steps: int = 1,
    pool_fisher: Tensor | None = None,
    chunk_size: int = 4096,
    product_dtype: torch.dtype = torch.float32,
    max_block: int | None = None,
    refresh_at: int = 4,
    stats: dict | None = None,
    factors: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Pick ``budget`` candidates by the greedy trace criterion, forward then backward.

    Args:
        V_unlabeled: ``[N, C, d]`` candidate matrices ``V[x]`` (rows = classes).
        V_labeled: ``[nL, C, d]`` for the labeled set (``nL`` may be 0).
        budget: B, the number of points to return (1 <= B <= N).
        lam: ridge constant lambda of ``M = lam I + F_C nL/(nL+B)``.
        backward_steps: the forward phase picks ``min((backward_steps+1) B, N)`` points, the
            backward phase then removes points until B remain (0: forward only).
        pool_fisher: ``F_S`` ``[d, d]``; default the mean of ``V[x]^T V[x]`` over all rows of
            both ``V_unlabeled`` and ``V_labeled`` (:func:`mean_fisher`).
        chunk_size: candidates per block in the set-up and refresh products (bounds memory).
        product_dtype: dtype of the big products (set-up and block products): float32
            (default) or float64. It changes the speed, not the picks: every pick is decided
            by exact float64 re-scoring.
        max_block: cap on the steps per block (default ``320 // (2 C)``, or 1 in the lean
            set-up; 1: one step at a time, no guessing).
        refresh_at: a step that re-scores at least this many candidates exactly recomputes
            the carried K, H of the stale candidates nearest the top (``_REFRESH_FACTOR``
            times as many as it re-scored) in the product dtype.
        factors: optional ``(A [N, C, G], E [N, D])`` with ``d = G D`` and
            ``V_unlabeled[n, c, g*D + i] = A[n, c, g] E[n, i]`` (BAIT's last-layer gradients:
            :func:`fishermask.fisher.bait_factors`). The block products are then computed
            from them, ``2 N q G (D + C)`` flops for q columns instead of ``2 N q C G D``
            (8x fewer for BAIT at C = 10, D = 64); everything else, the exact re-scoring
            included, uses ``V_unlabeled``, so the picks are the same. A few rows are checked
            against ``V_unlabeled``.
        stats: if given, filled with ``steps``, ``rescored`` (candidates re-scored exactly,
            all steps), ``refreshes`` (partial refreshes), ``refreshed`` (candidates
            recomputed by them), ``misses`` (wrong guesses), ``pruned`` (carried scores not
            computed, their ``tr(H)`` bound being out of reach) and ``rate`` (the largest error
            of a carried score seen, per unit of the score scale when it was last exact).

    Returns:
        LongTensor ``[B]`` of indices into ``V_unlabeled``, in the order chosen.

    Complexity: set-up O((N + nL) C d^2 + d^3); each step 4 N C^2 d flops in the block product
    (N: the free candidates, once chosen rows are dropped) plus O(N C^3) for the carried
    updates and scores and O(d^2 C) for ``M^-1``; exact re-scoring O(C d^2) per re-scored
    candidate (about one per step on the benchmark problems), partial refreshes O(C d^2) per
    refreshed candidate (a few per step); the backward phase starts by recomputing its
    candidates' K, H from scratch. Bytes moved per step: the block product reads V
    (N C d x 4 bytes in float32) once per block of b steps and writes N C 2C x 4 bytes per
    step; the carried K, H (2 N C^2 x 4 bytes) are read and written a few times per step;
    the float64 d x d matrices: each step reads M^-1 twice and F_S once for W, T and reads
    and writes M^-1 in its Woodbury update (40 d^2 bytes; 31 MB at d = 882, more than the
    step's share of V there, 20 GB at d = 22 348), each batch of exact re-scorings reads
    both (16 d^2), a replay without kept copies of M^-1 repeats the update (16 d^2), and a
    partial refresh converts M^-1 to the product dtype (12 d^2).
    Memory: the inputs (float32 V is used in place; other dtypes get one float32 copy),
    ``[b, N, 2C, C]`` float32 for a block, a copy of the free rows once chosen ones are
    dropped (only when it takes at most 1 GiB), ``M^-1`` after each step of a block (only when
    those b copies take at most 256 MiB), O(N C^2 + d^2) besides.

    Large d (a d x d float64 above 1 GiB, d > 11 585, on CPU): the lean set-up holds exactly two
    d x d float64 matrices, F_S and M^-1 (8 GB at d = 22 350), and chunks of at most 128 MiB:
    F_S and M accumulated in place, M factorised and inverted in place (LAPACK), the initial
    K, H from the float64 M^-1 and F_S, and by default one-step blocks with M^-1 updated in
    place (a longer block needs a copy of M^-1 to replay from). ``V_unlabeled`` may be a
    disk-backed tensor (:func:`fishermask.fisher.disk_tensor`) when it does not fit in
    memory: it is read in chunks, in one pass per block and a few rows per step.
    """
    vu, vl = V_unlabeled, V_labeled
    _validate(vu, vl, budget, lam, backward_steps, pool_fisher)
    if product_dtype not in _PRODUCT_DTYPES:
        raise ConfigError(f"`product_dtype`={product_dtype}, must be torch.float32 or float64.")
    n, c, d = vu.shape
    lean = _lean(d, vu.device)
    in_place = lean and max_block in (None, 1)  # lean: no copy of M^-1 for the replay
    if max_block is None:
        max_block = 1 if lean else max(1, _MAX_COLUMNS // (2 * c))
    check_positive("max_block", max_block)
    check_positive("refresh_at", refresh_at)
    n_lab = vl.shape[0]
    dev = vu.device
    fs = pool_fisher if pool_fisher is not None else mean_fisher(vu, vl, dtype=_CARRY)
    fs = fs.to(dtype=_CARRY, device=dev)  # [d, d]
    chunk_size = _chunk_rows(chunk_size, c, d, lean)
    if lean:
        a_inv = _lean_inverse(vl, lam, 1 / (n_lab + budget), chunk_size)
    else:
        m = lam * torch.eye(d, dtype=_CARRY, device=dev)  # [d, d]
        if n_lab:
            flat = vl.to(device=dev).reshape(-1, d).to(_CARRY)  # [nL C, d]
            m += (flat.T @ flat) / n_lab * (n_lab / (n_lab + budget))
        m = torch.linalg.cholesky(m)  # the factor replaces M
        a_inv = torch.cholesky_inverse(m)  # M^-1, [d, d]
        del m
    s = math.sqrt(budget / (n_lab + budget))  # scale of every V_x

    x = vu.reshape(n * c, d).to(product_dtype)  # [N C, d]; a view for float32 inputs
    # initial K_x, H_x (chunked, product dtype): Z = V A, K = s^2 Z V^T, H = s^2 Z F Z^T
    k_all = torch.empty(n, c, c, dtype=product_dtype, device=dev)
    h_all = torch.empty(n, c, c, dtype=product_dtype, device=dev)
    g = _Greedy(vu, fs, a_inv, s, product_dtype, max_block)
    g.refresh_at = refresh_at
    if factors is not None:
        g.factors = _check_factors(factors, vu, product_dtype)
    if lean:  # exact float64 K, H from M^-1 and F_S, no float32 copies of them
        g.rescore_cap, g.in_place, g.lean = min(256, chunk_size), in_place, True
        g.keep_snaps = False
        for start in range(0, n, chunk_size):
            ids = torch.arange(start, min(start + chunk_size, n), device=dev)
            k_ex, h_ex = g.exact(ids)
            k_all[start : start + chunk_size], h_all[start : start + chunk_size] = k_ex, h_ex
    else:
        a_w, fs_w = a_inv.to(product_dtype), fs.to(product_dtype)
        xv = x.view(n, c, d)
        for start in range(0, n, chunk_size):
            v = xv[start : start + chunk_size]  # [b, C, d]
            z = v @ a_w  # [b, C, d]
            k_all[start : start + chunk_size] = (z @ v.transpose(1, 2)) * s**2
            h_all[start : start + chunk_size] = ((z @ fs_w) @ z.transpose(1, 2)) * s**2
            del z
        del a_w, fs_w
    ids = torch.arange(n, device=dev)
    free = torch.ones(n, dtype=torch.bool, device=dev)
    fwd = _Phase(ids, x, k_all, h_all, free, _start_ref(k_all, h_all, 1.0))
    chosen = g.run(fwd, 1.0, min((backward_steps + 1) * budget, n), chunk_size)
    del fwd, k_all, h_all
    if len(chosen) > budget:  # backward phase over the chosen points, in the order chosen
        idx = torch.tensor(chosen, device=dev)
        r = len(chosen)
        k_b = torch.empty(r, c, c, dtype=product_dtype, device=dev)
        h_b = torch.empty_like(k_b)
        ref_b = torch.empty(r, dtype=_CARRY, device=dev)
        free = torch.ones(r, dtype=torch.bool, device=dev)
        bwd = _Phase(idx, x.view(n, c, d)[idx].reshape(-1, d), k_b, h_b, free, ref_b)
        everyone = torch.arange(r, device=dev)
        g.refresh(bwd, everyone, 1.0, chunk_size)  # the carried values of chosen points
        bwd.ref = _start_ref(k_b, h_b, -1.0)
        removed = set(g.run(bwd, -1.0, r - budget, chunk_size))
        chosen = [i for i in chosen if i not in removed]
    if stats is not None:
        stats.update(
            rescored=g.rescored,
            refreshes=g.refreshes,
            refreshed=g.refreshed,
            rate=g.rate,
            compactions=g.compactions,
            misses=g.misses,
            steps=g.steps,
            pruned=g.pruned,
        )
    return torch.tensor(chosen, dtype=torch.long, device=dev)
