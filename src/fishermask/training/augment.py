"""Batched tensor augmentation and normalisation (no torchvision).

Index convention: N images, Ch channels, H x W pixels; images ``[N, Ch, H, W]``.
Random numbers come from an explicit CPU ``torch.Generator`` so that the same
seed gives the same augmentation on every device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Normalizer:
    """uint8 images -> float, scaled to [0, 1], then per-channel standardised."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, images: torch.Tensor) -> Normalizer:
        """Per-channel mean and std of uint8 images ``[N, Ch, H, W]`` (in [0, 1] units).

        Float inputs (features ``[N, D, 1, 1]``) are taken as they are: per-feature
        standardisation.
        """
        x = images.to(torch.float64)
        if images.dtype == torch.uint8:
            x = x / 255.0
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return cls(tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std))

    def __call__(self, images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        x = images.to(dtype) / 255.0 if images.dtype == torch.uint8 else images.to(dtype)
        mean = torch.tensor(self.mean, dtype=dtype, device=x.device)[None, :, None, None]
        std = torch.tensor(self.std, dtype=dtype, device=x.device)[None, :, None, None]
        return (x - mean) / std


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to H x W at a random offset per image.

    ``x`` is ``[N, Ch, H, W]`` in [0, 1] units (so the padding is black, as in
    torchvision's ``RandomCrop(size, padding)``).
    """
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))  # [N, Ch, H+2p, W+2p]
    oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    rows = oy[:, None] + torch.arange(h, device=x.device)  # [N, H]
    cols = ox[:, None] + torch.arange(w, device=x.device)  # [N, W]
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # [N, H, W, Ch]
    return out.permute(0, 3, 1, 2).contiguous()


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


#: Images at least this many pixels on their shorter side get the full crop padding.
FULL_PADDING_SIZE = 28


def scaled_padding(padding: int, height: int, width: int) -> int:
    """The crop padding used for ``height x width`` images: ``padding`` scaled down below 28 px.

    ``padding`` (4 in the paper's CIFAR recipe) is meant for images of 28 px and more
    (MNIST, CIFAR); on smaller ones a shift of 4 pixels removes most of the object (8x8
    digits trained to 40-70 % training accuracy with it), so the padding shrinks in
    proportion: ``min(padding, round(padding * min(H, W) / 28))`` — 4 at 28 px and above,
    2 at 14 px, 1 at 8 px, 0 below 4 px.
    """
    return min(padding, round(padding * min(height, width) / FULL_PADDING_SIZE))


@dataclass(frozen=True)
class Augmenter:
    """Random crop with padding, optional horizontal flip, then normalisation.

    ``crop_padding`` is the padding for images of 28 px and larger; smaller images get
    :func:`scaled_padding` of it.
    """

    normalizer: Normalizer
    crop_padding: int = 4
    hflip: bool = True

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = images.to(torch.float32)
        if images.dtype == torch.uint8:
            x = x / 255.0
        x = random_crop(x, scaled_padding(self.crop_padding, *x.shape[-2:]), generator)
        if self.hflip:
            x = random_hflip(x, generator)
        return self.normalizer(x)
