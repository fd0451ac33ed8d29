"""Model registry: ``build_model(name, num_classes, image_shape, width, dropout, ...)``."""

from __future__ import annotations

import math
from collections.abc import Callable

from fishermask.errors import check_choice
from fishermask.models.base import Classifier, ModelOutput
from fishermask.models.dropout import has_dropout, mc_dropout
from fishermask.models.resnet import ResNet18
from fishermask.models.small import MLP, LinearHead, SmallCNN

# Each builder takes (num_classes, image_shape (Ch, H, W), width).
_BUILDERS: dict[str, Callable[[int, tuple[int, int, int], float], Classifier]] = {
    "resnet18": lambda c, shape, w: ResNet18(c, shape[0], w),
    "cnn": lambda c, shape, w: SmallCNN(c, shape[0], w),
    "mlp": lambda c, shape, w: MLP(c, math.prod(shape), w),
    "linear": lambda c, shape, w: LinearHead(c, math.prod(shape)),
}

MODELS = tuple(_BUILDERS)


def build_model(
    name: str,
    num_classes: int,
    image_shape: tuple[int, int, int] = (3, 32, 32),
    width: float = 1.0,
    dropout: float = 0.0,
    hidden_dropout: float = 0.0,
) -> Classifier:
    """Build a registered model for images of ``image_shape`` = (Ch, H, W).

    ``dropout`` acts before the final layer and ``hidden_dropout`` between the hidden
    stages of ``cnn`` and ``mlp`` (both 0 by default: no dropout module at all). The
    ``linear`` model ignores ``width``.
    """
    check_choice("model", name, MODELS)
    model = _BUILDERS[name](num_classes, tuple(image_shape), width)
    if dropout or hidden_dropout:
        model.set_dropout(dropout, hidden_dropout)
    return model


__all__ = [
    "MODELS",
    "Classifier",
    "ModelOutput",
    "build_model",
    "has_dropout",
    "mc_dropout",
    "ResNet18",
    "SmallCNN",
    "MLP",
    "LinearHead",
]
