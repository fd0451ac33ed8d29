"""Model registry: ``build_model(name, num_classes, image_shape, width, dropout, ...)``.

``register_model(name, builder)`` adds a model of your own: ``builder(num_classes,
image_shape, width)`` returns a fishermask ``Classifier`` or any ``nn.Module`` mapping
normalised images ``[B, Ch, H, W]`` to logits ``[B, C]`` through an ``nn.Linear`` head
(wrapped in :class:`~fishermask.models.module.ModuleClassifier`). Register it at import
time of a module or file and pass that to ``--import`` so worker processes see it too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from fishermask.errors import ConfigError, check_choice
from fishermask.models.base import Classifier, ModelOutput, scale_widths
from fishermask.models.dropout import has_dropout, mc_dropout
from fishermask.models.module import ModuleClassifier
from fishermask.models.resnet import ResNet18
from fishermask.models.small import MLP, LinearHead, SmallCNN
from fishermask.plugins import redefined

# Each builder takes (num_classes, image_shape (Ch, H, W), width).
Builder = Callable[[int, tuple[int, int, int], float], nn.Module]
_BUILDERS: dict[str, Builder] = {
    "resnet18": lambda c, shape, w: ResNet18(c, shape[0], w),
    "cnn": lambda c, shape, w: SmallCNN(c, shape[0], w),
    "mlp": lambda c, shape, w: MLP(c, math.prod(shape), w),
    "linear": lambda c, shape, w: LinearHead(c, math.prod(shape)),
}

MODELS = tuple(_BUILDERS)  # the built-in models


def register_model(name: str, builder: Builder) -> Builder:
    """Make ``builder(num_classes, image_shape, width)`` available as model ``name``.

    The builder runs under the round's seeded ``torch.manual_seed``, so its initial weights
    are deterministic. Returns ``builder`` (usable as a decorator through a lambda).
    """
    if not isinstance(name, str) or not name or ":" in name or "," in name:
        raise TypeError(
            f"A model name must be a non-empty string without ':' or ','; got {name!r}."
        )
    old = _BUILDERS.get(name)
    if old is not None and old is not builder and not redefined(old, builder):
        raise TypeError(f"Model name {name!r} is registered twice.")
    _BUILDERS[name] = builder
    return builder


def model_builder(name: str) -> Builder:
    """The builder registered as model ``name``."""
    check_choice("model", name, _BUILDERS)
    return _BUILDERS[name]


#: The built-in models whose stages ``width`` scales (by :func:`~.base.scale_widths`).
_SCALED: dict[str, type[Classifier]] = {"resnet18": ResNet18, "cnn": SmallCNN, "mlp": MLP}


def check_width(
    name: str,
    width: float,
    *,
    model: nn.Module | None = None,
    num_classes: int = 2,
    image_shape: tuple[int, int, int] = (3, 32, 32),
) -> None:
    """Refuse a ``width`` that model ``name`` cannot honour, rather than run the width-1 model
    while the configuration, ``config.json`` and every title record the width given.

    The built-in models are checked from their sizes alone: ``linear`` has no width (any but 1
    is refused), and ``cnn``, ``mlp`` and ``resnet18`` ignore a width so close to 1 that every
    stage rounds to its width-1 size. A model registered with :func:`register_model` is
    checked once built: pass it as ``model`` (built for ``num_classes`` and ``image_shape``),
    and a builder that gives the same weight shapes at width 1 is refused.
    """
    if name == "linear" and width != 1.0:
        raise ConfigError(
            f"model 'linear' has no width to scale (one nn.Linear from the inputs to the "
            f"classes), so width {width:g} cannot be honoured; use width 1 (--width 1, "
            "model.width: 1), or mlp or cnn for a model whose size width sets."
        )
    if width == 1.0:
        return
    if name in _SCALED:
        base = _SCALED[name].BASE_WIDTHS
        if scale_widths(base, width) == list(base):
            raise ConfigError(
                f"model {name!r} ignores `width` {width:g}: every stage rounds to its width-1 "
                f"size ({', '.join(map(str, base))}); drop --width (model.width), or give one "
                "that changes a stage."
            )
        return
    if model is None or name in MODELS:
        return
    one = build_model(name, num_classes, image_shape, 1.0)  # wrapped as ``model`` was
    if [tuple(p.shape) for p in model.parameters()] == [tuple(p.shape) for p in one.parameters()]:
        raise ConfigError(
            f"model {name!r} ignores `width`: its builder gives the same weights at width "
            f"{width:g} as at width 1; drop --width (model.width), or use `width` in the "
            "builder."
        )


def available_models() -> list[str]:
    """The built-in models, then those registered with :func:`register_model`."""
    return list(_BUILDERS)


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
    ``linear`` model has no width (one ``nn.Linear`` from the inputs to the classes): a
    ``width`` other than 1 is refused rather than ignored.
    """
    check_choice("model", name, _BUILDERS)
    check_width(name, width)
    shape = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
    built = _BUILDERS[name](num_classes, shape, width)
    if isinstance(built, Classifier):
        model = built
    elif isinstance(built, nn.Module):
        if dropout or hidden_dropout:
            raise ConfigError(
                f"model {name!r} is an nn.Module of your own: `dropout`/`hidden_dropout` do not "
                "apply to it; put fishermask.models.dropout.SeededDropout layers in it instead."
            )
        model = ModuleClassifier(built, example=torch.zeros(2, *shape))
        if model.num_classes != num_classes:
            raise ConfigError(
                f"model {name!r} has {model.num_classes} outputs but the data set has "
                f"{num_classes} classes; build its head with num_classes outputs."
            )
        return model
    else:
        raise ConfigError(
            f"the builder of model {name!r} returned {type(built).__name__}, not an nn.Module."
        )
    if dropout or hidden_dropout:
        model.set_dropout(dropout, hidden_dropout)
    return model


__all__ = [
    "MODELS",
    "ModuleClassifier",
    "available_models",
    "register_model",
    "Classifier",
    "ModelOutput",
    "build_model",
    "check_width",
    "has_dropout",
    "mc_dropout",
    "ResNet18",
    "SmallCNN",
    "MLP",
    "LinearHead",
]
