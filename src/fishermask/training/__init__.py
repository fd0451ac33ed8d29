"""Training, augmentation and evaluation."""

from fishermask.training.augment import Augmenter, Normalizer
from fishermask.training.config import TrainConfig
from fishermask.training.trainer import (
    AuxiliaryModule,
    Metrics,
    TrainResult,
    evaluate,
    make_augmenter,
    metrics_from_predictions,
    predict,
    train,
)

__all__ = [
    "Augmenter",
    "AuxiliaryModule",
    "Metrics",
    "Normalizer",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "make_augmenter",
    "metrics_from_predictions",
    "predict",
    "train",
]
