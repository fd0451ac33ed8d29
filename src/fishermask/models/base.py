"""The interface every fishermask model implements.

Index convention: N images, Ch input channels, D embedding size, C classes.
``forward`` returns logits only, so that generic tools (``fishermask.fisher``,
``torch.func``) can treat any model as ``x -> logits``. ``forward_features``
returns everything strategies and auxiliary modules need from one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ModelOutput:
    """Everything one forward pass exposes."""

    logits: torch.Tensor  # [N, C]
    embedding: torch.Tensor  # [N, D] penultimate features (input of the final linear layer)
    features: list[torch.Tensor]  # four stage feature maps, each [N, Ch_s, H_s, W_s]


class Classifier(nn.Module):
    """Base class: a backbone producing four stages, pooled into an embedding, then a linear head.

    Subclasses implement :meth:`stages` and set ``self.classifier`` (the final ``nn.Linear``).
    """

    classifier: nn.Linear

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> ModelOutput:
        feats = self.stages(x)
        last = feats[-1]
        embedding = last.mean(dim=(2, 3)) if last.dim() == 4 else last.flatten(1)
        return ModelOutput(self.classifier(embedding), embedding, feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).logits

    @property
    def embedding_dim(self) -> int:
        return self.classifier.in_features

    @property
    def num_classes(self) -> int:
        return self.classifier.out_features

    def feature_channels(self) -> list[int]:
        """Channels of the four stage feature maps (used to size auxiliary modules)."""
        return list(self._feature_channels)

    _feature_channels: tuple[int, ...] = ()
