"""Shared fixtures for strategy tests: a small trained-looking context on random images."""

from __future__ import annotations

import pytest
import torch

from fishermask.al.pool import Pool
from fishermask.models import build_model
from fishermask.strategies.base import QueryContext
from fishermask.training import Normalizer


def make_context(
    n: int = 60,
    n_labeled: int = 10,
    *,
    seed: int = 0,
    model_name: str = "cnn",
    image_shape: tuple[int, int, int] = (1, 8, 8),
    num_classes: int = 4,
    generator_seed: int = 123,
    dropout: float = 0.0,
) -> QueryContext:
    """A QueryContext over ``n`` random uint8 images with ``n_labeled`` of them labeled."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *image_shape), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    torch.manual_seed(seed)
    model = build_model(model_name, num_classes, image_shape, width=0.5, dropout=dropout).eval()
    pool = Pool(n)
    first = torch.randperm(n, generator=g)[:n_labeled]
    pool.add(first.tolist(), labels[first])
    return QueryContext(
        model=model,
        pool=pool,
        images=images,
        normalizer=Normalizer.fit(images),
        generator=torch.Generator().manual_seed(generator_seed),
        batch_size=16,
    )


@pytest.fixture
def ctx_factory():
    """``ctx_factory(**kwargs)`` builds a fresh :func:`make_context`."""
    return make_context
