"""The in-memory data set every loader produces.

Index convention: N images, Ch channels, H x W pixels. Images are ``uint8``
tensors laid out ``[N, Ch, H, W]`` (Ch = 1 for grey, 3 for RGB); labels are
``int64`` tensors ``[N]`` with values in ``0 .. len(classes) - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fishermask.errors import DataError


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image data set with a train and a test split."""

    name: str
    x_train: torch.Tensor  # [N, Ch, H, W] uint8
    y_train: torch.Tensor  # [N] int64
    x_test: torch.Tensor  # [M, Ch, H, W] uint8
    y_test: torch.Tensor  # [M] int64
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        for split, x, y in (
            ("train", self.x_train, self.y_train),
            ("test", self.x_test, self.y_test),
        ):
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise DataError(
                    f"{self.name}: {split} images must be uint8 [N, Ch, H, W], got "
                    f"{x.dtype} {tuple(x.shape)}."
                )
            if y.dtype != torch.int64 or y.dim() != 1 or len(y) != len(x):
                raise DataError(
                    f"{self.name}: {split} labels must be int64 [N] with N={len(x)}, got "
                    f"{y.dtype} {tuple(y.shape)}."
                )
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
                raise DataError(
                    f"{self.name}: {split} labels out of range [{int(y.min())}, {int(y.max())}] "
                    f"for {len(self.classes)} classes; labels must be 0..{len(self.classes) - 1}."
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"{self.name}: train images are {tuple(self.x_train.shape[1:])} but test images "
                f"are {tuple(self.x_test.shape[1:])}; both splits need one image shape."
            )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(Ch, H, W)`` of every image."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def class_counts(self, split: str = "train") -> list[int]:
        y = self.y_train if split == "train" else self.y_test
        return torch.bincount(y, minlength=self.num_classes).tolist()
