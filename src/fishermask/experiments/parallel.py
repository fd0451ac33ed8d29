"""Run the trials of an experiment in parallel: local worker processes or Ray tasks.

Each worker rebuilds the :class:`~fishermask.experiments.experiment.Experiment` from the
configuration (data sets load from the decoded cache) and runs whole trials, committing
rounds to the shared run directory exactly as a sequential run does. The parent shows
progress by counting committed rounds, and aggregates the results files.

The run stops as soon as one trial fails or the user presses Ctrl-C: queued trials are
cancelled, and running ones stop at their next safe point (a local worker between rounds
or training epochs; a Ray task where ``ray.cancel`` interrupts it). Commits are atomic,
so what was committed stays and a rerun resumes from it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from fishermask import strategies
from fishermask.errors import ConfigError, FishermaskError, check_choice
from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.experiment import Experiment
from fishermask.experiments.progress import NullProgress
from fishermask.experiments.store import TrialStore, aggregate
from fishermask.experiments.trial import StopRequested, run_trial
from fishermask.models import model_builder
from fishermask.plugins import load_imports

EXECUTORS = ("local", "ray")
STOPPED = -1  # what a worker returns for a trial it stopped on request


class TrialFailed(RuntimeError):
    """A trial raised an error that is not the user's input (a bug; keeps its cause)."""


def trial_failed(key: str, seed: int, error: BaseException) -> Exception:
    """The error to report for trial ``(key, seed)``: named, and one line for input errors."""
    if isinstance(error, FishermaskError):
        return type(error)(f"Trial {key} seed {seed}: {error}")
    if isinstance(error, BrokenProcessPool):
        return TrialFailed(
            f"Trial {key} seed {seed} failed: a worker process died ({error}); when the run is "
            "started from a script, worker processes import it: put the call under "
            '`if __name__ == "__main__":`, or use workers=1.'
        )
    return TrialFailed(f"Trial {key} seed {seed} failed: {type(error).__name__}: {error}")


# -- worker side -------------------------------------------------------------------------

_STOP: Any = None  # the parent's stop event, in a local worker process


def _init_local_worker(stop: Any) -> None:
    """Worker setup: share the stop event, leave Ctrl-C to the parent, die with it."""
    global _STOP
    _STOP = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us through the event
    parent = os.getppid()

    def watch() -> None:  # end this worker when its parent dies (e.g. SIGKILL)
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _local_trial_job(
    config: dict[str, Any], key: str, seed: int, out_dir: str, allow_env_change: bool
) -> int:
    return _trial_job(
        config, key, seed, out_dir, allow_env_change, stop=lambda: bool(_STOP and _STOP.is_set())
    )


def _trial_job(
    config: dict[str, Any],
    key: str,
    seed: int,
    out_dir: str,
    allow_env_change: bool,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Worker entry point: run one trial; returns its committed rounds (STOPPED if stopped)."""
    if stop is not None and stop():
        return STOPPED  # queued before the stop, started after it
    cfg = ExperimentConfig.from_dict(config)
    load_imports(cfg.imports)
    missing = sorted({s.name for s in cfg.strategies} - set(strategies.available()))
    if missing:  # registered in the parent only: in __main__ under its guard, or a notebook
        raise ConfigError(
            f"strategy {missing[0]!r} is not registered in this worker process, which imports "
            "only fishermask and the config's `imports`; register it at import time of a module "
            "or .py file and list that in `imports` (fishermask run --import FILE), or run with "
            "workers=1."
        )
    exp = Experiment.prepare(cfg, allow_env_change=allow_env_change)
    spec = next(s for s in exp.config.strategies if s.key == key)
    try:
        return len(run_trial(exp, spec, seed, Path(out_dir), stop=stop))
    except StopRequested:
        return STOPPED


# -- parent side -------------------------------------------------------------------------


def _unregistered_here(imports: list[str], names: list[str], model: str) -> str | None:
    """In a fresh worker process: the first of ``names`` (strategies) or ``model`` that is
    not registered once fishermask and ``imports`` are imported, as ``"strategy 'x'"``."""
    from fishermask.models import available_models

    load_imports(imports)
    for name in names:
        if name not in strategies.available():
            return f"strategy {name!r}"
    return None if model in available_models() else f"model {model!r}"


def check_workers_can_import(exp: Experiment, workers: int, executor: str) -> None:
    """Refuse, before anything is written, a strategy or model of ``__main__`` that worker
    processes would not have: the first trial would fail there after the run directory
    (``config.json``, ``data/``, ``results.csv``) was made.

    Code of a session's ``__main__`` without a script file (``python -c``, a notebook) is
    never there, nor is a script's for Ray tasks (they import fishermask and ``imports``
    only). Local workers re-import a script (spawn), which misses what its
    ``if __name__ == "__main__":`` block defines or registers: one worker process is started
    to look, only when the run has such code.
    """
    if executor == "local" and workers <= 1:
        return
    code = [(f"strategy {s.name!r}", type(s)) for s in exp.strategies.values()]
    code.append((f"model {exp.config.model.name!r}", model_builder(exp.config.model.name)))
    mine = [what for what, obj in code if getattr(obj, "__module__", None) == "__main__"]
    if not mine:
        return
    fix = (
        "put it in a .py file and list that in `imports` (imports=['./mine.py'], fishermask "
        "run --import FILE), or run with workers=1."
    )
    if getattr(sys.modules.get("__main__"), "__file__", None) is None:
        raise ConfigError(
            f"{mine[0]} is defined in this session's __main__ (python -c, a notebook), which "
            f"worker processes cannot import; {fix}"
        )
    if executor != "local":
        raise ConfigError(
            f"{mine[0]} is defined in the script being run, which Ray tasks do not import "
            f"(they import fishermask and `imports` only); {fix}"
        )
    cfg = exp.config
    names = [s.name for s in cfg.strategies]
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as probe:
            missing = probe.submit(_unregistered_here, list(cfg.imports), names, cfg.model.name)
            missing = missing.result()
    except BrokenProcessPool as e:  # the script ran the run again as the probe imported it
        raise ConfigError(
            f"a worker process died as it imported this script ({e}); worker processes import "
            'the script anew: put the run\'s call under `if __name__ == "__main__":`, or use '
            "workers=1."
        ) from None
    if missing is not None:
        raise ConfigError(
            f"{missing} is defined or registered under this script's "
            '`if __name__ == "__main__":`, which worker processes (they import the script '
            "anew) do not run; define and register it at the script's top level, or "
            f"{fix}"
        )


def check_ray_address(address: str | None, timeout: float = 5.0) -> None:
    """Refuse, before anything is written, a ``HOST:PORT`` (or ``ray://HOST:PORT``) Ray
    address at which nothing answers: ``ray.init`` retried it for minutes, a warning every
    5 s, after the run directory had been made. Ray's own names (``auto``) are left to it."""
    if address is None:
        return
    m = re.fullmatch(r"(?:ray://)?\[?([^\[\]]+?)\]?:(\d+)", address.strip())
    if m is None:
        return
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(
            f"--address {address}: no Ray cluster answers there ({e.strerror or e}); start one "
            "(`ray start --head` prints its address), fix --address, or drop it to start a "
            "local Ray."
        ) from None


def _committed(out_dir: Path, trials: list[tuple[str, int]], rounds: int) -> int:
    return sum(len(TrialStore(out_dir, key, seed).records(rounds)) for key, seed in trials)


def run_parallel(
    exp: Experiment,
    out_dir: Path,
    trials: list[tuple[str, int]],
    *,
    workers: int,
    executor: str = "local",
    address: str | None = None,
    progress: NullProgress | None = None,
) -> None:
    """Run ``trials`` (``(strategy key, seed)`` pairs) of ``exp`` in parallel into ``out_dir``.

    Raises the first failing trial's error, named (:func:`trial_failed`), or the
    ``KeyboardInterrupt``, once running trials have stopped.
    """
    check_choice("executor", executor, EXECUTORS)
    progress = progress or NullProgress()
    order = [s.key for s in exp.config.strategies]
    classes = list(exp.data.classes)
    rounds = len(exp.query_sizes) + 1
    seen = _committed(out_dir, trials, rounds)
    progress.start_trial(f"{len(trials)} trials", rounds * len(trials), seen, epochs=False)

    def tick() -> None:
        nonlocal seen
        now = _committed(out_dir, trials, rounds)
        if now > seen:
            aggregate(out_dir, order, classes)  # results.csv follows the committed rounds
        for _ in range(now - seen):
            progress.round_done()
        seen = now

    job = (exp.config.to_dict(), str(Path(out_dir).resolve()), exp.allow_env_change)
    if executor == "local":
        _run_local(job, trials, max(1, workers), tick)
    else:
        _run_ray(job, trials, address, exp.config.threads, tick)
    tick()
    progress.end_trial()


def _run_local(
    job: tuple[dict[str, Any], str, bool],
    trials: list[tuple[str, int]],
    workers: int,
    tick: Callable[[], None],
) -> None:
    config, out_dir, allow = job
    ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
    stop = ctx.Event()
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_local_worker, initargs=(stop,)
    )
    futures: dict[Future[int], tuple[str, int]] = {
        pool.submit(_local_trial_job, config, k, s, out_dir, allow): (k, s) for k, s in trials
    }
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                if (err := fut.exception()) is not None:
                    raise trial_failed(*futures[fut], err) from err
            tick()
    except BaseException:
        stop.set()  # running trials stop at their next safe point
        # the workers, before shutdown(wait=False) forgets them (then the final shutdown does
        # not join them either)
        procs = list((getattr(pool, "_processes", None) or {}).values())
        for fut in pending:
            fut.cancel()  # queued trials; wait() would never see them done if the pool did it
        pool.shutdown(wait=False, cancel_futures=True)
        try:
            wait([f for f in pending if not f.cancelled()])
            # a worker still starting (importing torch) when a trial failed outlived the run
            # and, once this process had exited and freed the stop event, printed its own
            # traceback ("SemLock._rebuild ... FileNotFoundError") after the one-line error
            for proc in procs:
                proc.join(timeout=60)
        except KeyboardInterrupt:  # a second Ctrl-C: do not wait for the safe point
            for proc in procs:
                proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True)


def _run_ray(
    job: tuple[dict[str, Any], str, bool],
    trials: list[tuple[str, int]],
    address: str | None,
    threads: int,
    tick: Callable[[], None],
) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'fishermask[ray]' (or pip install ray)."
        ) from None
    config, out_dir, allow = job
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=threads)(_trial_job)
        refs = {remote.remote(config, k, s, out_dir, allow): (k, s) for k, s in trials}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
                for ref in done:
                    try:
                        ray.get(ref)
                    except ray.exceptions.RayTaskError as e:
                        raise trial_failed(*refs[ref], e.cause or e) from e
                tick()
        except BaseException:
            for ref in pending:  # queued tasks never start; running ones are interrupted
                ray.cancel(ref)
            raise
    finally:
        if started_here:
            ray.shutdown()
