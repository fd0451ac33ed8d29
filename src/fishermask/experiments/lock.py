"""One run per run directory: an exclusive lock on ``RUN/run.lock``, held for the whole run.

Two ``fishermask run`` (or :func:`fishermask.run`) on one ``--out`` would run the same trials
twice, each writing the same rounds, and the second terminal, started by mistake, would give
no word of it. The process that runs the experiment (the driver: it starts local workers or
Ray tasks, which take no lock) holds :mod:`fishermask.dirlock`'s lock on ``run.lock`` from
before the data set is decoded until its outputs are written; a second is refused in one line
naming the first (:class:`RunDirInUse`), before it writes anything. The lock goes with its
process however it ends (Ctrl-C, SIGTERM, SIGKILL): a resume needs nothing deleted.

``fishermask report`` takes no lock: it reads a run in use as far as it is committed. Windows
has no ``flock``, and no lock is taken there (nor on a file system without locks, which is
warned about).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from fishermask import dirlock
from fishermask.errors import ConfigError
from fishermask.text import utc_clock

LOCK_NAME = "run.lock"


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
