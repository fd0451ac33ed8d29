"""ResNet-18 for small images (He et al. 2016, CIFAR variant).

The stem is a single 3x3 convolution with stride 1 and no max-pool, as in the
FisherMask paper's experiments (and the widely used kuangliu/pytorch-cifar
layout). ``width`` scales every stage's channels: width 1 is 11.17 M
parameters for 10 classes, width 1/4 about 0.70 M.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fishermask.models.base import Classifier, scale_widths


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(Classifier):
    """CIFAR ResNet-18 with a width multiplier; any input size >= 8x8, grey or RGB."""

    BASE_WIDTHS = (64, 128, 256, 512)  # stage sizes at width 1

    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        widths = scale_widths(self.BASE_WIDTHS, width)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers = []
        c_in = widths[0]
        for i, c_out in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers.append(
                nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1))
            )
            c_in = c_out
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.classifier = nn.Linear(widths[-1], num_classes)
        self._feature_channels = tuple(widths)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = F.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(out)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f1, f2, f3, f4]
