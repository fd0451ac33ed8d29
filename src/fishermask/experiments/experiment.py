"""A validated experiment: configuration, data, normaliser, device and strategies.

Every random choice of a trial is drawn from a generator seeded by
``(seed, round, purpose)``, never from state carried across rounds, so a trial
restarted from its last committed round makes exactly the choices an
uninterrupted run makes (same seed, same machine). The initial labeled set and
the round-0 model depend on the seed alone, so strategies are compared on the
same start.
"""

from __future__ import annotations

import hashlib
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fishermask import __version__, strategies
from fishermask.data import apply_preset, load_dataset
from fishermask.data.arrays import make_dataset
from fishermask.data.base import ImageDataset, check_learnable
from fishermask.data.features import attach_features, backbone_features
from fishermask.data.images import check_image_size
from fishermask.data.memory import SPLITS, dataset_sha256
from fishermask.errors import ConfigError, DataError
from fishermask.experiments.config import ExperimentConfig
from fishermask.models import build_model, check_width
from fishermask.models.base import Classifier
from fishermask.plugins import import_sha256
from fishermask.strategies.base import Strategy
from fishermask.training import Normalizer

# "candidates": the labeling tool's random subsample of the pool per query (fishermask.label)
_PURPOSES = {"initial": 1, "init": 2, "train": 3, "query": 4, "candidates": 5}


def derive_seed(seed: int, round_: int, purpose: str) -> int:
    """A 63-bit seed for one purpose of one round of one trial."""
    ss = np.random.SeedSequence([seed, round_, _PURPOSES[purpose]])
    return int(ss.generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def generator(seed: int, round_: int, purpose: str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, round_, purpose))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"Unknown device {name!r}; use cpu, cuda, cuda:N or auto.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"Device {name!r} asked for, but this torch build sees no CUDA GPU.")
    if dev.type not in ("cpu", "cuda"):  # mps, xpu, ...: torch's error came from deep in a run
        try:
            torch.empty(1, device=dev)
        except (RuntimeError, AssertionError):  # torch's message can run to 2 000 chars
            raise ConfigError(
                f"Device {name!r} is not available in this torch build on this machine; use "
                "cpu, cuda, cuda:N or auto."
            ) from None
    return dev


def load_experiment_data(
    cfg: ExperimentConfig, progress: bool = False, data: ImageDataset | None = None
) -> ImageDataset:
    """The experiment's data set: loaded from ``data.dataset`` (or ``data``, the same data set
    already in memory), checked against ``data.sha256``, resized, featurised, preset."""
    d = cfg.data
    if d.sha256 is None and data is None:
        ds = load_dataset(
            d.dataset, cache_dir=d.cache_dir, image_size=d.image_size, progress=progress
        )
    else:
        ds = data if data is not None else load_dataset(d.dataset, progress=progress)
        _check_sha256(ds, d.sha256, d.dataset)
        if d.image_size is not None:  # as the .npz loader resizes, so both give the same bytes
            ds = resize_dataset(ds, d.image_size, progress)
    if d.features is not None:
        ds = attach_features(ds, d.features)
    elif d.backbone is not None:
        ds = backbone_features(
            ds, d.backbone, cache_dir=d.cache_dir, device=resolve_device(cfg.device)
        )
    if d.preset or d.class_counts:
        ds = apply_preset(ds, d.preset, class_counts=d.class_counts, seed=d.preset_seed)
    check_learnable(ds)
    return ds


def _check_sha256(ds: ImageDataset, expected: str | None, source: str) -> None:
    if expected is None:
        return
    actual = dataset_sha256(ds)
    if actual != expected:
        raise DataError(
            f"data.sha256 mismatch: {source} holds data with sha256 {actual[:16]}…, the run "
            f"recorded {expected[:16]}…; restore that data or start a new run directory."
        )


def resize_dataset(ds: ImageDataset, size: Sequence[int], progress: bool) -> ImageDataset:
    """``ds`` resized (bilinear) by the function the array loaders use."""
    splits = {s: (getattr(ds, f"x_{s}").numpy(), getattr(ds, f"y_{s}").numpy()) for s in SPLITS}
    return make_dataset(ds.name, splits, ds.classes, check_image_size(size), progress)


def uses_features(cfg: ExperimentConfig) -> bool:
    """Whether the model trains on features (``data.features`` or ``data.backbone``)."""
    return cfg.data.features is not None or cfg.data.backbone is not None


@dataclass
class Experiment:
    """A validated experiment ready to run: config, data, normaliser, device, strategies."""

    config: ExperimentConfig
    data: ImageDataset
    normalizer: Normalizer
    device: torch.device
    strategies: dict[str, Strategy]
    query_sizes: list[int]
    allow_env_change: bool = False  # resume trials whose earlier rounds ran elsewhere
    import_sha256: dict[str, str] = field(default_factory=dict)  # entry -> source SHA-256

    @classmethod
    def prepare(
        cls,
        config: ExperimentConfig,
        *,
        progress: bool = False,
        allow_env_change: bool = False,
        data: ImageDataset | None = None,
    ) -> Experiment:
        """Load and check everything; raises before anything is written.

        ``data``: the data set ``config.data.dataset`` holds, already in memory (what
        ``fishermask.run`` converted and wrote); it must match ``config.data.sha256``, which
        worker processes check when they load the file.
        """
        if data is not None and config.data.sha256 is None:
            raise ConfigError(
                "Experiment.prepare(data=...) needs config.data.sha256 (dataset_sha256(data)) "
                "and config.data.dataset naming the .npz holding it, so that worker processes "
                "and a resume load the same data; fishermask.run does both."
            )
        device = resolve_device(config.device)
        imported = import_sha256(config.imports)  # the user's own code registers itself
        strats = {s.key: strategies.get(s.name, **s.options) for s in config.strategies}
        if uses_features(config) and config.train.augment not in ("auto", "none"):
            raise ConfigError(
                f"Augmentation {config.train.augment!r} crops and flips images; on features "
                "use --augment none (or auto)."
            )
        data = load_experiment_data(config, progress, data)
        sizes = config.loop.query_sizes(len(data.y_train))
        normalizer = Normalizer.fit(data.x_train)
        exp = cls(config, data, normalizer, device, strats, sizes, allow_env_change, imported)
        model = exp.new_model(0, 0)
        m = config.model  # a registered model of the user's own is checked once built
        check_width(
            m.name, m.width, model=model, num_classes=data.num_classes, image_shape=data.image_shape
        )
        for strategy in strats.values():
            strategy.check(model)
        return exp

    def new_model(self, seed: int, round_: int) -> Classifier:
        torch.manual_seed(derive_seed(seed, round_, "init"))
        m = self.config.model
        model = build_model(
            m.name,
            self.data.num_classes,
            self.data.image_shape,
            m.width,
            dropout=m.dropout,
            hidden_dropout=m.hidden_dropout,
        )
        return model.to(self.device)

    def metadata(self) -> dict[str, Any]:
        ds = self.data
        return {
            "config": self.config.to_dict(),
            "strategy_options": {k: s.options() for k, s in self.strategies.items()},
            "dataset": {
                "name": ds.name,
                "classes": list(ds.classes),
                "image_shape": list(ds.image_shape),
                "train_class_counts": ds.class_counts("train"),
                "test_class_counts": ds.class_counts("test"),
                "train_fingerprint": _fingerprint(ds.x_train, ds.y_train),
            },
            "normalizer": {"mean": list(self.normalizer.mean), "std": list(self.normalizer.std)},
            "query_sizes": self.query_sizes,
            "versions": environment(self.device),
        }


def environment(device: torch.device) -> dict[str, Any]:
    """The software and hardware a round runs on (results may depend on any of it)."""
    return {
        "fishermask": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": _device_name(device),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
    }


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else what ``platform`` says). Recorded because
    CPU training results differ between CPU models with the same software: the kernels
    chosen for a CPU set the floating-point summation order (measured: the same Setting 1
    round-0 model at seed 0 scored 53.35 % on one 2-core VM and 49.05 % on another, with the
    same code, torch and data)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fingerprint(x: torch.Tensor, y: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update(x.numpy().tobytes())
    h.update(y.numpy().tobytes())
    return h.hexdigest()[:16]


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()
