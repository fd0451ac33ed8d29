"""Model registry: shapes, parameter counts, the four stage maps, grey and RGB of any size."""

from __future__ import annotations

import pytest
import torch

from fishermask.errors import ConfigError
from fishermask.models import MODELS, build_model


def test_resnet18_full_width_parameter_count() -> None:
    model = build_model("resnet18", 10, (3, 32, 32), 1.0)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962


def test_resnet18_quarter_width_is_small() -> None:
    n = sum(p.numel() for p in build_model("resnet18", 10, (3, 32, 32), 0.25).parameters())
    assert 600_000 < n < 800_000


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8), (3, 20, 24)])
def test_forward_features(name: str, shape: tuple[int, int, int]) -> None:
    model = build_model(name, 7, shape, 0.25).eval()
    x = torch.randn(3, *shape)
    out = model.forward_features(x)
    assert out.logits.shape == (3, 7)
    assert out.embedding.shape == (3, model.embedding_dim)
    assert len(out.features) == 4
    assert [f.shape[1] for f in out.features] == model.feature_channels()
    assert torch.allclose(model(x), out.logits)
    # the logits are the final linear layer applied to the embedding
    assert torch.allclose(model.classifier(out.embedding), out.logits, atol=1e-6)


def test_unknown_model() -> None:
    with pytest.raises(ConfigError, match="Unknown model 'vgg'; supported: resnet18, cnn, mlp"):
        build_model("vgg", 10)
