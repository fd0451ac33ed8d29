"""K-center greedy as it was before the matrix-product rewrite (the same arithmetic, one
shared loop), kept for `kcenter_bench.py`: the new
`fishermask.strategies.kcenter.k_center_greedy` is timed beside these in one process and
must pick the same positions with the same distances as `exact_k_center_greedy`. Not part
of the package.

- `exact_k_center_greedy` (commit 7131caa): every squared distance by the broadcast
  formula ``((x - c) ** 2).sum()``, so exact ties go to the lowest position; the slow form.
- `cdist_k_center_greedy` (before 7131caa): labeled-center distances by ``torch.cdist``
  (fast, but ties decided by rounding); shown for speed only, its picks may differ.
"""

from __future__ import annotations

import torch

_BLOCK = 1 << 22  # entries of one [rows, chunk, D] difference block (16 MiB in float32)


def sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return (x - c).pow(2).sum(dim=-1)


def _exact_min_sq_dist(x: torch.Tensor, centers: torch.Tensor, chunk: int) -> torch.Tensor:
    u, dim = x.shape
    out = torch.full((u,), float("inf"), dtype=x.dtype, device=x.device)
    for i in range(0, len(centers), chunk):
        c = centers[i : i + chunk]  # [m, D]
        rows = max(1, _BLOCK // max(1, len(c) * dim))
        for j in range(0, u, rows):
            d = sq_dist(x[j : j + rows, None, :], c[None, :, :])  # [rows, m]
            out[j : j + rows] = torch.minimum(out[j : j + rows], d.min(dim=1).values)
    return out


def _cdist_min_sq_dist(x: torch.Tensor, centers: torch.Tensor, chunk: int) -> torch.Tensor:
    out = torch.full((len(x),), float("inf"), dtype=x.dtype, device=x.device)
    for i in range(0, len(centers), chunk):
        d = torch.cdist(x, centers[i : i + chunk]).pow(2)  # [U, chunk]
        out = torch.minimum(out, d.min(dim=1).values)
    return out


def _greedy(unlabeled, labeled, budget, generator, chunk, min_sq_dist):
    u = len(unlabeled)
    if len(labeled):
        min_d = min_sq_dist(unlabeled, labeled, chunk)
    else:
        min_d = torch.full((u,), float("inf"), dtype=unlabeled.dtype, device=unlabeled.device)
    chosen = torch.empty(budget, dtype=torch.int64)
    dist = torch.empty(budget, dtype=torch.float64)
    for t in range(budget):
        if t == 0 and not len(labeled):
            j = int(torch.randint(u, (1,), generator=generator))
        else:
            j = int(torch.argmax(min_d))
        chosen[t] = j
        dist[t] = float(min_d[j].clamp_min(0).sqrt()) if torch.isfinite(min_d[j]) else float("inf")
        min_d = torch.minimum(min_d, sq_dist(unlabeled, unlabeled[j]))  # [U]
        min_d[j] = -1.0  # never choose it again
    return chosen, dist


def exact_k_center_greedy(unlabeled, labeled, budget, *, generator=None, chunk=1024):
    return _greedy(unlabeled, labeled, budget, generator, chunk, _exact_min_sq_dist)


def cdist_k_center_greedy(unlabeled, labeled, budget, *, generator=None, chunk=1024):
    return _greedy(unlabeled, labeled, budget, generator, chunk, _cdist_min_sq_dist)
