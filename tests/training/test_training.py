"""Augmentation, normalisation, training stop rules and metrics."""

from __future__ import annotations

import math

import pytest
import torch

from fishermask.errors import ConfigError
from fishermask.models import build_model
from fishermask.training import (
    Normalizer,
    TrainConfig,
    evaluate,
    make_augmenter,
    metrics_from_predictions,
    train,
)
from fishermask.training.augment import Augmenter, random_crop, random_hflip, scaled_padding


def test_random_crop_matches_per_image_reference() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 5, 7, generator=g)
    out = random_crop(x, 2, torch.Generator().manual_seed(1))
    g2 = torch.Generator().manual_seed(1)
    oy = torch.randint(0, 5, (6,), generator=g2)
    ox = torch.randint(0, 5, (6,), generator=g2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):
        ref = padded[i, :, oy[i] : oy[i] + 5, ox[i] : ox[i] + 7]
        assert torch.equal(out[i], ref)


def test_hflip_flips_about_half() -> None:
    x = torch.arange(2000 * 3, dtype=torch.float32).reshape(2000, 1, 1, 3)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == x[:, 0, 0, 2]).float().mean()
    assert 0.45 < flipped < 0.55
    same = (out == x).all(dim=(1, 2, 3)) | (out == x.flip(-1)).all(dim=(1, 2, 3))
    assert same.all()


def test_normalizer_fit_and_apply() -> None:
    imgs = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8)
    norm = Normalizer.fit(imgs)
    z = norm(imgs, torch.float64)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-4)


def test_auto_augment_flips_rgb_only() -> None:
    norm = Normalizer((0.5,), (0.5,))
    assert make_augmenter(TrainConfig(), norm, 3).hflip
    assert not make_augmenter(TrainConfig(), norm, 1).hflip
    assert make_augmenter(TrainConfig(augment="none"), norm, 3).crop_padding == 0


@pytest.mark.parametrize(("size", "padding"), [(32, 4), (28, 4), (64, 4), (14, 2), (8, 1), (3, 0)])
def test_crop_padding_scales_down_for_small_images(size: int, padding: int) -> None:
    # 28 px and up (MNIST, CIFAR) keep the configured 4 pixels exactly, so published
    # results stay reproducible; a 4-pixel shift of an 8x8 digit removed half of it
    assert scaled_padding(4, size, size) == padding
    norm = Normalizer((0.5,), (0.25,))
    x = torch.randint(0, 256, (16, 1, size, size), dtype=torch.uint8)
    out = Augmenter(norm, crop_padding=4, hflip=False)(x, torch.Generator().manual_seed(3))
    ref = norm(random_crop(x.float() / 255.0, padding, torch.Generator().manual_seed(3)))
    assert torch.equal(out, ref)


def _toy(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 2
    x = torch.randint(0, 60, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    x[y == 1, :, :4] += 150  # class 1 is bright on top: easy to learn
    return x, y


def test_train_stops_at_target_accuracy_or_cap() -> None:
    x, y = _toy()
    norm = Normalizer.fit(x)
    cfg = TrainConfig(max_epochs=60, augment="none", batch_size=8)
    torch.manual_seed(0)
    model = build_model("cnn", 2, (1, 8, 8), 0.5)
    res = train(
        model, x, y, cfg, make_augmenter(cfg, norm, 1), generator=torch.Generator().manual_seed(0)
    )
    assert res.train_accuracy >= 0.99 and res.epochs < 60
    assert not model.training
    fixed = TrainConfig(stop="epochs", epochs=3, augment="none")
    res = train(
        build_model("cnn", 2, (1, 8, 8), 0.5),
        x,
        y,
        fixed,
        make_augmenter(fixed, norm, 1),
        generator=torch.Generator().manual_seed(0),
    )
    assert res.epochs == 3


def test_trained_model_generalises_in_eval_mode() -> None:
    # Enough steps for BatchNorm's running statistics to settle (a 2-epoch stop on 40 images
    # leaves them near their initial values, and eval mode then sees other statistics).
    x, y = _toy(80)
    norm = Normalizer.fit(x[:40])
    cfg = TrainConfig(stop="epochs", epochs=15, augment="none", batch_size=8)
    torch.manual_seed(0)
    model = build_model("cnn", 2, (1, 8, 8), 0.5)
    train(
        model,
        x[:40],
        y[:40],
        cfg,
        make_augmenter(cfg, norm, 1),
        generator=torch.Generator().manual_seed(0),
    )
    assert evaluate(model, x[40:], y[40:], norm).accuracy > 0.9


def test_milestones_lower_the_learning_rate() -> None:
    """After a milestone the steps are lr_gamma times smaller: with a gamma near 0 the second
    epoch leaves the weights where the first put them; without the milestone it moves them."""
    x, y = _toy(16)

    def weights(epochs: int, milestones: tuple[int, ...]) -> torch.Tensor:
        cfg = TrainConfig(
            optimizer="sgd", lr=0.1, momentum=0.0, stop="epochs", epochs=epochs,
            milestones=milestones, lr_gamma=1e-12,
        )  # fmt: skip
        torch.manual_seed(0)
        model = build_model("mlp", 2, (1, 8, 8), 0.25)
        train(
            model,
            x,
            y,
            cfg,
            make_augmenter(cfg, Normalizer.fit(x), 1),
            generator=torch.Generator().manual_seed(0),
        )
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    after_one = weights(1, ())
    assert (weights(2, (1,)) - after_one).abs().max() < 1e-9
    assert (weights(2, ()) - after_one).abs().max() > 1e-4


def test_training_is_deterministic() -> None:
    x, y = _toy()
    norm = Normalizer.fit(x)
    cfg = TrainConfig(max_epochs=3)
    states = []
    for _ in range(2):
        torch.manual_seed(1)
        m = build_model("cnn", 2, (1, 8, 8), 0.5)
        train(
            m, x, y, cfg, make_augmenter(cfg, norm, 1), generator=torch.Generator().manual_seed(2)
        )
        states.append(m.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_metrics() -> None:
    pred = torch.tensor([0, 0, 1, 1, 2, 0])
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    m = metrics_from_predictions(pred, y, 3)
    assert m.accuracy == pytest.approx(3 / 6)
    assert m.per_class_accuracy[:2] == pytest.approx((2 / 3, 1 / 3))
    assert math.isnan(m.per_class_accuracy[2])
    assert m.balanced_accuracy == pytest.approx(0.5)
    # rows: true class, columns: predicted class; per-class accuracy is the diagonal / row sum
    assert m.confusion == ((2, 1, 0), (1, 1, 1), (0, 0, 0))


def test_bad_train_config() -> None:
    with pytest.raises(ConfigError, match="optimizer 'rmsprop'"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ConfigError, match="target_accuracy"):
        TrainConfig(target_accuracy=1.5)


def test_max_steps_caps_optimizer_steps_mid_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """``max_steps`` ends training after exactly that many steps, inside an epoch."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (100, 1, 8, 8), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 3, (100,), generator=gen)
    model = build_model("mlp", 3, (1, 8, 8), 0.25)
    norm = Normalizer.fit(images)
    config = TrainConfig(stop="epochs", epochs=10, batch_size=16, max_steps=9)
    stepped = []
    opt_step = torch.optim.Adam.step

    def counting_step(self, *a, **k):  # type: ignore[no-untyped-def]
        stepped.append(1)
        return opt_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    aug = make_augmenter(config, norm, 1)
    result = train(model, images, labels, config, aug, generator=torch.Generator().manual_seed(1))
    assert len(stepped) == 9 and result.steps == 9
    assert result.epochs == 2  # 7 steps per epoch of 100 images in batches of 16
    stepped.clear()
    two_epochs = TrainConfig(stop="epochs", epochs=2, batch_size=16)
    model = build_model("mlp", 3, (1, 8, 8), 0.25)
    uncapped = train(model, images, labels, two_epochs, aug, generator=torch.Generator())
    assert len(stepped) == 14 and uncapped.steps == 14


def test_max_steps_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match="max_steps"):
        TrainConfig(max_steps=-1)


def _trained_cnn(**options: object) -> torch.nn.Module:
    """The toy CNN after two epochs of training with ``TrainConfig(**options)``."""
    x, y = _toy()
    cfg = TrainConfig(stop="epochs", epochs=2, **options)
    torch.manual_seed(1)
    m = build_model("cnn", 2, (1, 8, 8), 0.5)
    gen = torch.Generator().manual_seed(2)
    train(m, x, y, cfg, make_augmenter(cfg, Normalizer.fit(x), 1), generator=gen)
    return m


def test_bf16_autocast_trains_float32_weights_differently() -> None:
    fp32 = _trained_cnn(precision="fp32").state_dict()
    bf16 = _trained_cnn(precision="bf16").state_dict()
    assert all(v.dtype == fp32[k].dtype for k, v in bf16.items())  # weights stay float32
    assert all(torch.isfinite(v.float()).all() for v in bf16.values())
    assert not all(torch.equal(fp32[k], bf16[k]) for k in fp32 if k.endswith("weight"))
    with pytest.raises(ConfigError, match="precision 'fp16'"):
        TrainConfig(precision="fp16")


def test_channels_last_trains_and_hands_back_a_contiguous_model() -> None:
    m = _trained_cnn(channels_last=True)
    assert all(p.is_contiguous() for p in m.parameters())  # queries see the usual layout
    reference = _trained_cnn(precision="fp32").state_dict()
    assert all(torch.allclose(v, reference[k], atol=1e-3) for k, v in m.state_dict().items())
