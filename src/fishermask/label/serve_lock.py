"""One ``label serve`` per project: an exclusive lock on ``PROJECT/serve.lock``, held while it runs.

Two servers of one project would each keep their own worker and their own view of the batch,
and a team given both URLs would label in two places. The lock is ``flock(2)`` on an open
file: the kernel drops it when the process ends, however it ends (Ctrl-C, a crash, SIGKILL),
so no stale lock is left to delete by hand. The file stays, holding the last server's pid,
machine, address and start time as JSON, read only to word the refusal of a second server.
The lock's file descriptor is not inherited (PEP 446), so a retrain worker the server started
does not keep it after the server is gone.

Limits, said plainly: the lock is advisory (only ``label serve`` takes it; the other commands
work alongside a server, as SQLite keeps them consistent, and a round is refused while another
runs); deleting ``serve.lock`` while a server runs lets a second one start; on a network file
system it holds as far as that system's locks do. Windows has no ``flock``: there no lock is
taken (fishermask's server and round bookkeeping target Linux and macOS).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from fishermask.errors import ConfigError
from fishermask.label.store import DB_NAME, _unwritable
from fishermask.text import utc_clock

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "serve.lock"


class AlreadyServed(ConfigError):
    """Another ``label serve`` holds the project's lock (the message names it)."""


class ServeLock:
    """The held lock (``fd`` None where none is taken: Windows, or no project to lock)."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self.fd = fd
        self.info: dict[str, Any] = {}

    def record(self, **info: Any) -> None:
        """Write ``info`` (with pid, machine and start time) into the lock file, for the
        message of a refused second server. The JSON is written over the start of the file,
        then the file is cut to it: a reader sees a whole record, possibly followed by the end
        of an older, longer one (:func:`_read` reads only the first JSON value)."""
        if self.fd is None:
            return
        self.info.update(info)
        data = json.dumps(self.info).encode() + b"\n"
        try:
            os.pwrite(self.fd, data, 0)
            os.ftruncate(self.fd, len(data))
        except OSError:  # a full disk: the lock holds, only the message would say less
            pass

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = None

    def __enter__(self) -> ServeLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(project_dir: str | os.PathLike[str]) -> ServeLock:
    """Take the serve lock of ``project_dir``, or raise :class:`AlreadyServed` naming the
    server that holds it (nothing written). A folder that is no project yet gets no lock:
    opening the project refuses it right after, with its own message."""
    project = Path(project_dir)
    path = project / LOCK_NAME
    if fcntl is None or not (project / DB_NAME).is_file():
        return ServeLock(path, None)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        why = _unwritable(project / DB_NAME) or exc.strerror or str(exc)
        raise ConfigError(
            f"{project} cannot be written ({why}), and `label serve` keeps its lock file "
            f"{LOCK_NAME} there (so that only one server runs per project); make the folder "
            "writable, or copy the project folder to a place you can write and use the copy."
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise AlreadyServed(_served_message(project, _read(path))) from None
    lock = ServeLock(path, fd)
    lock.record(pid=os.getpid(), machine=socket.gethostname(), since=time.time())
    return lock


def _read(path: Path) -> dict[str, Any]:
    """The record of the server holding the lock; ``{}`` when it cannot be read (it may be
    being written: retried for a moment)."""
    deadline = time.monotonic() + 1.0
    while True:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
            info, _ = json.JSONDecoder().raw_decode(text)
            if isinstance(info, dict) and "pid" in info:
                return info
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.05)


def _served_message(project: Path, info: dict[str, Any]) -> str:
    """``PROJECT is already being served by process 1234 at http://127.0.0.1:8765 (since
    23:58 UTC); stop it first (Ctrl-C there), or open the URL it printed.``"""
    who = f"process {info['pid']}" if info.get("pid") else "another process"
    machine = info.get("machine")
    if machine and machine != socket.gethostname():
        who += f" on {machine}"
    where = f" at {info['address']}" if info.get("address") else ""
    notes = ["still starting"] if info.get("pid") and not info.get("address") else []
    if isinstance(info.get("since"), int | float):
        notes.append(f"since {utc_clock(float(info['since']))}")
    paren = f" ({', '.join(notes)})" if notes else ""
    return (
        f"{project} is already being served by {who}{where}{paren}; stop it first (Ctrl-C "
        "there), or open the URL it printed."
    )
