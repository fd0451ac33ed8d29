"""An exclusive lock on a file in a folder, held while one process works there.

``label serve`` takes one on ``PROJECT/serve.lock`` (:mod:`fishermask.label.serve_lock`),
``fishermask run`` one on ``RUN/run.lock`` and each of its trials one on its folder's
``trial.lock`` (:mod:`fishermask.experiments.lock`): each words its own refusal or wait from
the record of the holder that this module keeps in the file.

The lock is ``flock(2)`` on an open file: the kernel drops it when the process ends, however
it ends (Ctrl-C, a crash, SIGKILL), so no stale lock is left to delete by hand. The file stays,
holding the last holder's pid, machine and start time (and what the caller adds) as JSON, read
only to word the refusal of a second process. The lock's file descriptor is not inherited
(PEP 446), so a process the holder starts (a retrain worker, a trial's worker process) does
not keep it after the holder is gone.

Limits, said plainly: the lock is advisory (only the commands that take it are refused);
deleting the file while it is held lets a second holder in; on a network file system it holds
as far as that system's locks do, and on one without locks (``flock`` fails with ENOLCK or
EOPNOTSUPP) none is taken (:attr:`DirLock.unsupported` says why). Windows has no ``flock``:
there no lock is taken either.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

#: flock's answers that mean "another holder has it", not "this file system cannot lock".
_HELD_ERRNOS = {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES}


class DirLock:
    """A held lock (``fd`` None where none is taken: Windows, a file system without locks
    (then ``unsupported`` says why), or nothing to lock yet)."""

    def __init__(self, path: Path, fd: int | None, unsupported: str | None = None) -> None:
        self.path = path
        self.fd = fd
        self.unsupported = unsupported
        self.info: dict[str, Any] = {}

    def record(self, **info: Any) -> None:
        """Write ``info`` (with pid, machine and start time) into the lock file, for the
        message of a refused second holder. The JSON is written over the start of the file,
        then the file is cut to it: a reader sees a whole record, possibly followed by the end
        of an older, longer one (:func:`read` reads only the first JSON value)."""
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

    def __enter__(self) -> DirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def try_lock(path: Path, mode: int | None = None) -> DirLock | None:
    """Take the lock on ``path`` (created if missing; its folder must exist) and record this
    process in it; ``None`` when another process holds it (nothing written: :func:`read` gives
    its record). A :class:`DirLock` without ``fd`` where no lock can be taken (Windows, a file
    system without locks). Raises ``OSError`` when the file cannot be opened (the caller
    words it: a folder that cannot be written).

    ``mode``: the permission bits the file gets when this process owns it (e.g. those of the
    files it guards: in a folder a team shares, each member may take the lock). Another user's
    file that this one may not write (an earlier version's 0644) is opened read-only: ``flock``
    needs no write access on a local file system (on NFS, where it does, no lock is taken,
    :attr:`DirLock.unsupported` says why); the record then stays the last writer's, and
    :func:`holder` does not name its process once it is gone."""
    path = Path(path)
    if fcntl is None:
        return DirLock(path, None)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:
        if not path.is_file():
            raise
        fd = os.open(path, os.O_RDONLY)  # another user's lock file (raises: the caller words it)
    if mode is not None:
        try:
            st = os.fstat(fd)
            if st.st_uid == os.geteuid() and st.st_mode & 0o777 != mode:
                os.fchmod(fd, mode)
        except OSError:  # (a file system without modes)
            pass
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in _HELD_ERRNOS:
            return None
        return DirLock(path, None, unsupported=exc.strerror or str(exc))
    lock = DirLock(path, fd)
    lock.record(pid=os.getpid(), machine=socket.gethostname(), since=time.time())
    return lock


def holder_of(path: Path) -> dict[str, Any] | None:
    """The record of the process holding the lock on ``path`` (``{}`` when it cannot be
    read), or ``None`` when none holds it (or the file is missing, or no lock can be taken
    there). Writes nothing: the lock is tested in shared mode and given back at once."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return read(path) if exc.errno in _HELD_ERRNOS else None
    finally:
        os.close(fd)  # closing the descriptor drops a shared lock taken here
    return None


def read(path: Path) -> dict[str, Any]:
    """The record of the process holding the lock; ``{}`` when it cannot be read (it may be
    being written: retried for a moment)."""
    deadline = time.monotonic() + 1.0
    while True:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
            info, _ = json.JSONDecoder().raw_decode(text)
            if isinstance(info, dict) and "pid" in info:
                return info
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.05)


def alive(info: dict[str, Any]) -> bool:
    """Whether the process of a record of :func:`read` may still run: False only for one of
    this machine that does not (the record of a holder gone, left by a holder that could not
    write its own: see :func:`try_lock`)."""
    pid = info.get("pid")
    if not isinstance(pid, int) or info.get("machine") != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): it runs
        return True
    return True


def holder(info: dict[str, Any]) -> str:
    """``process 1234``, ``process 1234 on gpu-node-3`` (another machine), ``another process``
    (no record, or the record of a process of this machine that is gone), from a record of
    :func:`read`."""
    if not alive(info):
        return "another process"
    who = f"process {info['pid']}" if info.get("pid") else "another process"
    machine = info.get("machine")
    if machine and machine != socket.gethostname():
        who += f" on {machine}"
    return who
