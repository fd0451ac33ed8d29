"""The labeled / unlabeled split of the training pool, and the oracles that label it.

Indices are positions in the training split (``0 .. N-1``), called pool indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from fishermask.errors import ConfigError


class Oracle(Protocol):
    """Anything that can reveal labels of pool indices (ground truth, a human, a file)."""

    def label(self, indices: Sequence[int]) -> torch.Tensor:
        """Labels ``[len(indices)]`` int64 for the given pool indices, in that order."""
        ...


class SimulatedOracle:
    """Reveals the ground-truth labels of the training split."""

    def __init__(self, labels: torch.Tensor) -> None:
        self._labels = labels.to(torch.int64).cpu()

    def label(self, indices: Sequence[int]) -> torch.Tensor:
        return self._labels[torch.as_tensor(list(indices), dtype=torch.int64)]


class Pool:
    """Which pool items are labeled, in the order they were labeled, and their labels."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._order: list[int] = []
        self._labels = torch.full((size,), -1, dtype=torch.int64)  # -1: not labeled yet

    @property
    def labeled(self) -> torch.Tensor:
        """Labeled pool indices ``[nL]`` in labeling order."""
        return torch.tensor(self._order, dtype=torch.int64)

    @property
    def unlabeled(self) -> torch.Tensor:
        """Unlabeled pool indices ``[N - nL]``, ascending."""
        return torch.nonzero(self._labels < 0).flatten()

    @property
    def num_labeled(self) -> int:
        return len(self._order)

    @property
    def num_unlabeled(self) -> int:
        return self.size - len(self._order)

    def labels_of(self, indices: torch.Tensor) -> torch.Tensor:
        return self._labels[indices]

    def add(self, indices: Sequence[int], labels: torch.Tensor) -> None:
        """Mark ``indices`` as labeled with ``labels`` (every index unlabeled, no repeats)."""
        idx = [int(i) for i in indices]
        if len(set(idx)) != len(idx):
            raise ConfigError(f"Cannot label the same pool index twice in one batch: {idx}.")
        bad = [i for i in idx if not 0 <= i < self.size or self._labels[i] >= 0]
        if bad:
            raise ConfigError(
                f"Pool indices {bad[:5]} are out of range [0, {self.size}) or already labeled."
            )
        if len(labels) != len(idx):
            raise ConfigError(f"Got {len(labels)} labels for {len(idx)} pool indices.")
        self._labels[torch.tensor(idx, dtype=torch.int64)] = labels.to(torch.int64).cpu()
        self._order.extend(idx)
