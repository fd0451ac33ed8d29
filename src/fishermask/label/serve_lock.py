"""One ``label serve`` per project: an exclusive lock on ``PROJECT/serve.lock``, held while it runs.

Two servers of one project would each keep their own worker and their own view of the batch,
and a team given both URLs would label in two places. The lock is :mod:`fishermask.dirlock`'s
(``flock(2)``: it goes with the server however it ends, SIGKILL too, and a retrain worker the
server started does not inherit it); the file holds the last server's pid, machine, address
and start time, read only to word the refusal of a second server.

The file gets the database's permission bits, so in a folder a team shares whoever may write
the project may take the lock; another user's file that this one may not write (an earlier
version made it 0644) is locked read-only (:func:`fishermask.dirlock.try_lock`); one that
cannot be opened at all is refused, naming it and the fix. A read-only project folder is
refused with its reason (a server writes labels to ``project.sqlite`` there anyway).

Limits, said plainly: the lock is advisory (only ``label serve`` takes it; the other commands
work alongside a server, as SQLite keeps them consistent, and a round is refused while another
runs); deleting ``serve.lock`` while a server runs lets a second one start; on a network file
system it holds as far as that system's locks do. Windows has no ``flock``: there no lock is
taken (fishermask's server and round bookkeeping target Linux and macOS).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fishermask import dirlock
from fishermask.errors import ConfigError
from fishermask.label.store import DB_NAME, _unwritable
from fishermask.text import utc_clock

LOCK_NAME = "serve.lock"

#: The held lock: ``record(address=...)`` adds to what a refused second server is told.
ServeLock = dirlock.DirLock


#: What a refused second server is told to do.
_FIX = "stop it first (Ctrl-C there), or open the URL it printed."


class AlreadyServed(ConfigError):
    """Another ``label serve`` holds the project's lock (the message names it)."""


def acquire(project_dir: str | os.PathLike[str], fix: str = _FIX) -> ServeLock:
    """Take the serve lock of ``project_dir``, or raise :class:`AlreadyServed` naming the
    server that holds it and ``fix`` (nothing written). A folder that is no project yet gets
    no lock: opening the project refuses it right after, with its own message. ``label config
    --images`` takes it too, so no server starts (or serves) while the image folder changes."""
    project = Path(project_dir)
    path = project / LOCK_NAME
    if not (project / DB_NAME).is_file():
        return ServeLock(path, None)
    try:
        mode = (project / DB_NAME).stat().st_mode & 0o666
        lock = dirlock.try_lock(path, mode | 0o600)
    except OSError as exc:
        why = _unwritable(project / DB_NAME)
        if why is None and path.is_file():  # the project can be written, its lock file not
            raise ConfigError(
                f"{path} cannot be opened ({exc.strerror or exc}): another user's lock file? "
                "While no `label serve` of the project runs, its owner (or anyone who may write "
                "the folder) can delete it; the next server makes it anew."
            ) from None
        why = why or exc.strerror or str(exc)
        raise ConfigError(
            f"{project} cannot be written ({why}), and `label serve` keeps its lock file "
            f"{LOCK_NAME} there (so that only one server runs per project); make the folder "
            "writable, or copy the project folder to a place you can write and use the copy."
        ) from None
    if lock is None:
        raise AlreadyServed(_served_message(project, dirlock.read(path), fix))
    return lock


def _served_message(project: Path, info: dict[str, Any], fix: str = _FIX) -> str:
    """``PROJECT is already being served by process 1234 at http://127.0.0.1:8765 (since
    23:58 UTC); stop it first (Ctrl-C there), or open the URL it printed.``"""
    who = dirlock.holder(info)
    if not dirlock.alive(info):  # the record of a holder gone: nothing in it is this one's
        return f"{project} is already being served by {who}; {fix}"
    where = f" at {info['address']}" if info.get("address") else ""
    notes = ["still starting"] if info.get("pid") and not info.get("address") else []
    if isinstance(info.get("since"), int | float):
        notes.append(f"since {utc_clock(float(info['since']))}")
    paren = f" ({', '.join(notes)})" if notes else ""
    return f"{project} is already being served by {who}{where}{paren}; {fix}"
