"""Small models for quick CPU experiments: a four-block CNN and an MLP.

Both follow :class:`~fishermask.models.base.Classifier`: four stage outputs
(the MLP's are ``[N, D, 1, 1]`` maps so that pooling-based auxiliary modules
work unchanged), an embedding, a final linear layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fishermask.models.base import Classifier, scale_widths


class SmallCNN(Classifier):
    """Four conv-BN-ReLU blocks (16/32/64/128 channels at width 1), each followed by 2x2 max-pool.

    On 28x28 digits the stages are 14, 7, 3 and 1 pixels wide (about 2.6 MFLOPs per image).
    """

    supports_hidden_dropout = True

    BASE_WIDTHS = (16, 32, 64, 128)  # stage sizes at width 1

    def __init__(self, num_classes: int, in_channels: int = 1, width: float = 1.0) -> None:
        super().__init__()
        widths = scale_widths(self.BASE_WIDTHS, width)
        blocks = []
        c_in = in_channels
        for c_out in widths:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(),
                )
            )
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Linear(widths[-1], num_classes)
        self._feature_channels = tuple(widths)

    supports_hidden_dropout = True

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x)
            if min(x.shape[-2:]) >= 2:
                x = F.max_pool2d(x, 2)
            if i < last:
                x = self._drop_hidden(x)  # between blocks (hidden_dropout; none by default)
            feats.append(x)
        return feats


class MLP(Classifier):
    """Flatten, then four Linear-ReLU layers (512/256/256/128 units at width 1)."""

    supports_hidden_dropout = True

    BASE_WIDTHS = (512, 256, 256, 128)  # stage sizes at width 1

    def __init__(self, num_classes: int, input_dim: int, width: float = 1.0) -> None:
        super().__init__()
        widths = scale_widths(self.BASE_WIDTHS, width)
        self.layers = nn.ModuleList()
        d_in = input_dim
        self._input_dim = d_in
        for d_out in widths:
            self.layers.append(nn.Linear(d_in, d_out))
            d_in = d_out
        self.classifier = nn.Linear(widths[-1], num_classes)
        self._feature_channels = tuple(widths)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = x.flatten(1)
        if h.shape[1] != self._input_dim:
            raise ValueError(
                f"MLP built for {self._input_dim} input values per image, got {h.shape[1]}; "
                "build it with the data set's image shape."
            )
        feats = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = F.relu(layer(h))
            if i < last:
                h = self._drop_hidden(h)  # between layers (hidden_dropout; none by default)
            feats.append(h[:, :, None, None])
        return feats


class LinearHead(Classifier):
    """A single linear layer on the flattened input: logistic regression, e.g. on features.

    The embedding is the input itself, so embedding-based strategies (k-center, BAIT,
    BADGE, TypiClust, ProbCover) work on the features the model is given. It has no
    stage feature maps, so the loss-prediction strategies (lpl, lplgrad) cannot use it.
    """

    def __init__(self, num_classes: int, input_dim: int) -> None:
        super().__init__()
        self._input_dim = input_dim
        self.classifier = nn.Linear(input_dim, num_classes)
        self._feature_channels = ()

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = x.flatten(1)
        if h.shape[1] != self._input_dim:
            raise ValueError(
                f"Linear model built for {self._input_dim} input values per image, got "
                f"{h.shape[1]}; build it with the data set's image shape."
            )
        return [h]
