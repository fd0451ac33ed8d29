"""BatchBALD (Kirsch, van Amersfoort & Gal, NeurIPS 2019): greedy batch of maximal joint
mutual information between the labels and the weights.

Index convention: T MC-dropout samples, U unlabeled candidates, C classes, n items chosen
so far, J = C^n joint label configurations of the chosen items, M sampled configurations.

Greedy step n+1 picks the candidate x maximising (docs/methods.md §9.3)

    a(x) = H[y_1..y_n, y_x] - sum_{i in batch + x} E_t H[p_t(y_i)]

with every joint distribution the MC mixture P(y_1..y_k) = 1/T sum_t prod_i p_t(y_i).
The first pick is BALD's. The joint entropy of the chosen items with a candidate is

- **exact** while the chosen items have at most ``max_exact`` joint configurations
  (C^n <= max_exact): P_t(j) = prod_i p_t(y_i^j) is kept for all j, and
  H = -sum_{j,c} P(j,c) log P(j,c), P(j,c) = 1/T sum_t P_t(j) p_t(c|x);
- **sampled** beyond (the paper's estimator): M configurations y^m of the chosen items are
  drawn from their joint predictive (t_m uniform, then y_i ~ p_{t_m}(y_i), extended by one
  label per pick), and with w_m(t) = P_t(y^m) / sum_t' P_t'(y^m) and q_m = P(y^m),

      H ~= -1/M sum_m [ log q_m + sum_c r_mc log r_mc ],   r_mc = sum_t w_m(t) p_t(c|x),

  computed in log space, so long batches do not underflow. The exact joint is computed in
  float64; the sampled estimator's M x U x C products and entropies in float32 (3-4x faster
  on a CPU; rounding far below the estimator's sampling error), summed in float64.

Cost per greedy step: O(R T U C) multiply-adds with R = J (exact) or M (sampled); memory:
the MC probabilities (T U C float64) plus R x chunk x C for a chunk of candidates, chunks
sized so that this stays under ``max_elements`` float64 values (default 2^24, 128 MiB).
Measured times: docs/benchmarks.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fishermask.errors import check_positive
from fishermask.strategies.bald import _entropy, check_mc_model
from fishermask.strategies.base import QueryContext, Selection, Strategy
from fishermask.strategies.registry import register

_TINY = torch.finfo(torch.float64).tiny


def _plogp_sum(p: torch.Tensor) -> torch.Tensor:
    """``sum p log p`` of ``p [R, chunk, C]`` over R and C -> ``[chunk]`` float64 (0 log 0 = 0)."""
    return torch.special.xlogy(p, p).sum(dim=2, dtype=torch.float64).sum(dim=0)


def batchbald_select(
    mc_probs: torch.Tensor,
    budget: int,
    *,
    num_samples: int = 1000,
    max_exact: int | None = None,
    generator: torch.Generator | None = None,
    max_elements: int = 2**24,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy BatchBALD on MC probabilities ``[T, U, C]``.

    Args:
        mc_probs: probabilities of T stochastic passes for U candidates.
        budget: batch size B (<= U).
        num_samples: M, configurations drawn once the joint is no longer exact.
        max_exact: largest number of joint configurations C^n kept exactly
            (default ``num_samples``).
        generator: draws the sampled configurations (CPU).
        max_elements: bound on the float64 values of one chunk's joint tensor.

    Returns:
        ``(positions [B], scores [B])``: candidate positions in the order chosen, and the
        (estimated) joint mutual information of the batch after each pick (nats).
    """
    p = mc_probs.to(torch.float64)  # [T, U, C]
    p32 = p.to(torch.float32)  # the sampled estimator's products (see the module docstring)
    t_count, u_count, c_count = p.shape
    max_exact = num_samples if max_exact is None else max_exact
    cond = _entropy(p).mean(dim=0)  # [U] E_t H[p_t]
    available = torch.ones(u_count, dtype=torch.bool)
    picks = torch.empty(budget, dtype=torch.int64)
    scores = torch.empty(budget, dtype=torch.float64)
    cond_sum = 0.0
    # exact state: P_t(j) for the J configurations of the chosen items, [T, J]
    joint: torch.Tensor | None = torch.ones(t_count, 1, dtype=torch.float64, device=p.device)
    # sampled state: log P_t(y^m) [M, T] and the pass t_m each configuration was drawn from
    log_w: torch.Tensor | None = None
    t_of: torch.Tensor | None = None
    for step in range(budget):
        if joint is not None:
            h = _joint_entropy_exact(joint, p, max_elements)  # [U]
        else:
            assert log_w is not None
            h = _joint_entropy_sampled(log_w, p32, max_elements)  # [U]
        gain = (h - cond).cpu()
        gain[~available] = -math.inf
        best = int(torch.argmax(gain))  # first of equal maxima
        picks[step] = best
        cond_sum += float(cond[best])
        scores[step] = float(h[best]) - cond_sum
        available[best] = False
        if step == budget - 1:
            break
        p_new = p[:, best, :]  # [T, C]
        if joint is not None and joint.shape[1] * c_count <= max_exact:
            joint = (joint[:, :, None] * p_new[:, None, :]).reshape(t_count, -1)
        else:
            if joint is not None:  # switch: draw M configurations of the exact joint
                t_of = torch.randint(t_count, (num_samples,), generator=generator)
                rows = joint.cpu()[t_of]  # [M, J], each row sums to 1
                j = torch.multinomial(rows, 1, generator=generator).squeeze(1)  # [M]
                log_w = torch.log(joint[:, j.to(p.device)].T.clamp_min(_TINY))  # [M, T]
                joint = None
            assert log_w is not None and t_of is not None
            y = torch.multinomial(p_new.cpu()[t_of], 1, generator=generator).squeeze(1)  # [M]
            log_w = log_w + torch.log(p_new[:, y.to(p.device)].T.clamp_min(_TINY))
    return picks, scores


def _chunks(u_count: int, rows: int, c_count: int, max_elements: int) -> tuple[range, int]:
    """Chunk starts and size so that ``rows x size x C`` stays under ``max_elements``."""
    size = max(1, max_elements // max(1, rows * c_count))
    return range(0, u_count, size), size


def _joint_entropy_exact(joint: torch.Tensor, p: torch.Tensor, max_elements: int) -> torch.Tensor:
    """``H[y_batch, y_u]`` for every candidate u, from the exact joint ``[T, J]``."""
    t_count, u_count, c_count = p.shape
    out = torch.empty(u_count, dtype=torch.float64, device=p.device)
    starts, size = _chunks(u_count, joint.shape[1], c_count, max_elements)
    for s in starts:
        pc = p[:, s : s + size, :].reshape(t_count, -1)  # [T, chunk*C]
        pj = (joint.T @ pc / t_count).reshape(joint.shape[1], -1, c_count)  # [J, chunk, C]
        out[s : s + size] = -_plogp_sum(pj)
    return out


def _joint_entropy_sampled(log_w: torch.Tensor, p: torch.Tensor, max_elements: int) -> torch.Tensor:
    """Estimate of ``H[y_batch, y_u]`` from M sampled configurations ``log P_t(y^m) [M, T]``.

    The M x chunk x C products and their entropies run in ``p``'s dtype (float32 from
    :func:`batchbald_select`: 3-4x faster than float64, and its rounding is far below the
    estimator's own sampling error); the weights and sums are float64.
    """
    t_count, u_count, c_count = p.shape
    m_count = log_w.shape[0]
    log_q = torch.logsumexp(log_w, dim=1) - math.log(t_count)  # [M] log P(y^m)
    w = torch.softmax(log_w, dim=1).to(p.dtype)  # [M, T] rows sum to 1
    base = -float(log_q.mean())
    out = torch.empty(u_count, dtype=torch.float64, device=p.device)
    starts, size = _chunks(u_count, m_count, c_count, max_elements)
    for s in starts:
        pc = p[:, s : s + size, :].reshape(t_count, -1)  # [T, chunk*C]
        r = (w @ pc).reshape(m_count, -1, c_count)  # [M, chunk, C], sums to 1 over C
        out[s : s + size] = base - _plogp_sum(r) / m_count
    return out


@register
@dataclass(frozen=True)
class BatchBALDStrategy(Strategy):
    """BatchBALD: greedy batch of maximal joint mutual information (Kirsch et al. 2019).

    Options: ``mc_samples`` (T = 20 MC-dropout passes), ``num_samples`` (M = 1000 sampled
    joint configurations once the exact joint is too large), ``max_exact`` (the exact
    joint is kept while it has at most this many configurations; default ``num_samples``),
    ``max_elements`` (float64 values of one chunk's joint tensor: the memory bound).
    """

    name = "batchbald"

    mc_samples: int = 20
    num_samples: int = 1000
    max_exact: int | None = None
    max_elements: int = 2**24

    def __post_init__(self) -> None:
        check_positive("mc_samples", self.mc_samples)
        check_positive("num_samples", self.num_samples)
        check_positive("max_elements", self.max_elements)
        if self.max_exact is not None:
            check_positive("max_exact", self.max_exact)

    def check(self, model: torch.nn.Module) -> None:
        check_mc_model(self.name, model)

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        unlabeled = ctx.pool.unlabeled
        probs = ctx.mc_probs(unlabeled, self.mc_samples)  # [T, U, C]
        pick, scores = batchbald_select(
            probs,
            budget,
            num_samples=self.num_samples,
            max_exact=self.max_exact,
            generator=ctx.generator,
            max_elements=self.max_elements,
        )
        return Selection(unlabeled[pick], scores, {"joint_mi": round(float(scores[-1]), 6)})
