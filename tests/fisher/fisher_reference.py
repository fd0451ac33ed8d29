"""Slow, obviously-correct references for fishermask.fisher (float64, tiny problems).

Index convention: N samples, C classes, d selection dimension, k masked weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def loop_grads(model: nn.Module, inputs: Tensor) -> list[list[dict[str, Tensor]]]:
    """Full gradients of log p(c|x_i) for every sample i and class c: one autograd call each."""
    params = dict(model.named_parameters())
    out = []
    for i in range(inputs.shape[0]):
        logp = F.log_softmax(model(inputs[i : i + 1]), dim=1)[0]  # [C]
        row = []
        for c in range(logp.shape[0]):
            grads = torch.autograd.grad(logp[c], list(params.values()), retain_graph=True)
            row.append(dict(zip(params, grads, strict=True)))
        out.append(row)
    return out


def loop_probs(model: nn.Module, inputs: Tensor) -> Tensor:
    with torch.no_grad():
        return torch.softmax(model(inputs), dim=1)  # [N, C]


def ref_diag_fisher(model: nn.Module, inputs: Tensor) -> dict[str, Tensor]:
    grads, probs = loop_grads(model, inputs), loop_probs(model, inputs)
    acc = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i, row in enumerate(grads):
        for c, g in enumerate(row):
            for n in acc:
                acc[n] += probs[i, c] * g[n] ** 2
    return {n: v / inputs.shape[0] for n, v in acc.items()}


def ref_masked_grads(
    model: nn.Module, inputs: Tensor, mask: dict[str, Tensor], scale: str
) -> Tensor:
    grads, probs = loop_grads(model, inputs), loop_probs(model, inputs)
    names = [n for n, _ in model.named_parameters() if n in mask]
    rows = []
    for i, row in enumerate(grads):
        per_class = []
        for c, g in enumerate(row):
            v = torch.cat([g[n][mask[n]] for n in names])  # boolean indexing is row-major
            per_class.append(v * (probs[i, c].sqrt() if scale == "sqrt_prob" else 1.0))
        rows.append(torch.stack(per_class))
    return torch.stack(rows)  # [N, C, k]


def ref_greedy_select(
    vu: Tensor,
    vl: Tensor,
    budget: int,
    lam: float,
    backward_steps: int,
    fs: Tensor | None = None,
) -> list[int]:
    """docs/methods.md §2.5 literally: explicit inverses of M and of each C x C matrix."""
    n, c, d = vu.shape
    n_lab = vl.shape[0]
    rows = torch.cat([vu, vl]).reshape(-1, d)
    if fs is None:
        fs = rows.T @ rows / (n + n_lab)
    m = lam * torch.eye(d, dtype=vu.dtype)
    if n_lab:
        lab = vl.reshape(-1, d)
        m = m + lab.T @ lab / n_lab * n_lab / (n_lab + budget)
    s = math.sqrt(budget / (n_lab + budget))
    vx = [vu[x].T * s for x in range(n)]  # V_x: [d, C]
    eye = torch.eye(c, dtype=vu.dtype)

    def score(m_inv: Tensor, x: int, sigma: float) -> float:
        v = vx[x]
        inner = torch.linalg.inv(sigma * eye + v.T @ m_inv @ v)
        return float(torch.trace(v.T @ m_inv @ fs @ m_inv @ v @ inner))

    chosen: list[int] = []
    for _ in range(min((backward_steps + 1) * budget, n)):
        m_inv = torch.linalg.inv(m)
        scores = {x: score(m_inv, x, 1.0) for x in range(n) if x not in chosen}
        best = max(scores, key=lambda x: (scores[x], -x))
        chosen.append(best)
        m = m + vx[best] @ vx[best].T
    while len(chosen) > budget:
        m_inv = torch.linalg.inv(m)
        drops = [score(m_inv, x, -1.0) for x in chosen]
        pos = max(range(len(chosen)), key=lambda i: (drops[i], -i))
        y = chosen.pop(pos)
        m = m - vx[y] @ vx[y].T
    return chosen


def ref_objective(vu: Tensor, vl: Tensor, chosen: list[int], budget: int, lam: float) -> float:
    """tr(M^-1 F_S) after adding ``chosen`` (what the greedy lowers)."""
    n, c, d = vu.shape
    n_lab = vl.shape[0]
    rows = torch.cat([vu, vl]).reshape(-1, d)
    fs = rows.T @ rows / (n + n_lab)
    m = lam * torch.eye(d, dtype=vu.dtype)
    if n_lab:
        lab = vl.reshape(-1, d)
        m = m + lab.T @ lab / (n_lab + budget)
    for x in chosen:
        m = m + vu[x].T @ vu[x] * budget / (n_lab + budget)
    return float(torch.trace(torch.linalg.solve(m, fs)))
