"""Train a classifier (optionally with an auxiliary module trained jointly) and evaluate it.

Index convention: N images, C classes, D embedding size. Images enter as uint8
``[N, Ch, H, W]``; every batch is moved to the model's device, augmented and
normalised there.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fishermask.models.base import Classifier, ModelOutput, eval_mode, input_dtype
from fishermask.models.dropout import set_dropout_generator
from fishermask.training.augment import Augmenter, Normalizer
from fishermask.training.config import TrainConfig


class AuxiliaryModule(nn.Module):
    """A module trained jointly with the classifier (e.g. LPL's loss-prediction module).

    The trainer adds :meth:`loss` to the mean cross-entropy of every batch and
    optimises the auxiliary parameters with the classifier's.
    """

    def loss(
        self, out: ModelOutput, per_sample_loss: torch.Tensor, epoch: int, epoch_limit: int
    ) -> torch.Tensor:
        """Extra loss for one batch of epoch ``epoch`` (from 1) of at most ``epoch_limit``.

        ``per_sample_loss`` is the CE ``[B]`` (not detached).
        """
        raise NotImplementedError


@dataclass(frozen=True)
class TrainResult:
    epochs: int
    train_accuracy: float
    seconds: float
    steps: int = 0


@dataclass(frozen=True)
class Metrics:
    accuracy: float
    balanced_accuracy: float
    per_class_accuracy: tuple[float, ...]  # nan for classes absent from the evaluation set
    # [C_true, C_pred] counts: row t, column p = items of class t predicted as p
    confusion: tuple[tuple[int, ...], ...] = ()


EpochCallback = Callable[[int, int, float], None]  # (epoch, epoch_limit, train_accuracy)


def make_augmenter(
    config: TrainConfig, normalizer: Normalizer, channels: int, features: bool = False
) -> Augmenter:
    """The augmentation ``config.augment`` asks for (``auto``: flip only RGB images;
    none for ``features``, vectors ``[D, 1, 1]`` rather than images)."""
    mode = config.augment
    if mode == "auto":
        mode = "none" if features else "crop_flip" if channels == 3 else "crop"
    padding = config.crop_padding if mode in ("crop", "crop_flip") else 0
    return Augmenter(normalizer, crop_padding=padding, hflip=mode == "crop_flip")


def _optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def train(
    model: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    augmenter: Augmenter,
    *,
    generator: torch.Generator,
    aux: AuxiliaryModule | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train ``model`` (and ``aux``) on uint8 ``images [N, Ch, H, W]`` and ``labels [N]``.

    Stops at ``config.target_accuracy`` training accuracy (measured on the
    augmented batches of the epoch, as the reference code does) or at the epoch
    limit, or after ``config.max_steps`` optimizer steps. Batch order and augmentation
    draw from ``generator`` only.
    """
    device = next(model.parameters()).device
    start = time.perf_counter()
    params = list(model.parameters()) + (list(aux.parameters()) if aux is not None else [])
    optimizer = _optimizer(params, config)
    scheduler = (
        torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones), config.lr_gamma)
        if config.milestones
        else None
    )
    autocast = (
        functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)
        if config.precision == "bf16"
        else contextlib.nullcontext
    )
    nhwc = config.channels_last and images.dim() == 4  # image batches only
    fmt = torch.channels_last if nhwc else torch.contiguous_format
    if nhwc:
        model.to(memory_format=fmt)
    x_all = images.to(device)
    y_all = labels.to(device)
    n = len(y_all)
    limit = config.epoch_limit
    accuracy = 0.0
    epoch = steps = 0
    capped = False
    model.train()
    if aux is not None:
        aux.train()
    # dropout masks (models built with dropout > 0) come from the round's generator too
    set_dropout_generator(model, generator)
    for epoch in range(1, limit + 1):
        order = torch.randperm(n, generator=generator).to(device)
        correct = torch.zeros((), dtype=torch.int64, device=device)  # no host sync per batch
        seen = 0
        for start_i in range(0, n, config.batch_size):
            idx = order[start_i : start_i + config.batch_size]
            if len(idx) < 2 and n >= 2:
                continue  # a lone sample breaks BatchNorm's batch statistics
            x = augmenter(x_all[idx], generator).contiguous(memory_format=fmt)
            y = y_all[idx]
            with autocast():
                if aux is None:
                    logits = model(x)
                    loss = F.cross_entropy(logits, y)
                else:
                    out = model.forward_features(x)
                    logits = out.logits
                    per_sample = F.cross_entropy(logits, y, reduction="none")
                    loss = per_sample.mean() + aux.loss(out, per_sample, epoch, limit)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            steps += 1
            if steps == config.max_steps:
                capped = True
                break
        if scheduler is not None:
            scheduler.step()
        accuracy = int(correct) / max(seen, 1)
        if on_epoch is not None:
            on_epoch(epoch, limit, accuracy)
        if capped or (config.stop == "accuracy" and accuracy >= config.target_accuracy):
            break
    set_dropout_generator(model, None)
    model.eval()
    if nhwc:
        model.to(memory_format=torch.contiguous_format)
    if aux is not None:
        aux.eval()
    return TrainResult(
        epochs=epoch, train_accuracy=accuracy, seconds=time.perf_counter() - start, steps=steps
    )


@torch.no_grad()
def predict(
    model: Classifier,
    images: torch.Tensor,
    normalizer: Normalizer,
    *,
    batch_size: int = 512,
    embeddings: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax probabilities ``[N, C]`` (and embeddings ``[N, D]``), eval mode, model's device."""
    device = next(model.parameters()).device
    probs, embs = [], []
    with eval_mode(model):
        for i in range(0, len(images), batch_size):
            x = normalizer(images[i : i + batch_size].to(device), input_dtype(model))
            out = model.forward_features(x)
            probs.append(out.logits.softmax(dim=1))
            if embeddings:
                embs.append(out.embedding)
    c = model.num_classes
    p = torch.cat(probs) if probs else torch.empty(0, c, device=device)
    e = (
        (torch.cat(embs) if embs else torch.empty(0, model.embedding_dim, device=device))
        if embeddings
        else None
    )
    return p, e


def evaluate(
    model: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalizer: Normalizer,
    *,
    batch_size: int = 512,
) -> Metrics:
    """Accuracy, balanced accuracy (mean recall over present classes) and per-class accuracy."""
    probs, _ = predict(model, images, normalizer, batch_size=batch_size)
    pred = probs.argmax(1).cpu()
    return metrics_from_predictions(pred, labels.cpu(), model.num_classes)


def metrics_from_predictions(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Metrics:
    """Metrics of predicted classes ``pred`` [N] against ``labels`` [N], both in 0..C-1."""
    correct = (pred == labels).to(torch.float64)
    per_class = []
    for c in range(num_classes):
        sel = labels == c
        per_class.append(float(correct[sel].mean()) if bool(sel.any()) else float("nan"))
    present = [a for a in per_class if a == a]
    return Metrics(
        accuracy=float(correct.mean()) if len(correct) else float("nan"),
        balanced_accuracy=sum(present) / len(present) if present else float("nan"),
        per_class_accuracy=tuple(per_class),
        confusion=confusion_matrix(pred, labels, num_classes),
    )


def confusion_matrix(
    pred: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> tuple[tuple[int, ...], ...]:
    """``[C_true, C_pred]`` counts: entry (t, p) is how many items of class t were predicted
    as p (one ``bincount`` over the predictions already made for the accuracy)."""
    flat = labels.to(torch.int64) * num_classes + pred.to(torch.int64)  # [N]
    counts = torch.bincount(flat, minlength=num_classes * num_classes)  # [C * C]
    return tuple(tuple(row) for row in counts.view(num_classes, num_classes).tolist())
