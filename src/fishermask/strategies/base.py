"""What every query strategy is, and what it may use.

A strategy is a frozen dataclass whose fields are its options. It declares
what it needs by the methods it overrides:

- :meth:`Strategy.make_auxiliary` returns a module trained jointly with the
  classifier (e.g. a loss-prediction head); the loop trains it, checkpoints it
  and hands it back in :attr:`QueryContext.aux`.
- :meth:`Strategy.query` gets a :class:`QueryContext` (the trained model in
  eval mode, the pool, cached predictions and embeddings, normalised inputs,
  a seeded generator) and returns a :class:`Selection`.

The loop never asks which strategy it runs. :meth:`Strategy.select` wraps
``query`` with the contract every strategy obeys: ``budget`` unique unlabeled
pool indices, a clear error when the budget exceeds the pool.

Index convention: N pool items (training split), U unlabeled, C classes,
D embedding size. "Pool indices" are positions in the training split.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from fishermask.al.pool import Pool
from fishermask.errors import ConfigError, FishermaskError
from fishermask.models.base import Classifier, input_dtype
from fishermask.models.dropout import mc_dropout
from fishermask.training.augment import Normalizer
from fishermask.training.trainer import AuxiliaryModule, predict


@dataclass
class Selection:
    """The outcome of one query."""

    indices: torch.Tensor  # [B] pool indices, in the order chosen
    scores: torch.Tensor | None = None  # [B] the strategy's score of each chosen item, if any
    info: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable extras for the run dir


@dataclass
class QueryContext:
    """Everything a strategy may use to choose the next batch."""

    model: Classifier  # trained, in eval mode
    pool: Pool
    images: torch.Tensor  # [N, Ch, H, W] uint8, the whole training split (CPU)
    normalizer: Normalizer
    generator: torch.Generator  # CPU generator seeded from (seed, round)
    aux: AuxiliaryModule | None = None
    batch_size: int = 512
    _cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)
    _mc_cache: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    def inputs(self, indices: torch.Tensor) -> torch.Tensor:
        """Normalised float inputs ``[len(indices), Ch, H, W]`` on the model's device, in its
        floating dtype (float32 unless the model is, e.g., float64)."""
        return self.normalizer(self.images[indices].to(self.device), input_dtype(self.model))

    def batches(self, indices: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(index chunk, normalised inputs)`` pairs of at most ``batch_size`` items."""
        for i in range(0, len(indices), self.batch_size):
            chunk = indices[i : i + self.batch_size]
            yield chunk, self.inputs(chunk)

    def predictions(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Softmax probabilities ``[len, C]`` and embeddings ``[len, D]`` (device), cached."""
        key = _key(indices)
        if key not in self._cache:
            probs, emb = predict(
                self.model,
                self.images[indices],
                self.normalizer,
                batch_size=self.batch_size,
                embeddings=True,
            )
            assert emb is not None  # predict(embeddings=True) always returns them
            self._cache[key] = (probs, emb)
        return self._cache[key]

    def probs(self, indices: torch.Tensor) -> torch.Tensor:
        return self.predictions(indices)[0]

    def mc_probs(self, indices: torch.Tensor, samples: int) -> torch.Tensor:
        """Softmax probabilities ``[T, len, C]`` of T = ``samples`` MC-dropout passes, cached.

        The model stays in eval mode (BatchNorm running statistics) with its dropout active;
        the masks are drawn from :attr:`generator`, so the samples are deterministic under
        the query's seed. A model without dropout gives T identical copies.
        """
        key = f"mc{samples}:{_key(indices)}"
        if key not in self._mc_cache:
            parts = []
            with torch.no_grad(), mc_dropout(self.model, self.generator):
                for _, x in self.batches(indices):
                    parts.append(self.model.mc_logits(x, samples).softmax(dim=-1))  # [T, b, C]
            if parts:
                self._mc_cache[key] = torch.cat(parts, dim=1)
            else:
                self._mc_cache[key] = torch.empty(samples, 0, self.num_classes, device=self.device)
        return self._mc_cache[key]

    def embeddings(self, indices: torch.Tensor) -> torch.Tensor:
        return self.predictions(indices)[1]

    def head_predictions(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`predictions` for the closed-form last-layer gradients ``(onehot - p) ⊗ e``
        of BAIT and BADGE, which hold only when ``e`` is the head's input, one
        ``[D]`` vector per image: refused (one line) for a head run on ``[B, T, D]`` tokens,
        whose flattened ``T * D`` values :meth:`embeddings` returns."""
        probs, emb = self.predictions(indices)
        head = getattr(self.model, "classifier", None)
        d = getattr(head, "in_features", None)
        if d is not None and emb.shape[1] != d:
            raise ConfigError(
                f"the model's head (the nn.Linear that runs last) gets {emb.shape[1]} values "
                f"per image for its {d} inputs: it runs on several vectors per image (tokens "
                "[B, T, D]), and BAIT's and BADGE's last-layer gradients need one [B, D]; pool "
                "the tokens (or take the class token) before the head, or use another strategy."
            )
        return probs, emb


def _key(indices: torch.Tensor) -> str:
    idx = indices.to(torch.int64).cpu().contiguous()
    return f"{len(idx)}:{hash(idx.numpy().tobytes())}"


@dataclass(frozen=True)
class Strategy:
    """Base class of query strategies; subclasses are frozen dataclasses of their options."""

    name: ClassVar[str] = ""

    def make_auxiliary(self, model: Classifier) -> AuxiliaryModule | None:
        """A module to train jointly with ``model`` each round, or ``None``."""
        return None

    def check(self, model: Classifier) -> None:
        """Raise ``ConfigError`` if the options cannot work with ``model`` (called up front)."""
        return None

    def query(self, ctx: QueryContext, budget: int) -> Selection:  # pragma: no cover - abstract
        raise NotImplementedError

    def select(self, ctx: QueryContext, budget: int) -> Selection:
        """Run :meth:`query` under the strategy contract."""
        available = ctx.pool.num_unlabeled
        # NumPy integers are integers too (a budget computed with NumPy): taken as int
        if isinstance(budget, bool) or not isinstance(budget, numbers.Integral) or budget < 1:
            raise ConfigError(f"`budget`={budget!r}, must be an integer >= 1.")
        budget = int(budget)
        if budget > available:
            raise ConfigError(
                f"Query budget {budget} is larger than the unlabeled pool ({available} items); "
                f"lower the query size or the number of rounds."
            )
        name = self.name or type(self).__name__
        try:
            sel = self.query(ctx, budget)
        except NonFiniteScores as exc:
            raise StrategyError(
                f"strategy {name!r}: {exc.describe()}; ranking them would pick by position. "
                "Check the model's predictions (a diverged training gives NaN probabilities) "
                "or the strategy's score function."
            ) from exc
        return check_selection(name, sel, ctx.pool, budget)

    def options(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class StrategyError(FishermaskError, RuntimeError):
    """A strategy's ``query`` broke the contract (wrong count, repeated, out-of-range or
    labeled indices, malformed scores or info): one line naming the strategy and the fix."""


class NonFiniteScores(StrategyError):
    """Scores handed to :func:`top_k` or :func:`stochastic_top_k` had NaN or infinite entries.

    :meth:`Strategy.select` turns it into a :class:`StrategyError` naming the strategy.
    """

    def __init__(self, nan: int, inf: int, total: int) -> None:
        self.nan, self.inf, self.total = nan, inf, total
        super().__init__(f"{self.describe()}; rank finite scores only.")

    def describe(self) -> str:
        parts = [f"{n} {what}" for n, what in ((self.nan, "NaN"), (self.inf, "infinite")) if n]
        return f"{' and '.join(parts)} of its {self.total} scores"


def check_finite(scores: torch.Tensor) -> None:
    """Raise :class:`NonFiniteScores` if ``scores`` has a NaN or an infinite entry."""
    if scores.is_floating_point() or scores.is_complex():
        nan = int(torch.isnan(scores).sum())
        inf = int(torch.isinf(scores).sum())
        if nan or inf:
            raise NonFiniteScores(nan, inf, scores.numel())


def check_selection(name: str, sel: Any, pool: Pool, budget: int) -> Selection:
    """``sel`` with its indices as 1-D int64 (CPU), after checking the strategy contract.

    The contract: ``budget`` unique *pool* indices (positions in the training split, e.g.
    ``ctx.pool.unlabeled[pick]``, not ``pick`` itself), none of them labeled; ``scores``
    ``None`` or one per index; ``info`` JSON-serialisable.
    """
    where = f"strategy {name!r}"
    if not isinstance(sel, Selection):
        raise StrategyError(
            f"{where}: query() returned {type(sel).__name__}; return Selection(indices)."
        )
    try:
        idx = torch.as_tensor(sel.indices)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise StrategyError(f"{where}: cannot read its indices as a tensor ({exc}).") from None
    if idx.dtype == torch.bool:
        raise StrategyError(
            f"{where} returned a boolean mask; return the chosen pool indices "
            "(e.g. torch.nonzero(mask).flatten())."
        )
    if idx.is_floating_point() or idx.is_complex():
        raise StrategyError(
            f"{where} returned {idx.dtype} indices; return integer pool indices "
            "(int64), not scores or rounded values."
        )
    if idx.dim() != 1:
        raise StrategyError(
            f"{where} returned indices of shape {tuple(idx.shape)}; return a 1-D tensor "
            f"of {budget} pool indices."
        )
    idx = idx.to(torch.int64).cpu()
    if len(idx) != budget:
        raise StrategyError(
            f"{where} returned {len(idx)} indices for budget {budget}; return exactly {budget}."
        )
    outside = idx[(idx < 0) | (idx >= pool.size)]
    if len(outside):
        raise StrategyError(
            f"{where} returned indices {outside.tolist()[:5]} outside the pool [0, {pool.size}); "
            "return pool indices (negative ones are not counted from the end)."
        )
    values, counts = torch.unique(idx, return_counts=True)
    if len(values) != budget:
        raise StrategyError(
            f"{where} returned pool indices {values[counts > 1].tolist()[:5]} more than once; "
            f"return {budget} unique ones."
        )
    labeled = idx[pool.labels_of(idx) >= 0]
    if len(labeled):
        raise StrategyError(
            f"{where} returned already-labeled pool indices {labeled.tolist()[:5]}; return "
            "unlabeled ones: pool indices such as ctx.pool.unlabeled[pick], not the positions "
            "pick within ctx.pool.unlabeled."
        )
    if sel.scores is not None:
        scores = torch.as_tensor(sel.scores)
        if scores.dim() != 1 or len(scores) != budget:
            raise StrategyError(
                f"{where} returned scores of shape {tuple(scores.shape)} for {budget} indices; "
                f"return one score per chosen index ([{budget}]) or None."
            )
        if scores.is_floating_point() and bool(torch.isnan(scores).any()):
            raise StrategyError(
                f"{where} returned {int(torch.isnan(scores).sum())} NaN scores among its "
                f"{budget} chosen items; a NaN score means the ranking picked by position, so "
                "find where the NaN comes from (the model's predictions or the score function)."
            )
        sel.scores = scores
    if not isinstance(sel.info, dict):
        raise StrategyError(f"{where} returned info of type {type(sel.info).__name__}; use a dict.")
    try:
        json.dumps(sel.info)
    except (TypeError, ValueError) as exc:
        raise StrategyError(
            f"{where} returned info that is not JSON-serialisable ({exc}); store numbers and "
            "lists (tensor.tolist(), float(x))."
        ) from None
    sel.indices = idx
    return sel


STOCHASTIC = ("none", "power", "softmax", "softrank")


@dataclass(frozen=True)
class ScoreStrategy(Strategy):
    """A strategy that ranks unlabeled items by a score (by default of their probabilities).

    Subclasses implement :meth:`score` (of the probabilities ``[U, C]``) or, when they need
    more than the probabilities, :meth:`scores` (of the query context). Ranking (ties by
    pool order) lives here once, and so does stochastic batch acquisition (Kirsch et al.
    2023, docs/methods.md §9.4), an option of every score strategy:

    - ``stochastic=none`` (default): the top ``budget`` scores.
    - ``stochastic=power``: ``budget`` items drawn without replacement with probability
      proportional to ``u^beta``, where ``u >= 0`` is the score when higher is more
      informative, or ``upper_bound - score`` when lower is (margin, least confidence).
    - ``stochastic=softmax``: probability proportional to ``exp(beta * u)``.
    - ``stochastic=softrank``: probability proportional to ``rank^-beta`` (rank 1 = most
      informative), whatever the score's scale.

    Sampling without replacement uses the Gumbel-top-k trick (the top ``budget`` of
    ``log w + Gumbel noise`` is a draw of ``budget`` items without replacement with
    probabilities proportional to ``w``), with the noise from the query generator.
    """

    query_highest: ClassVar[bool] = True  # False: the lowest scores are the most informative
    upper_bound: ClassVar[float | None] = None  # for lowest-first scores: power uses bound - s

    stochastic: str = "none"
    beta: float = 1.0

    def __post_init__(self) -> None:
        if self.stochastic not in STOCHASTIC:
            raise ConfigError(
                f"`stochastic`={self.stochastic!r} for strategy {self.name!r}; "
                f"supported: {', '.join(STOCHASTIC)}."
            )
        if isinstance(self.beta, bool) or not self.beta > 0:
            raise ConfigError(f"`beta`={self.beta!r} for strategy {self.name!r}, must be > 0.")
        if self.stochastic == "power" and not self.query_highest and self.upper_bound is None:
            raise ConfigError(
                f"stochastic=power needs scores >= 0 where higher is more informative; "
                f"{self.name!r} has neither, so use stochastic=softmax or softrank."
            )

    def score(self, probs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Scores ``[U]`` of the probabilities ``[U, C]``."""
        raise NotImplementedError

    def scores(self, ctx: QueryContext, unlabeled: torch.Tensor) -> torch.Tensor:
        """Scores ``[U]`` of the unlabeled pool items ``unlabeled``."""
        return self.score(ctx.probs(unlabeled))

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        unlabeled = ctx.pool.unlabeled
        scores = self.scores(ctx, unlabeled).cpu()  # [U]
        if self.stochastic == "none":
            pick = top_k(scores if self.query_highest else -scores, budget)
        else:
            pick = stochastic_top_k(
                self.utility(scores), budget, self.stochastic, self.beta, ctx.generator
            )
        return Selection(unlabeled[pick], scores[pick])

    def utility(self, scores: torch.Tensor) -> torch.Tensor:
        """Scores turned "higher = more informative" (and >= 0 for ``power``), float64."""
        s = scores.detach().to(torch.float64).cpu()
        if self.query_highest:
            return s
        return (self.upper_bound - s) if self.upper_bound is not None else -s


def stochastic_top_k(
    utility: torch.Tensor, k: int, mode: str, beta: float, generator: torch.Generator
) -> torch.Tensor:
    """Positions of ``k`` items drawn without replacement, weights from ``utility [U]``.

    ``mode``: ``power`` (w = max(u, 0)^beta), ``softmax`` (w = exp(beta u)) or
    ``softrank`` (w = rank^-beta). Gumbel-top-k: the ``k`` largest ``log w + G``, G i.i.d.
    standard Gumbel drawn from ``generator``; ties (e.g. zero weights) by position.
    """
    u = utility.detach().to(torch.float64).cpu()
    check_finite(u)
    if mode == "power":
        log_w = beta * torch.log(u.clamp_min(0.0))  # log 0 = -inf: never drawn before w > 0
    elif mode == "softmax":
        log_w = beta * u
    elif mode == "softrank":
        ranks = torch.empty_like(u)
        ranks[torch.argsort(-u, stable=True)] = torch.arange(1, len(u) + 1, dtype=u.dtype)
        log_w = -beta * torch.log(ranks)
    else:
        raise ConfigError(f"Unknown stochastic mode {mode!r}; supported: {', '.join(STOCHASTIC)}.")
    uniform = torch.rand(len(u), generator=generator, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-300, 1.0 - 1e-16)))
    return _top_k(log_w + gumbel, k)  # log w = -inf (w = 0) is allowed here


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Positions of the ``k`` highest scores, ties broken by the lower position (deterministic).

    Raises :class:`NonFiniteScores` if a score is NaN or infinite: NaN sorts last and a run
    of NaN or infinite scores would be ranked by position, silently.
    """
    scores = scores.detach().to(torch.float64).cpu()
    check_finite(scores)
    return _top_k(scores, k)


def _top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    order = torch.argsort(-scores, stable=True)
    return order[:k]
