"""One run per run directory, one process per trial: exclusive locks, held while they run.

Two ``fishermask run`` (or :func:`fishermask.run`) on one ``--out`` would run the same trials
twice, each writing the same rounds, and the second terminal, started by mistake, would give
no word of it. The process that runs the experiment (the driver: it starts local workers or
Ray tasks) holds :mod:`fishermask.dirlock`'s lock on ``RUN/run.lock`` from before the data set
is decoded until its outputs are written; a second is refused in one line naming the first
(:class:`RunDirInUse`), before it writes anything. The lock goes with its process however it
ends (Ctrl-C, SIGTERM, SIGKILL): a resume needs nothing deleted.

The driver's lock does not cover what runs its trials. A Ray task goes on for seconds after
its driver is killed (measured with Ray 2.60: a round committed 1.3 s after the driver's
SIGKILL, the worker gone 3.8 s after it, on a Ray the driver had started; on a cluster the
workers were gone 0.6 s after it), and a local worker for up to half a second. So each trial
holds a lock on ``trials/<strategy>__seed<k>/trial.lock`` while it runs
(:func:`hold_trial`, in :func:`~fishermask.experiments.trial.run_trial`: sequential, worker
process and Ray task alike); a resume whose trial is still held waits for it and then
continues from what it committed, and its driver says so first (:func:`trials_in_use`).
Waiting, not refusing: the holder is a left-over of a run that is gone (this run holds
``run.lock``), which ends by itself, and a refusal would only have the user run the same
command again.

``fishermask report`` takes no lock: it reads a run in use as far as it is committed. Windows
has no ``flock``, and no lock is taken there (nor on a file system without locks, which is
warned about).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from fishermask import dirlock
from fishermask.errors import ConfigError
from fishermask.experiments.store import trial_dirname
from fishermask.text import utc_clock

LOCK_NAME = "run.lock"
TRIAL_LOCK_NAME = "trial.lock"


class RunDirInUse(ConfigError):
    """Another run holds the run directory's lock (the message names it)."""


class RunDirLock:
    """The lock of one run directory, taken once the directory exists (:func:`hold_run_dir`)."""

    def __init__(self, out_dir: Path, option: str) -> None:
        self.out_dir = out_dir
        self.option = option
        self.lock: dirlock.DirLock | None = None

    def take(self, create: bool) -> None:
        """Take the lock (creating ``out_dir`` if ``create``; a missing directory without it
        is left for later), or raise :class:`RunDirInUse` having written nothing."""
        if self.lock is not None:
            return
        if create:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        elif not self.out_dir.is_dir():
            return  # nobody runs in a directory that is not there yet
        path = self.out_dir / LOCK_NAME
        try:
            lock = dirlock.try_lock(path)
        except OSError as exc:
            raise ConfigError(
                f"{self.option} {self.out_dir} cannot be written ({exc.strerror or exc}: "
                f"{LOCK_NAME}, which keeps a second run out of it); choose a writable directory."
            ) from None
        if lock is None:
            raise RunDirInUse(in_use_message(self.out_dir, dirlock.read(path), self.option))
        if lock.unsupported:
            warnings.warn(
                f"{self.out_dir} cannot be locked ({lock.unsupported}: its file system has no "
                "flock), so a second run started on it would not be refused; start one run "
                "per directory.",
                stacklevel=2,
            )
        self.lock = lock

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


#: The run directories held by this process: ``(resolved path, thread id) -> lock``. A run
#: takes its directory's lock once, however many layers ask for it (``fishermask run``, then
#: ``run_experiment``); another thread of this process asking for it is refused like another
#: process (the lock is per open file: its own ``flock`` fails).
_HELD: dict[tuple[str, int], RunDirLock] = {}


@contextlib.contextmanager
def hold_run_dir(
    out_dir: str | os.PathLike[str], *, create: bool = True, option: str = "--out"
) -> Iterator[RunDirLock]:
    """Hold the lock of ``out_dir`` inside the ``with`` block, or raise :class:`RunDirInUse`
    (a line naming the run that holds it: its process, machine and start) having written
    nothing.

    ``create=False`` takes the lock only if ``out_dir`` exists (so that a run refused early,
    before its data set is decoded, leaves no new directory behind), and a nested
    ``hold_run_dir(out_dir)`` inside it takes it once the run creates the directory; the
    outer block holds it to its end. ``option`` names the directory in messages (``--out``;
    ``out`` for :func:`fishermask.run`).
    """
    key = (str(Path(out_dir).expanduser().resolve()), threading.get_ident())
    held = _HELD.get(key)
    if held is not None:  # an outer block of this run holds it (or will, once created)
        held.take(create)
        yield held
        return
    held = RunDirLock(Path(out_dir), option)
    held.take(create)
    _HELD[key] = held
    try:
        yield held
    finally:
        del _HELD[key]
        held.release()


def in_use_message(out_dir: Path, info: dict[str, object], option: str = "--out") -> str:
    """``runs/a is in use by another run (process 1234, since 16:58 UTC); wait for it to end
    or stop it (Ctrl-C in its terminal, or kill 1234), or use another --out.``"""
    who = dirlock.holder(info)
    since = info.get("since")
    when = f", since {utc_clock(float(since))}" if isinstance(since, int | float) else ""
    kill = f"kill {info['pid']}" if info.get("pid") else "kill its process"
    return (
        f"{out_dir} is in use by another run ({who}{when}); wait for it to end (then run "
        f"this again to continue or extend it) or stop it (Ctrl-C in its terminal, or "
        f"{kill}), or use another {option}."
    )


@contextlib.contextmanager
def hold_trial(trial_dir: Path, check_stop: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the lock of one trial's folder (``trial_dir``, created) inside the ``with`` block,
    waiting first while another process holds it: a trial job of an earlier run, killed, that
    has not ended yet. ``check_stop`` is called while waiting (it raises to stop the wait).
    Where no lock can be taken (Windows, a file system without locks) none is."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    path = trial_dir / TRIAL_LOCK_NAME
    while (lock := dirlock.try_lock(path)) is None:
        if check_stop is not None:
            check_stop()
        time.sleep(0.2)
    try:
        yield
    finally:
        lock.release()


def trials_in_use(out_dir: Path, trials: list[tuple[str, int]]) -> list[str]:
    """A line for each of ``trials`` (``(strategy key, seed)`` pairs) whose folder another
    process holds (:func:`hold_trial`); the run then waits for it. Writes nothing."""
    lines = []
    for key, seed in trials:
        info = dirlock.holder_of(
            Path(out_dir) / "trials" / trial_dirname(key, seed) / TRIAL_LOCK_NAME
        )
        if info is None:
            continue
        who = dirlock.holder(info)
        since = info.get("since")
        when = f" (since {utc_clock(float(since))})" if isinstance(since, int | float) else ""
        there = "" if info.get("machine") in (None, socket.gethostname()) else " there"
        kill = f" (kill {info['pid']}{there} ends it now)" if info.get("pid") else ""
        lines.append(
            f"trial {key} seed {seed} is still running in {who}{when}, left by an earlier run "
            f"of {out_dir}; waiting for it to end{kill}, then this run continues "
            "the trial from the rounds it committed."
        )
    return lines
