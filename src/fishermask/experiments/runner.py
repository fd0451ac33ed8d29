"""Run active-learning experiments: strategies x seeds over rounds, resumable at any kill.

Every random choice of a trial is drawn from a generator seeded by
``(seed, round, purpose)``, never from state carried across rounds, so a trial
restarted from its last committed round makes exactly the choices an
uninterrupted run makes (same seed, same machine). The initial labeled set and
the round-0 model depend on the seed alone, so strategies are compared on the
same start.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fishermask import __version__, strategies
from fishermask.al.pool import Pool, SimulatedOracle
from fishermask.data import apply_preset, load_dataset
from fishermask.data.base import ImageDataset, check_learnable
from fishermask.errors import ConfigError
from fishermask.experiments.config import ExperimentConfig, StrategySpec
from fishermask.experiments.progress import NullProgress
from fishermask.experiments.store import TrialStore, aggregate, write_json_atomic
from fishermask.models import build_model
from fishermask.models.base import Classifier
from fishermask.strategies.base import QueryContext, Strategy
from fishermask.training import Normalizer, evaluate, make_augmenter, train
from fishermask.training.trainer import AuxiliaryModule

_PURPOSES = {"initial": 1, "init": 2, "train": 3, "query": 4}


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
    return dev


def load_experiment_data(cfg: ExperimentConfig, progress: bool = False) -> ImageDataset:
    d = cfg.data
    ds = load_dataset(d.dataset, cache_dir=d.cache_dir, image_size=d.image_size, progress=progress)
    if d.preset or d.class_counts:
        ds = apply_preset(ds, d.preset, class_counts=d.class_counts, seed=d.preset_seed)
    check_learnable(ds)
    return ds


@dataclass
class Experiment:
    """A validated experiment ready to run: config, data, normaliser, device, strategies."""

    config: ExperimentConfig
    data: ImageDataset
    normalizer: Normalizer
    device: torch.device
    strategies: dict[str, Strategy]
    query_sizes: list[int]

    @classmethod
    def prepare(cls, config: ExperimentConfig, *, progress: bool = False) -> Experiment:
        """Load and check everything; raises before anything is written."""
        device = resolve_device(config.device)
        strats = {s.key: strategies.get(s.name, **s.options) for s in config.strategies}
        data = load_experiment_data(config, progress)
        sizes = config.loop.query_sizes(len(data.y_train))
        exp = cls(config, data, Normalizer.fit(data.x_train), device, strats, sizes)
        model = exp.new_model(0, 0)
        for strategy in strats.values():
            strategy.check(model)
        return exp

    def new_model(self, seed: int, round_: int) -> Classifier:
        torch.manual_seed(derive_seed(seed, round_, "init"))
        m = self.config.model
        model = build_model(m.name, self.data.num_classes, self.data.image_shape, m.width)
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
            "versions": {
                "fishermask": __version__,
                "python": platform.python_version(),
                "torch": torch.__version__,
                "numpy": np.__version__,
                "platform": platform.platform(),
                "device": _device_name(self.device),
                "cpu_count": os.cpu_count(),
            },
        }


def _fingerprint(x: torch.Tensor, y: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update(x.numpy().tobytes())
    h.update(y.numpy().tobytes())
    return h.hexdigest()[:16]


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def _comparable(meta: dict[str, Any]) -> dict[str, Any]:
    cfg = _with_defaults(meta["config"], ExperimentConfig().to_dict())
    cfg.pop("device", None)
    return {"config": cfg, "dataset": meta["dataset"]}


def _with_defaults(cfg: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with every key it lacks taken from ``defaults`` (nested sections too).

    A run directory made before a configuration field existed records no value for it; the
    field's default reproduces the old behaviour, so such a run resumes as long as the field
    keeps its default, and is refused (naming the field) when it is set to anything else.
    """
    out = dict(cfg)
    for key, value in defaults.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = _with_defaults(out[key], value)
    return out


def open_run_dir(exp: Experiment, out_dir: Path) -> None:
    """Create ``out_dir`` with ``config.json``, or check that it holds this same experiment."""
    out_dir = Path(out_dir)
    meta = exp.metadata()
    path = out_dir / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        if _comparable(old) != _comparable(meta):
            diff = _diff_keys(_comparable(old), _comparable(meta))
            raise ConfigError(
                f"{out_dir} holds a run with a different configuration (differs in: "
                f"{', '.join(diff[:6])}); use a new --out, or delete {out_dir} to start over."
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.rglob(".*.tmp"):  # left by a run killed mid-write
        stale.unlink(missing_ok=True)
    write_json_atomic(path, meta)


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _clean(v: float) -> float | None:
    return None if v != v else v


def run_trial(
    exp: Experiment,
    spec: StrategySpec,
    seed: int,
    out_dir: Path,
    *,
    progress: NullProgress | None = None,
    on_commit: Any = None,
) -> list[dict[str, Any]]:
    """Run (or resume) one (strategy, seed) trial; returns its round records."""
    progress = progress or NullProgress()
    cfg = exp.config
    torch.set_num_threads(cfg.threads)
    if exp.device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    strategy = exp.strategies[spec.key]
    store = TrialStore(out_dir, spec.key, seed)
    n_rounds = len(exp.query_sizes) + 1
    records = store.records(n_rounds)
    if len(records) == n_rounds:
        return records  # finished earlier
    progress.start_trial(f"{spec.key} seed {seed}", n_rounds, len(records))
    ds = exp.data
    oracle = SimulatedOracle(ds.y_train)
    augmenter = make_augmenter(cfg.train, exp.normalizer, ds.image_shape[0])

    pool = Pool(len(ds.y_train))
    for rec in records:
        pool.add(rec["queried"], torch.tensor(rec["labels"], dtype=torch.int64))

    model: Classifier | None = None
    aux: AuxiliaryModule | None = None
    if records:
        last = records[-1]["round"]
        state = store.checkpoint(last)
        model = exp.new_model(seed, last)
        aux = _make_aux(strategy, model, exp.device)
        model.load_state_dict(state["model"])
        if aux is not None and state.get("aux") is not None:
            aux.load_state_dict(state["aux"])
        model.eval()

    for r in range(len(records), n_rounds):
        query_seconds = 0.0
        info: dict[str, Any] = {}
        if r == 0:
            queried = torch.randperm(pool.size, generator=generator(seed, 0, "initial"))
            queried = queried[: cfg.loop.initial]
        else:
            assert model is not None
            ctx = QueryContext(
                model=model,
                pool=pool,
                images=ds.x_train,
                normalizer=exp.normalizer,
                generator=generator(seed, r, "query"),
                aux=aux,
                batch_size=cfg.train.eval_batch_size,
                round=r,
            )
            t0 = time.perf_counter()
            sel = strategy.select(ctx, exp.query_sizes[r - 1])
            _sync(exp.device)
            query_seconds = time.perf_counter() - t0
            queried, info = sel.indices, sel.info
        labels = oracle.label(queried.tolist())
        pool.add(queried.tolist(), labels)

        if model is None or cfg.train.reinit:
            model = exp.new_model(seed, r)
            aux = _make_aux(strategy, model, exp.device)
        labeled = pool.labeled
        result = train(
            model,
            ds.x_train[labeled],
            pool.labels_of(labeled),
            cfg.train,
            augmenter,
            generator=generator(seed, r, "train"),
            aux=aux,
            on_epoch=progress.epoch,
        )
        metrics = evaluate(
            model, ds.x_test, ds.y_test, exp.normalizer, batch_size=cfg.train.eval_batch_size
        )
        record = {
            "strategy": spec.key,
            "name": spec.name,
            "seed": seed,
            "round": r,
            "n_labeled": pool.num_labeled,
            "accuracy": metrics.accuracy,
            "balanced_accuracy": metrics.balanced_accuracy,
            "per_class_accuracy": [_clean(a) for a in metrics.per_class_accuracy],
            "query_seconds": round(query_seconds, 4),
            "train_seconds": round(result.seconds, 4),
            "train_epochs": result.epochs,
            "train_steps": result.steps,
            "train_accuracy": result.train_accuracy,
            "queried": queried.tolist(),
            "labels": labels.tolist(),
            "info": info,
        }
        state = {
            "round": r,
            "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "aux": {k: v.cpu() for k, v in aux.state_dict().items()} if aux is not None else None,
        }
        store.commit(record, state)
        records.append(record)
        progress.round_done(f"{pool.num_labeled} labels, acc {metrics.accuracy:.3f}")
        if on_commit is not None:
            on_commit(record)
    progress.end_trial()
    return records


def _make_aux(
    strategy: Strategy, model: Classifier, device: torch.device
) -> AuxiliaryModule | None:
    aux = strategy.make_auxiliary(model)
    return aux.to(device) if aux is not None else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_experiment(
    exp: Experiment,
    out_dir: Path,
    *,
    progress: NullProgress | None = None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
) -> list[dict[str, Any]]:
    """Run every (strategy, seed) trial of ``exp`` into ``out_dir`` (resuming what is there).

    ``workers > 1`` runs trials in that many processes (``executor="local"``); with
    ``executor="ray"`` they run as Ray tasks on the cluster at ``address`` (a local Ray
    instance when ``None``; ``out_dir`` must then be on a file system all nodes share).
    Results do not depend on either: each trial draws only from its own seeded generators
    and runs with ``config.threads`` torch threads wherever it runs.
    """
    out_dir = Path(out_dir)
    open_run_dir(exp, out_dir)
    order = [s.key for s in exp.config.strategies]
    classes = list(exp.data.classes)
    trials = [(spec.key, seed) for spec in exp.config.strategies for seed in exp.config.seeds]
    if executor == "local" and workers <= 1:
        specs = {s.key: s for s in exp.config.strategies}

        def on_commit(_: dict[str, Any]) -> None:
            aggregate(out_dir, order, classes)

        for key, seed in trials:
            run_trial(exp, specs[key], seed, out_dir, progress=progress, on_commit=on_commit)
    else:
        from fishermask.experiments.parallel import run_parallel

        run_parallel(
            exp,
            out_dir,
            trials,
            workers=workers,
            executor=executor,
            address=address,
            progress=progress,
        )
    return aggregate(out_dir, order, classes)
