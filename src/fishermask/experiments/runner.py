"""Run an experiment: every (strategy, seed) trial into one run directory, resumable.

Trials run one after another here, or in parallel processes or Ray tasks
(:mod:`fishermask.experiments.parallel`); results do not depend on which. A run
stopped by Ctrl-C or by a failing trial keeps every committed round, writes the
partial ``results.csv``, and continues when started again with the same ``--out``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from fishermask.errors import ConfigError
from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.experiment import (  # noqa: F401 - the public API lives here too
    Experiment,
    derive_seed,
    generator,
    load_experiment_data,
    resolve_device,
)
from fishermask.experiments.parallel import check_workers_can_import, run_parallel, trial_failed
from fishermask.experiments.progress import NullProgress
from fishermask.experiments.store import aggregate, write_json_atomic
from fishermask.experiments.trial import run_trial


def _comparable(meta: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with the run in its directory.

    The configuration is read back through :class:`ExperimentConfig`, so a field added
    to it since (whose default keeps the old behaviour) does not stop a resume.
    """
    cfg = meta["config"]
    try:
        cfg = ExperimentConfig.from_dict(cfg).to_dict()
    except ConfigError:
        pass  # compared as written: it differs from any valid configuration
    cfg = dict(cfg)
    cfg.pop("device", None)
    return {"config": cfg, "dataset": meta["dataset"]}


def check_run_dir(exp: Experiment, out_dir: Path, meta: dict[str, Any] | None = None) -> None:
    """Refuse an ``out_dir`` whose ``config.json`` records another experiment (writes nothing)."""
    path = Path(out_dir) / "config.json"
    if not path.exists():
        return
    meta = exp.metadata() if meta is None else meta
    old = json.loads(path.read_text())
    if _comparable(old) != _comparable(meta):
        diff = _diff_keys(_comparable(old), _comparable(meta))
        raise ConfigError(
            f"{out_dir} holds a run with a different configuration (differs in: "
            f"{', '.join(diff[:6])}); use a new --out, or delete {out_dir} to start over."
        )


def open_run_dir(exp: Experiment, out_dir: Path) -> None:
    """Create ``out_dir`` with ``config.json``, or check that it holds this same experiment.

    An existing ``config.json`` is never rewritten: it records the run as first started
    (each round records the environment it ran in).
    """
    out_dir = Path(out_dir)
    meta = exp.metadata()
    path = out_dir / "config.json"
    check_run_dir(exp, out_dir, meta)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.rglob(".*.tmp"):  # left by a run killed mid-write
        stale.unlink(missing_ok=True)
    if not path.exists():
        write_json_atomic(path, meta)


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def trial_order(config: ExperimentConfig) -> list[tuple[str, int]]:
    """The (strategy key, seed) trials of ``config`` in the order they run: seed-major.

    Every strategy on the first seed, then every strategy on the next, so that a run stopped
    part-way (the long CPU runs span sessions) already holds paired comparisons of all
    strategies on the seeds it finished. Results do not depend on the order: each trial draws
    only from its own seeded generators.
    """
    return [(spec.key, seed) for seed in config.seeds for spec in config.strategies]


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

    On Ctrl-C (``KeyboardInterrupt``) or a failing trial, the queued trials are cancelled,
    running ones stop at their next safe point, ``results.csv`` is written from the rounds
    committed so far, and the exception propagates.
    """
    out_dir = Path(out_dir)
    check_workers_can_import(exp, workers, executor)
    open_run_dir(exp, out_dir)
    order = [s.key for s in exp.config.strategies]
    classes = list(exp.data.classes)
    trials = trial_order(exp.config)
    try:
        if executor == "local" and workers <= 1:
            specs = {s.key: s for s in exp.config.strategies}

            def on_commit(_: dict[str, Any]) -> None:
                aggregate(out_dir, order, classes)

            for key, seed in trials:
                try:
                    run_trial(
                        exp, specs[key], seed, out_dir, progress=progress, on_commit=on_commit
                    )
                except Exception as e:
                    raise trial_failed(key, seed, e) from e
        else:
            run_parallel(
                exp,
                out_dir,
                trials,
                workers=workers,
                executor=executor,
                address=address,
                progress=progress,
            )
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            aggregate(out_dir, order, classes)  # Ctrl-C or a failure: the partial results
        raise
    return aggregate(out_dir, order, classes)
