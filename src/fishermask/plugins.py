"""Importing the user's own code (strategies) by module name or file, in every process.

``fishermask run --import my_strategies`` (or ``imports: [my_strategies]`` in a config file,
or ``ExperimentConfig.imports`` in Python) imports each entry before the strategies are
looked up, in the main process and in every worker, so a strategy registered with
``@register`` at import time of that module can be named like a built-in one. An entry is a
module name on ``sys.path`` (``my_pkg.strategies``) or the path of a ``.py`` file
(``./my_strategies.py``; relative paths are taken from the current directory). Importing
the same file twice runs it once. :func:`import_sha256` gives the SHA-256 of the source each
entry was imported from, which every round of the runner records so that a resume with
changed code is refused: a ``.py`` file or a top-level single-file module, that file's
SHA-256; a module of a package (``my_pkg`` or ``my_pkg.strategies``), ``package:`` and the
SHA-256 of every ``.py`` file under the top-level package's folder(s) (:func:`package_sha256`),
since the entry's code may import any of them. Rounds recorded before packages were hashed
whole hold the entry's own file's SHA-256; :func:`same_source` accepts that as well.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from fishermask.errors import ConfigError, FishermaskError


def redefined(old: object, new: object) -> bool:
    """Whether ``new`` is ``old`` defined again in ``__main__`` (a notebook cell or a script
    run again after an edit): the same qualified name there, so it replaces ``old``."""
    return getattr(old, "__module__", None) == getattr(
        new, "__module__", None
    ) == "__main__" and getattr(old, "__qualname__", None) == getattr(new, "__qualname__", None)


def is_file_entry(entry: str) -> bool:
    """Whether ``entry`` names a ``.py`` file (rather than a module on ``sys.path``)."""
    return entry.endswith(".py") or "/" in entry or "\\" in entry


_SHA: dict[str, str] = {}  # module name -> SHA-256 of the source file this process imported
_PACKAGE_SHA: dict[str, str] = {}  # top-level package name -> "package:" + package_sha256
PACKAGE = "package:"  # prefix of a package's digest (a file's digest has none)


def import_sha256(entries: Iterable[str]) -> dict[str, str]:
    """``{entry: digest}`` of the code each entry was imported from in this process
    (importing it if needed): a file or a top-level single-file module, its file's SHA-256;
    a module of a package, ``"package:"`` + :func:`package_sha256` of the top-level package.
    An entry without a source file (a namespace or built-in module) maps to ``""``."""
    out: dict[str, str] = {}
    for entry, module in zip(entries, load_imports(entries), strict=True):
        entry = entry.strip()
        top = module.__name__.partition(".")[0]
        package = None if is_file_entry(entry) else _package_digest(top)
        out[entry] = package if package is not None else _SHA.get(module.__name__, "")
    return out


def same_source(entry: str, recorded: str | None, now: str | None) -> bool:
    """Whether a round's ``recorded`` digest of ``entry`` matches the digest ``now``.

    A round recorded before packages were hashed whole holds the SHA-256 of the entry's own
    file; against a package digest now it is compared with that file's SHA-256 (what those
    rounds could check), so older run directories stay resumable.
    """
    if recorded == now:
        return True
    if recorded is None or now is None or not now.startswith(PACKAGE):
        return False
    if recorded.startswith(PACKAGE) or is_file_entry(entry):
        return False
    (module,) = load_imports([entry])  # imported already: the module itself
    return recorded == _SHA.get(module.__name__)  # the legacy digest: the module's own file


def package_sha256(folders: Iterable[str]) -> str:
    """SHA-256 over every ``.py`` file under ``folders`` (a package's ``__path__``), outside
    ``__pycache__``: each file's path relative to its folder and its content's SHA-256, in
    sorted order, so an edit, a new file, a removed or a renamed one changes it."""
    h = hashlib.sha256()
    for i, folder in enumerate(sorted(set(str(f) for f in folders))):
        root = Path(folder)
        files = sorted(
            (p.relative_to(root).as_posix(), p)
            for p in root.rglob("*.py")
            if "__pycache__" not in p.relative_to(root).parts and p.is_file()
        )
        for rel, path in files:
            h.update(f"{i}:{rel}\0".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _package_digest(top: str) -> str | None:
    """``"package:" + package_sha256`` of top-level package ``top``; ``None`` if it is a
    single-file module (no ``__path__``)."""
    if top not in _PACKAGE_SHA:
        folders = getattr(sys.modules.get(top), "__path__", None)
        if folders is None:
            return None
        try:
            _PACKAGE_SHA[top] = PACKAGE + package_sha256(list(folders))
        except OSError:
            _PACKAGE_SHA[top] = ""
    return _PACKAGE_SHA[top]


def _record(module: ModuleType) -> ModuleType:
    if module.__name__ not in _SHA:
        source = getattr(module, "__file__", None)
        try:
            _SHA[module.__name__] = hashlib.sha256(Path(source).read_bytes()).hexdigest()
        except (TypeError, OSError):
            _SHA[module.__name__] = ""
    if not module.__name__.startswith("fishermask_import_"):  # a module, not a .py file
        _package_digest(module.__name__.partition(".")[0])  # hashed as imported, once
    return module


def load_imports(entries: Iterable[str]) -> list[ModuleType]:
    """Import every entry (module name or ``.py`` path); one ``ConfigError`` line if missing.

    An error raised by the imported code itself (a syntax error, a name registered twice, an
    exception at import time) is one ``ConfigError`` line too, naming the entry and the
    error's first line (the CLI prints that line); the original exception is its
    ``__cause__``, so Python callers keep the traceback into their code.
    """
    return [_load(entry) for entry in entries]


def _load(entry: str) -> ModuleType:
    if not isinstance(entry, str) or not entry.strip():
        raise ConfigError(f"`imports` entry {entry!r} must be a module name or a .py file.")
    entry = entry.strip()
    try:
        if is_file_entry(entry):
            return _record(_load_file(entry))
        return _record(importlib.import_module(entry))
    except FishermaskError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name is None or not (entry == exc.name or entry.startswith(exc.name + ".")):
            raise _code_error(entry, exc) from exc  # it imports something missing: its bug
        raise ConfigError(
            f"cannot import {entry!r} (`imports`/--import): no such module on sys.path; "
            f"give its file instead (--import ./{entry.replace('.', '/')}.py) or add its folder "
            "to PYTHONPATH."
        ) from None
    except Exception as exc:  # the entry's own code failed while it was imported
        raise _code_error(entry, exc) from exc


def _code_error(entry: str, exc: Exception) -> ConfigError:
    """One line for an error raised by the code of an ``imports`` entry as it was imported."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    hint = (
        " (a built-in or another imported entry registers that name already: rename yours; a "
        "long-running process, e.g. `label serve`, keeps what it imported: restart it)"
        if isinstance(exc, TypeError) and "registered twice" in first
        else ""
    )
    return ConfigError(
        f"--import {entry}: importing it failed: {type(exc).__name__}"
        + (f": {first}" if first else "")
        + hint
        + "; fix it and run again."
    )


def _load_file(entry: str) -> ModuleType:
    path = Path(entry).expanduser().resolve()
    if not path.is_file():
        relative = not Path(entry).expanduser().is_absolute()
        raise ConfigError(
            f"cannot import {entry!r} (`imports`/--import): no such file ({path}); give the "
            "path of a .py file, or a module name on sys.path"
            + (
                f" (a relative path is taken from the current directory, {Path.cwd()}, not from "
                "the config file's folder)."
                if relative
                else "."
            )
        )
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"fishermask_import_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    content = path.read_bytes()  # hashed as read: the code that runs is the code recorded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {entry!r}: not a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses and pickling look it up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    _SHA[name] = hashlib.sha256(content).hexdigest()
    return module
