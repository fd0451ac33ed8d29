"""Model registry: ``build_model(name, num_classes, image_shape, width)``."""

from __future__ import annotations

import math
from collections.abc import Callable

from fishermask.errors import check_choice
from fishermask.models.base import Classifier, ModelOutput
from fishermask.models.resnet import ResNet18
from fishermask.models.small import MLP, SmallCNN

# Each builder takes (num_classes, image_shape (Ch, H, W), width).
_BUILDERS: dict[str, Callable[[int, tuple[int, int, int], float], Classifier]] = {
    "resnet18": lambda c, shape, w: ResNet18(c, shape[0], w),
    "cnn": lambda c, shape, w: SmallCNN(c, shape[0], w),
    "mlp": lambda c, shape, w: MLP(c, math.prod(shape), w),
}

MODELS = tuple(_BUILDERS)


def build_model(
    name: str, num_classes: int, image_shape: tuple[int, int, int] = (3, 32, 32), width: float = 1.0
) -> Classifier:
    """Build a registered model for images of ``image_shape`` = (Ch, H, W)."""
    check_choice("model", name, MODELS)
    return _BUILDERS[name](num_classes, tuple(image_shape), width)


__all__ = ["MODELS", "Classifier", "ModelOutput", "build_model", "ResNet18", "SmallCNN", "MLP"]
