"""Tiny float64 models for the fishermask.fisher tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def randomise_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    """Give every BatchNorm non-trivial affine parameters and running statistics."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=generator))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=generator))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=generator))


class TinyCNN(nn.Module):
    """Conv (stride, padding, bias) -> BN -> ReLU -> grouped dilated conv -> BN -> in-place ReLU
    -> max-pool -> 'same' conv with bias -> avg-pool -> BN1d -> Linear."""

    def __init__(self, in_ch: int = 3, classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 4, 3, stride=2, padding=1, bias=True)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.relu = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(6, 5, (3, 2), padding="same", bias=True)
        self.bn3 = nn.BatchNorm1d(5)
        self.fc = nn.Linear(5, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = F.max_pool2d(x, 2)
        x = self.conv3(x).mean(dim=(2, 3))
        return self.fc(self.bn3(x))


class Scale(nn.Module):
    """A layer fishermask has no closed form for."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(ch, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.alpha


class OddNet(nn.Module):
    """Exercises the fallback and the odd cases: an unknown layer (Scale), LayerNorm, a Linear
    called twice, a Linear whose weight is used without calling the module, a Linear on
    [N, T, I] inputs, and ReLU(inplace) on a Linear output."""

    def __init__(self, in_ch: int = 3, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, 4, 3, padding=1)
        self.scale = Scale(4)
        self.norm = nn.LayerNorm(4)
        self.tok = nn.Linear(4, 4)  # applied twice, on [N, T, 4]
        self.side = nn.Linear(4, 4)  # its weight is used functionally, module never called
        self.fc = nn.Linear(4, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.scale(self.conv(x))  # [N, 4, H, W]
        t = self.norm(x.flatten(2).transpose(1, 2))  # [N, T, 4]
        t = torch.relu_(self.tok(t))
        t = torch.tanh(self.tok(t))
        h = t.mean(1)  # [N, 4]
        h = h + F.linear(h, self.side.weight, self.side.bias).tanh()
        return self.fc(h)


def make_model(name: str, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = {"tiny_cnn": TinyCNN, "odd_net": OddNet}[name]().double()
    randomise_batchnorm(model, gen)
    return model.eval()


def make_inputs(n: int, seed: int = 1, size: int = 8) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=gen, dtype=torch.float64)
