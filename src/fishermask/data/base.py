"""The in-memory data set every loader produces.

Index convention: N images, Ch channels, H x W pixels. Images are ``uint8``
tensors laid out ``[N, Ch, H, W]`` (Ch = 1 for grey, 3 for RGB); labels are
``int64`` tensors ``[N]`` with values in ``0 .. len(classes) - 1``. A data set whose
images were replaced by features (``fishermask.data.features``) holds float32
``[N, D, 1, 1]`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    # Where each training image comes from, for people who must find it again:
    train_files: tuple[str, ...] | None = None  # [N] its path in the folder tree (folder sets)
    train_index: torch.Tensor | None = None  # [N] its position in the source's train split
    #                                          (None: the pool index itself, no subsetting)

    def __post_init__(self) -> None:
        for split, x, y in (
            ("train", self.x_train, self.y_train),
            ("test", self.x_test, self.y_test),
        ):
            if x.dtype not in (torch.uint8, torch.float32) or x.dim() != 4:
                raise DataError(
                    f"{self.name}: {split} images must be uint8 [N, Ch, H, W] (or float32 "
                    f"features [N, D, 1, 1]), got {x.dtype} {tuple(x.shape)}."
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
        n = len(self.y_train)
        for what, ids in (("train_files", self.train_files), ("train_index", self.train_index)):
            if ids is not None and len(ids) != n:
                raise DataError(f"{self.name}: {what} has {len(ids)} entries for {n} images.")
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

    def sources(self, indices: list[int]) -> dict[str, Any]:
        """Where pool items ``indices`` come from: ``dataset_index`` (their position in the
        source's training split: file order for array formats, the sorted folder listing
        for folder trees) and, for folder trees, ``files`` (paths inside the tree)."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        out: dict[str, Any] = {
            "dataset_index": (idx if self.train_index is None else self.train_index[idx]).tolist()
        }
        if self.train_files is not None:
            out["files"] = [self.train_files[i] for i in indices]
        return out

    def class_counts(self, split: str = "train") -> list[int]:
        y = self.y_train if split == "train" else self.y_test
        return torch.bincount(y, minlength=self.num_classes).tolist()


def check_learnable(ds: ImageDataset) -> None:
    """Raise ``DataError`` unless ``ds`` can be learned and scored class by class.

    Refused: an empty train or test split (accuracy would be nan), fewer than two
    classes, and any class without training images — a class only in the test split
    can never be predicted, and a class in neither split (labels 1..K read as K+1
    classes, or a ``classes`` list longer than the labels) silently adds an output.
    """
    if len(ds.y_test) == 0:
        raise DataError(
            f"{ds.name} has no test images, so accuracy cannot be measured; add a test split "
            "(test/<class>/*.png, or x_test/y_test)."
        )
    if len(ds.y_train) == 0:
        raise DataError(f"{ds.name} has no training images; add a train split.")
    train, test = ds.class_counts("train"), ds.class_counts("test")
    if ds.num_classes < 2 or sum(n > 0 for n in train) < 2:
        present = [ds.classes[c] for c, n in enumerate(train) if n]
        raise DataError(
            f"{ds.name} has images of only one class ({', '.join(map(repr, present))}); "
            "classification needs at least two classes."
        )
    for c, (n_train, n_test) in enumerate(zip(train, test, strict=True)):
        if n_train:
            continue
        name = f"class {c} ({ds.classes[c]!r})"
        if n_test:
            raise DataError(
                f"{ds.name}: {name} has {n_test} test images but no training images, so it "
                "can never be predicted; add training images of it or drop it from the test split."
            )
        if c == 0 and all(train[1:]) and ds.classes == tuple(map(str, range(ds.num_classes))):
            raise DataError(
                f"{ds.name}: class 0 has no images in either split; the labels look like "
                f"1..{ds.num_classes - 1}: store them as 0..{ds.num_classes - 2} (subtract 1)."
            )
        raise DataError(
            f"{ds.name}: {name} has no images in either split; drop it from the class "
            "list or relabel the classes as 0..K-1 without gaps."
        )
