"""A labeling project's own code: ``label init/config --import FILE.py|MODULE``.

The entries are stored in the project's settings (``imports``: ``[{"entry": as given,
"path": absolute path of a file, or null for a module name}]``) and imported by every
process that builds the project's model or strategy (the commands, the server, the round's
worker, ``label predict``), so a model registered with
:func:`fishermask.models.register_model` or a strategy registered with ``@register`` can be
named with ``--model`` / ``--strategy``. Each round records the SHA-256 of every file it
imported in its settings (``import_sha256``: ``{path: digest}``), and ``label export --format
model`` copies both into ``model.json``, whose loader imports them again when the
architecture is not registered in the loading process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fishermask.errors import ConfigError
from fishermask.plugins import is_file_entry, load_imports

_SHA: dict[str, str] = {}  # path -> SHA-256 of the content this process imported


def parse_entries(values: Iterable[str] | None) -> list[str]:
    """``--import`` values (repeatable, each a comma list) as a list; ``''`` alone: none."""
    out: list[str] = []
    for value in values or ():
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


def resolve(entries: Sequence[str]) -> list[dict[str, Any]]:
    """The stored form of ``entries``: files resolved to an absolute path (refused, one line,
    when there is no such file)."""
    specs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in entries:
        if is_file_entry(entry):
            path = Path(entry).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(
                    f"--import {entry}: no such file ({path}); give the path of a .py file or "
                    "a module name on sys.path."
                )
            spec = {"entry": entry, "path": str(path)}
        else:
            spec = {"entry": entry, "path": None}
        key = spec["path"] or entry
        if key not in seen:  # the same file twice (./a.py, a.py) is imported once
            seen.add(key)
            specs.append(spec)
    return specs


def load(specs: Sequence[dict[str, Any]] | None, project: str | None = None) -> dict[str, str]:
    """Import every stored entry (once per process); returns ``{path: SHA-256}`` of the files
    imported (a module name: its file). One :class:`ConfigError` line when a file is gone,
    a module is not found or the code raises while it is imported."""
    digests: dict[str, str] = {}
    check_present(specs, project)
    for spec in specs or ():
        entry, path = spec["entry"], spec.get("path")
        target = path if path is not None else entry
        content = Path(path).read_bytes() if path is not None else None
        # one ConfigError line when the file's code fails as it is imported (load_imports)
        (module,) = load_imports([target])
        file = path if path is not None else getattr(module, "__file__", None)
        if file is None:
            continue
        if file not in _SHA:  # the content imported is the first one this process read
            data = content if content is not None else Path(file).read_bytes()
            _SHA[file] = hashlib.sha256(data).hexdigest()
        digests[file] = _SHA[file]
    return digests


def check_present(specs: Sequence[dict[str, Any]] | None, project: str | None = None) -> None:
    """Refuse (one line, naming the file and the fix) a stored ``--import`` file that is gone."""
    for spec in specs or ():
        path = spec.get("path")
        if path is not None and not Path(path).is_file():
            raise ConfigError(
                f"the project's --import file {path} (given as {spec['entry']!r}) is gone: put "
                "it back, or point the project at its new place with `fishermask label config "
                f"{project or 'PROJECT'} --import NEW.py` (--import '' drops it)."
            )


def names(specs: Sequence[dict[str, Any]] | None) -> str:
    """The entries as a comma list (for messages)."""
    return ", ".join(s["path"] or s["entry"] for s in specs or ()) or "none"


def not_registered(kind: str, name: str, specs: Sequence[dict[str, Any]] | None) -> str:
    """The end of an 'unknown model/strategy' line: which imports did not register it."""
    call = "register_model(NAME, builder)" if kind == "model" else "@register on its class"
    if specs:
        return (
            f" {name!r} is not registered by the project's --import ({names(specs)}): "
            f"register it there at import time ({call})."
        )
    return f" A {kind} of your own: register it in a .py file ({call}) and pass --import FILE.py."
