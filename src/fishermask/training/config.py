"""Training configuration (the FisherMask paper's recipe is the default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fishermask.errors import ConfigError, check_choice, check_positive
from fishermask.validation import Section

OPTIMIZERS = ("adam", "sgd")
STOP_RULES = ("accuracy", "epochs")
AUGMENTATIONS = ("auto", "none", "crop", "crop_flip")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig(Section):
    """How the classifier is trained each round.

    Default (paper, docs/methods.md §1.3): re-initialise every round, Adam lr 1e-3 without
    weight decay, train until the epoch's training accuracy reaches
    ``target_accuracy`` (0.99) or ``max_epochs`` is hit; random crop (pad 4) +
    horizontal flip + normalisation. ``stop="epochs"`` trains exactly
    ``epochs`` epochs instead (e.g. the LPLgrad recipe: SGD lr 0.1, momentum
    0.9, weight decay 5e-4, 200 epochs, ``milestones=(160,)``).

    ``max_steps`` (0: no cap) ends training after that many optimizer steps, mid-epoch
    if need be, whatever the stop rule: it bounds a round's cost when the labeled set
    grows large (the labeling tool uses it; the ``cpu`` experiment profiles do not: they cap
    epochs only, docs/decisions.md).

    ``precision="bf16"`` runs the training forward pass and loss under bfloat16 autocast
    (weights, optimizer and evaluation stay float32): about twice the speed on a recent GPU,
    different (not worse on average) results; ``fp32`` (default) everywhere else.

    ``channels_last`` trains in the NHWC memory format (the model is converted for the
    training and back afterwards, so queries and evaluation see the usual layout): faster
    convolutions on many CPUs and GPUs, slightly different rounding, hence different results.

    ``augment="auto"`` means crop + flip for RGB images and crop only for grey
    ones (digits are not mirror-symmetric). ``crop_padding`` applies to images of
    28 px and more; smaller ones get ``round(crop_padding * min(H, W) / 28)`` (1 on
    8x8 digits), see :func:`fishermask.training.augment.scaled_padding`.

    Every field is checked against its annotation on construction (see
    :mod:`fishermask.validation`); :meth:`check` adds the ranges and choices.
    """

    section: ClassVar[str] = "train"

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    stop: str = "accuracy"
    target_accuracy: float = 0.99
    max_epochs: int = 100
    epochs: int = 200
    max_steps: int = 0
    milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    augment: str = "auto"
    crop_padding: int = 4
    reinit: bool = True
    eval_batch_size: int = 512
    precision: str = "fp32"
    channels_last: bool = False

    def check(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("stop rule", self.stop, STOP_RULES)
        check_choice("augmentation", self.augment, AUGMENTATIONS)
        check_choice("precision", self.precision, PRECISIONS)
        check_positive("batch_size", self.batch_size)
        check_positive("max_epochs", self.max_epochs)
        check_positive("epochs", self.epochs)
        check_positive("max_steps", self.max_steps, allow_zero=True)
        check_positive("eval_batch_size", self.eval_batch_size)
        check_positive("crop_padding", self.crop_padding, allow_zero=True)
        if not 0.0 < self.target_accuracy <= 1.0:
            raise ConfigError(f"`target_accuracy`={self.target_accuracy}, must be in (0, 1].")
        for name in ("lr", "lr_gamma"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"`{name}`={getattr(self, name)}, must be > 0.")
        for name in ("momentum", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"`{name}`={getattr(self, name)}, must be >= 0.")
        for m in self.milestones:
            check_positive("milestones", m)

    @property
    def epoch_limit(self) -> int:
        return self.max_epochs if self.stop == "accuracy" else self.epochs
