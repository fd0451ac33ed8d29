"""The interface every fishermask model implements.

Index convention: N images, Ch input channels, D embedding size, C classes.
``forward`` returns logits only, so that generic tools (``fishermask.fisher``,
``torch.func``) can treat any model as ``x -> logits``. ``forward_features``
returns everything strategies and auxiliary modules need from one pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from fishermask.errors import ConfigError


@contextmanager
def eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Put ``modules`` (``None`` skipped) in eval mode, then give every submodule back the
    mode it had.

    ``module.train(was_training)`` would not: it sets every submodule to the top-level
    module's mode, so a model in eval mode, or one with a frozen BatchNorm in eval inside
    a model in training mode, would come back changed.
    """
    saved = [(m, m.training) for module in modules if module is not None for m in module.modules()]
    for module in modules:
        if module is not None:
            module.eval()
    try:
        yield
    finally:
        for m, training in saved:
            m.training = training


def input_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype ``model`` computes in (its first floating parameter's), float32
    for a model without one: what its normalised inputs are cast to."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


@dataclass
class ModelOutput:
    """Everything one forward pass exposes."""

    logits: torch.Tensor  # [N, C]
    embedding: torch.Tensor  # [N, D] penultimate features (input of the final linear layer)
    features: list[torch.Tensor]  # four stage feature maps, each [N, Ch_s, H_s, W_s]


class Classifier(nn.Module):
    """Base class: a backbone producing four stages, pooled into an embedding, then a linear head.

    Subclasses implement :meth:`stages` and set ``self.classifier`` (the final ``nn.Linear``).
    ``head_dropout`` (set by :meth:`set_dropout`) acts on the embedding just before the
    final layer; models that support it also drop out between hidden stages
    (``hidden_dropout``, see :mod:`fishermask.models.dropout`).
    """

    classifier: nn.Linear
    supports_hidden_dropout = False

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_dropout(self, head: float = 0.0, hidden: float = 0.0) -> Classifier:
        """Add dropout before the final layer (``head``) and between hidden stages.

        Rates of 0 add nothing, so the model stays exactly the model without dropout.
        """
        from fishermask.models.dropout import SeededDropout, check_rate

        check_rate("dropout", head)
        check_rate("hidden_dropout", hidden)
        if hidden > 0 and not self.supports_hidden_dropout:
            raise ConfigError(
                f"`hidden_dropout` is supported by the cnn and mlp models, not "
                f"{type(self).__name__}; use `dropout` (before the final layer) instead."
            )
        if head > 0:
            self.add_module("head_drop", SeededDropout(head))
        if hidden > 0:
            self.add_module("hidden_drop", SeededDropout(hidden))
        return self

    # Registered submodules live in ``_modules``; absent ones read as None (no class default,
    # which would shadow them).
    @property
    def head_dropout(self) -> nn.Module | None:
        return self._modules.get("head_drop")

    @property
    def hidden_dropout(self) -> nn.Module | None:
        return self._modules.get("hidden_drop")

    def _drop_hidden(self, h: torch.Tensor) -> torch.Tensor:
        drop = self.hidden_dropout
        return h if drop is None else drop(h)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The embedding ``[N, D]`` (before head dropout) and the four stage maps."""
        feats = self.stages(x)
        last = feats[-1]
        embedding = last.mean(dim=(2, 3)) if last.dim() == 4 else last.flatten(1)
        return embedding, feats

    def head(self, embedding: torch.Tensor) -> torch.Tensor:
        """Logits of the final layer, after head dropout when there is one."""
        drop = self.head_dropout
        if drop is not None:
            embedding = drop(embedding)
        return self.classifier(embedding)

    def forward_features(self, x: torch.Tensor) -> ModelOutput:
        embedding, feats = self.embed(x)
        return ModelOutput(self.head(embedding), embedding, feats)

    def mc_logits(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        """Logits ``[T, N, C]`` of ``samples`` = T passes (stochastic inside ``mc_dropout``).

        With dropout only before the final layer the backbone runs once and only the head
        is sampled T times.
        """
        if self.hidden_dropout is None:
            embedding, _ = self.embed(x)
            return torch.stack([self.head(embedding) for _ in range(samples)])
        return torch.stack([self.forward(x) for _ in range(samples)])

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


def scale_widths(base: tuple[int, ...], width: float) -> list[int]:
    """Channels (or units) of each stage at ``width``: ``max(1, round(c * width))`` of the
    width-1 sizes ``base``; the one rule of every built-in model that has a width."""
    return [max(1, round(c * width)) for c in base]
