"""Run the trials of an experiment in parallel: local worker processes or Ray tasks.

Each worker rebuilds the :class:`~fishermask.experiments.runner.Experiment` from the
configuration (data sets load from the decoded cache) and runs whole trials, committing
rounds to the shared run directory exactly as a sequential run does. The parent shows
progress by counting committed rounds, and aggregates the results files.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from fishermask.errors import ConfigError, check_choice
from fishermask.experiments.progress import NullProgress
from fishermask.experiments.store import TrialStore, aggregate

EXECUTORS = ("local", "ray")


def _exit_with_parent() -> None:
    """End this worker process when its parent dies (e.g. the run was SIGKILLed)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _local_trial_job(config: dict[str, Any], key: str, seed: int, out_dir: str) -> int:
    _exit_with_parent()
    return _trial_job(config, key, seed, out_dir)


def _trial_job(config: dict[str, Any], key: str, seed: int, out_dir: str) -> int:
    """Worker entry point: run one trial; returns the number of committed rounds."""
    from fishermask.experiments.config import ExperimentConfig
    from fishermask.experiments.runner import Experiment, run_trial

    exp = Experiment.prepare(ExperimentConfig.from_dict(config))
    spec = next(s for s in exp.config.strategies if s.key == key)
    return len(run_trial(exp, spec, seed, Path(out_dir)))


def _committed(out_dir: Path, trials: list[tuple[str, int]]) -> int:
    return sum(len(TrialStore(out_dir, key, seed).records()) for key, seed in trials)


def run_parallel(
    exp: Any,
    out_dir: Path,
    trials: list[tuple[str, int]],
    *,
    workers: int,
    executor: str = "local",
    address: str | None = None,
    progress: NullProgress | None = None,
) -> None:
    check_choice("executor", executor, EXECUTORS)
    progress = progress or NullProgress()
    config = exp.config.to_dict()
    order = [s.key for s in exp.config.strategies]
    classes = list(exp.data.classes)
    rounds = len(exp.query_sizes) + 1
    progress.start_trial(
        f"{len(trials)} trials", rounds * len(trials), _committed(out_dir, trials), epochs=False
    )
    seen = _committed(out_dir, trials)

    def tick() -> None:
        nonlocal seen
        now = _committed(out_dir, trials)
        for _ in range(now - seen):
            progress.round_done()
        seen = now

    if executor == "local":
        ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
        with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx) as pool:
            pending = {pool.submit(_local_trial_job, config, k, s, str(out_dir)) for k, s in trials}
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    fut.result()  # re-raise a worker's error here
                    aggregate(out_dir, order, classes)
                tick()
    else:
        _run_ray(config, out_dir, trials, address, exp.config.threads, tick, order, classes)
    tick()
    progress.end_trial()


def _run_ray(
    config: dict[str, Any],
    out_dir: Path,
    trials: list[tuple[str, int]],
    address: str | None,
    threads: int,
    tick: Any,
    order: list[str],
    classes: list[str],
) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'fishermask[ray]' (or pip install ray)."
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        job = ray.remote(num_cpus=threads)(_trial_job)
        refs = [job.remote(config, k, s, str(Path(out_dir).resolve())) for k, s in trials]
        while refs:
            done, refs = ray.wait(refs, num_returns=1, timeout=0.5)
            for ref in done:
                ray.get(ref)
                aggregate(out_dir, order, classes)
            tick()
            time.sleep(0.05)
    finally:
        if started_here:
            ray.shutdown()
