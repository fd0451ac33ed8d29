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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from fishermask.al.pool import Pool
from fishermask.errors import ConfigError
from fishermask.models.base import Classifier
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

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    def inputs(self, indices: torch.Tensor) -> torch.Tensor:
        """Normalised float inputs ``[len(indices), Ch, H, W]`` on the model's device."""
        return self.normalizer(self.images[indices].to(self.device))

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

    def embeddings(self, indices: torch.Tensor) -> torch.Tensor:
        return self.predictions(indices)[1]


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
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ConfigError(f"`budget`={budget!r}, must be an integer >= 1.")
        if budget > available:
            raise ConfigError(
                f"Query budget {budget} is larger than the unlabeled pool ({available} items); "
                f"lower the query size or the number of rounds."
            )
        sel = self.query(ctx, budget)
        idx = sel.indices.to(torch.int64).cpu()
        if len(idx) != budget or len(torch.unique(idx)) != budget:
            raise RuntimeError(
                f"{self.name} returned {len(idx)} indices ({idx.tolist()[:10]}...) "
                f"for budget {budget}; expected {budget} unique ones."
            )
        if bool((ctx.pool.labels_of(idx) >= 0).any()):
            raise RuntimeError(f"{self.name} selected already-labeled pool items.")
        sel.indices = idx
        return sel

    def options(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ScoreStrategy(Strategy):
    """A strategy that ranks unlabeled items by a score of their predicted probabilities.

    Subclasses implement :meth:`score`; ranking (ties by pool order) lives here once.
    ``most_informative`` says which end of the score is queried.
    """

    most_informative: ClassVar[str] = "highest"  # or "lowest"

    def score(self, probs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Scores ``[U]`` of the probabilities ``[U, C]``."""
        raise NotImplementedError

    def query(self, ctx: QueryContext, budget: int) -> Selection:
        unlabeled = ctx.pool.unlabeled
        scores = self.score(ctx.probs(unlabeled)).cpu()  # [U]
        pick = top_k(scores if self.most_informative == "highest" else -scores, budget)
        return Selection(unlabeled[pick], scores[pick])


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Positions of the ``k`` highest scores, ties broken by the lower position (deterministic)."""
    scores = scores.detach().to(torch.float64).cpu()
    order = torch.argsort(-scores, stable=True)
    return order[:k]
