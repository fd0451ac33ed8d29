"""The pool and the simulated oracle."""

from __future__ import annotations

import pytest
import torch

from fishermask.al import Pool, SimulatedOracle
from fishermask.errors import ConfigError


def test_pool_labels_in_order() -> None:
    oracle = SimulatedOracle(torch.tensor([3, 1, 4, 1, 5, 9]))
    pool = Pool(6)
    pool.add([4, 0], oracle.label([4, 0]))
    pool.add([2], oracle.label([2]))
    assert pool.labeled.tolist() == [4, 0, 2]
    assert pool.unlabeled.tolist() == [1, 3, 5]
    assert pool.labels_of(pool.labeled).tolist() == [5, 3, 4]
    assert pool.num_labeled == 3 and pool.num_unlabeled == 3


def test_pool_refuses_relabeling_and_out_of_range() -> None:
    pool = Pool(4)
    pool.add([1], torch.tensor([0]))
    with pytest.raises(ConfigError, match="already labeled"):
        pool.add([1], torch.tensor([0]))
    with pytest.raises(ConfigError, match="out of range"):
        pool.add([7], torch.tensor([0]))
    with pytest.raises(ConfigError, match="twice"):
        pool.add([2, 2], torch.tensor([0, 0]))
