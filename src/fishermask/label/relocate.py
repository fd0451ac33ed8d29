"""Where a project's image folder is, and pointing a project at its new place.

The project records its image folder twice (meta of ``project.sqlite``): ``image_root``, the
absolute path (links resolved), and ``image_root_rel``, the same folder relative to the
project folder (``images``, ``..``, ``../photos``), both written by ``label init`` and
``label config --images``; ``image_root_rel`` is written again by any open of the project
while the recorded folder is in place and the relative place changed (a project made before
it was recorded, or a project folder moved on its own). :func:`find_root` uses the absolute path
while it holds anything; when it is gone or empty, the folder at the recorded relative place
is used instead if a sample of the project's images is there with their sizes (a project
moved or copied together with its images: a whole tree copied to another machine, the
project inside or beside its images), and :attr:`Project.root_note` says so.

:func:`repoint` (``label config PROJECT --images NEW``) checks the new folder before it writes
anything: every image of the project must be there at its path with its size and SHA-256
(each file is read once, by :data:`HASHERS` threads); with ``--quick`` a file with the
recorded size and modification time is taken as the same file unread (a copy that kept the
times: seconds for any folder; weaker: a file edited in place keeping both would pass, as it
passes ``label scan`` without ``--verify``). Missing or differing images are refused, named, unless
``accept_missing``; a folder holding none of them (empty, another set of images, re-encoded
copies), the folder already recorded, or no folder at all is always refused. The change is
one transaction (:meth:`Store.change_root`: the new paths, the files' modification times, a
``settings_history`` row), refused while a round or a label check runs and, through the
serve lock, while ``label serve`` serves the project. Nothing else refers to the folder: the
labels, held-out folds and models refer to image ids, the thumbnails to content hashes, and
so do the decoded images' cache entries (:func:`fishermask.label.images.segment_entry`):
they serve the new folder as they are, nothing is decoded again.
The record of the files
the last scan refused (:data:`~fishermask.label.store.SCAN_REFUSED`, each file's size and
time: a refused file unchanged since is counted, not listed, and is not a new file): a copy
gives its files new times, and every refused file would be new and listed again, though the
same bytes at the same path (:func:`_carry_refused`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fishermask.errors import ConfigError
from fishermask.label import images as imgs
from fishermask.label.store import SCAN_REFUSED, ImageRow
from fishermask.text import counted, listed

if TYPE_CHECKING:
    from fishermask.label.project import Project

#: How many of the project's images :func:`find_root` looks for in the folder at the
#: recorded relative place (spread over the ids); at least half must be there, with their
#: sizes.
SAMPLE = 20
#: How many missing or differing images a refusal names.
NAMED = 3
#: How many files :func:`repoint` hashes at once.
HASHERS = 4


def relative(root: str | os.PathLike[str], project_dir: str | os.PathLike[str]) -> str | None:
    """``root`` relative to ``project_dir`` (both with links resolved), ``/``-separated; None
    where there is no such path (another drive on Windows)."""
    try:
        rel = os.path.relpath(os.path.realpath(root), os.path.realpath(project_dir))
    except ValueError:
        return None
    return Path(rel).as_posix()


def occupied(folder: Path) -> bool:
    """Whether ``folder`` is a folder holding anything (not gone, not an empty mount point)."""
    try:
        with os.scandir(folder) as entries:
            return any(True for _ in entries)
    except OSError:
        return False


def find_root(
    recorded: str,
    rel: str | None,
    project_dir: Path,
    rows: Callable[[], Sequence[tuple[str, int]]],
) -> tuple[Path, str | None]:
    """The image folder, and a line when it is not the ``recorded`` one: the folder at ``rel``
    from the project folder, when ``recorded`` is gone or empty and that folder holds at
    least half of a sample of ``rows`` (``(path, bytes)`` of the project's images) with
    their sizes. ``rows()`` is only called in that case."""
    path = Path(recorded)
    if rel is None or occupied(path):
        return path, None
    found = Path(os.path.normpath(Path(os.path.realpath(project_dir)) / rel))
    if found == path or not occupied(found):
        return path, None
    every = rows()
    sample = list(every[:: max(1, len(every) // SAMPLE)])[:SAMPLE]
    there = 0
    for p, size in sample:
        try:
            there += (found / p).stat().st_size == size
        except OSError:
            pass
    if not sample or there * 2 < len(sample):
        return path, None
    return found, (
        f"the image folder is not at {recorded} any more (gone or empty); using {found}, "
        "which lies where it did relative to the project folder (moved or copied together "
        f"with it): `fishermask label config {project_dir} --images {found}` records it, "
        "after checking every image"
    )


@dataclass
class Repointed:
    """What :func:`repoint` did."""

    old: Path
    new: Path
    checked: int  # images found with their size and SHA-256 (or, --quick, time)
    missing: list[ImageRow] = field(default_factory=list)
    changed: list[ImageRow] = field(default_factory=list)
    cache_kept: int = 0  # segments whose decoded images are cached: not decoded again
    cache_segments: int = 0
    timed: int = 0  # of checked: taken by their size and modification time (--quick)


def _elsewhere(new: Path, first: str) -> Path | None:
    """A folder near ``new`` that holds ``first`` (an image's path): its parent, or one of
    its first 50 subfolders (the folder above, or below, the one meant)."""
    near = [new.parent]
    try:
        with os.scandir(new) as entries:
            near += [Path(e.path) for e, _ in zip(entries, range(50), strict=False) if e.is_dir()]
    except OSError:
        pass
    return next((d for d in near if d != new and (d / first).is_file()), None)


def repoint(
    p: Project,
    new_folder: str | os.PathLike[str],
    *,
    accept_missing: bool = False,
    quick: bool = False,
    progress: bool = False,
) -> Repointed:
    """Point project ``p`` at ``new_folder`` (see the module docstring); :class:`ConfigError`
    (one line naming the problem and the fix; nothing written) when refused. ``quick``: an
    image whose file has the recorded size and modification time is taken as the same file,
    not hashed (as ``label scan`` checks without ``--verify``)."""
    from fishermask.data.progress import progress_bar
    from fishermask.label import serve_lock
    from fishermask.label.store import CheckRunning, RootChanged, RoundBusy

    flag = f"--images {new_folder}"
    new = Path(new_folder).expanduser()
    recorded = str(p.settings["image_root"])
    project = p.dir
    again = f"`fishermask label config {project} --images {new_folder}`"
    if not new.is_dir():
        raise ConfigError(
            f"{flag}: "
            + (
                "a file, not a folder; give the folder that now holds the project's images; "
                "nothing was changed."
                if new.exists()
                else f"no such folder (looked for {new.absolute()}); give the folder that now "
                f"holds the project's images (they were in {recorded}); nothing was changed."
            )
        )
    new_real = new.resolve()
    if new_real == Path(os.path.realpath(recorded)):
        raise ConfigError(
            f"{flag} is already the project's image folder ({recorded}); nothing was changed "
            f"(`fishermask label scan {project}` lists its missing and changed images)."
        )

    def busy(what: str) -> ConfigError:
        return ConfigError(
            f"{flag}: {what}; nothing was changed: run {again} when it has finished."
        )

    running = p.store.running_round()
    if running is not None:
        raise busy(
            f"round {running['id']} is running (its worker decodes the images from the "
            "folder it started with)"
        )
    try:
        p.store.refuse_while_checking()
    except CheckRunning as exc:
        raise ConfigError(f"{flag}: {exc} Nothing was changed.") from None
    try:
        lock = serve_lock.acquire(
            project,
            "it reads the image folder once, when it starts: stop it (Ctrl-C there), run "
            f"{again}, then serve again; nothing was changed.",
        )
    except serve_lock.AlreadyServed as exc:
        raise ConfigError(f"{flag}: {exc}") from None
    with lock:
        rows = p.store.images()
        labeled = set(p.store.current_labels())
        missing: list[ImageRow] = []
        changed: list[ImageRow] = []
        sized: list[tuple[ImageRow, os.stat_result]] = []
        for r in rows:
            full = new / r.path
            if not imgs.inside(new_real, full):
                missing.append(r)
                continue
            try:
                st = full.stat()
            except OSError:
                missing.append(r)
                continue
            (sized.append((r, st)) if st.st_size == r.bytes else changed.append(r))
        if not sized and not changed:
            _refuse_foreign(flag, new, rows, recorded)
        found: list[tuple[ImageRow, os.stat_result]] = []
        todo: list[tuple[ImageRow, os.stat_result]] = []
        for r, st in sized:  # --quick: the recorded size and time are the same file
            (
                found.append((r, st))
                if quick and st.st_mtime_ns == r.mtime_ns
                else todo.append((r, st))
            )
        timed = len(found)
        with progress_bar("checking images", len(todo), progress and bool(todo)) as advance:
            for (r, st), digest in _hashes(new, todo, advance):
                if digest is None:
                    missing.append(r)
                else:
                    (found.append((r, st)) if digest == r.sha256 else changed.append(r))
        missing.sort(key=lambda r: r.id)
        changed.sort(key=lambda r: r.id)
        if not found:
            raise ConfigError(
                f"{flag} holds the project's image paths, but none of their "
                f"{counted(len(changed), 'file')} has the content that was scanned (e.g. "
                f"{changed[0].path} differs): another set of images, or re-encoded copies? "
                "Give the folder that holds the original files; nothing was changed."
            )
        if (missing or changed) and not accept_missing:
            raise ConfigError(_refuse_some(flag, new, p, missing, changed, labeled, recorded))
        old_root = p.root  # where an earlier version's cache entries are keyed
        values = {"image_root": str(new_real), "image_root_rel": relative(new_real, project)}
        mtimes = [(r.id, st.st_mtime_ns) for r, st in found if st.st_mtime_ns != r.mtime_ns]
        try:
            p.store.change_root(recorded, values, mtimes)
        except RoundBusy as exc:
            raise busy(f"round {exc.args[0]} started meanwhile") from None
        except CheckRunning as exc:
            raise ConfigError(f"{flag}: {exc} Nothing was changed.") from None
        except RootChanged as exc:
            raise ConfigError(
                f"{flag}: the image folder was changed meanwhile (to {exc.args[0]}, by another "
                f"command); nothing was changed: `fishermask label config {project}` shows it."
            ) from None
    out = Repointed(Path(recorded), new_real, len(found), missing, changed, timed=timed)
    _carry_cache(p, rows, old_root, {r.id for r in changed}, out)
    _carry_refused(p, old_root, new_real)
    p._decoded = None
    p.reload_settings()
    return out


def _hashes(
    folder: Path,
    todo: Sequence[tuple[ImageRow, os.stat_result]],
    advance: Callable[[int], None],
) -> list[tuple[tuple[ImageRow, os.stat_result], str | None]]:
    """The SHA-256 of each file of ``todo`` under ``folder`` (None: it cannot be read), hashed
    by :data:`HASHERS` threads (hashlib and file reads let go of the GIL: a network drive's
    latency and a fast disk's bandwidth are shared out), in the order they finish;
    ``advance(1)`` after each. Ctrl-C (or an error) cancels the files not started and waits
    for those being read."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    if not todo:
        return []

    def digest(rel: str) -> str | None:
        try:
            return imgs.file_sha256(folder / rel)
        except OSError:
            return None

    out = []
    pool = ThreadPoolExecutor(max_workers=min(HASHERS, len(todo)), thread_name_prefix="hash")
    try:
        jobs = {pool.submit(digest, r.path): (r, st) for r, st in todo}
        for job in as_completed(jobs):
            out.append((jobs[job], job.result()))
            advance(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return out


def _refuse_foreign(flag: str, new: Path, rows: Sequence[ImageRow], recorded: str) -> None:
    """Refuse a folder holding none of the project's images at their paths."""
    first = rows[0].path
    near = _elsewhere(new, first)
    hint = (
        f"; {near} holds them (e.g. {first}): give that folder"
        if near is not None
        else f": give the folder their paths are relative to (the one that held {recorded}'s "
        f"content, e.g. with {first} in it)"
    )
    what = (
        "is empty"
        if not occupied(new)
        else f"holds none of the project's {counted(len(rows), 'image')} at its path "
        f"(looked for {listed([r.path for r in rows], NAMED)})"
    )
    raise ConfigError(f"{flag} {what}{hint}; nothing was changed.")


def _refuse_some(
    flag: str,
    new: Path,
    p: Project,
    missing: Sequence[ImageRow],
    changed: Sequence[ImageRow],
    labeled: set[int],
    recorded: str,
) -> str:
    """The refusal of a folder that lacks some images or holds other content for some."""
    n = p.store.num_images()
    parts = []
    said = (
        (missing, "are not in it", "is not in it"),
        (changed, "differ from the files scanned", "differs from the file scanned"),
    )
    for rows, many, one in said:
        if not rows:
            continue
        order = sorted(rows, key=lambda r: (r.id not in labeled, r.path))  # labeled first
        n_lab = sum(r.id in labeled for r in rows)
        parts.append(f"{len(rows)} of the project's {n} images {many if len(rows) != 1 else one}")
        parts[-1] += f" ({n_lab} labeled; {listed([r.path for r in order], NAMED)})"
    source = f"from {recorded}" if occupied(Path(recorded)) else "from where the originals are"
    them = "it" if len(missing) + len(changed) == 1 else "them"
    return (
        f"{flag}: {' and '.join(parts)}: copy {them} into {new} {source} and run this again, or "
        "give --accept-missing to use the folder anyway (`fishermask label scan "
        f"{p.dir}` then lists them as missing or changed, to restore, accept or forget); "
        "nothing was changed."
    )


def _carry_refused(p: Project, old_root: Path, new_root: Path) -> None:
    """Re-key the files the last scan refused to their state in the new folder: a file at
    the same path with the same size (and, while the old folder still holds it, the same
    bytes, or the same target for a link) is the same file, which that scan listed: it stays
    refused, counted and not new. Any other (not there, or differing) is left out of the
    record: the next scan tries it and lists it as met for the first time. A copy of the
    whole folder, whose every image was just checked by its SHA-256, is what this is for:
    only the files' times differ."""
    was = p.store.get_meta(SCAN_REFUSED) or {}
    now: dict[str, list[int]] = {}
    for rel, (size, _) in was.items():
        try:
            st = os.lstat(new_root / rel)
        except OSError:
            continue
        if st.st_size != size or not _same_as_old(old_root / rel, new_root / rel):
            continue
        now[rel] = [st.st_size, st.st_mtime_ns]
    if now != was:
        p.store.set_meta({SCAN_REFUSED: now})


def _same_as_old(old: Path, new: Path) -> bool:
    """Whether ``new`` holds what ``old`` holds (the same bytes, or for a link the same
    target); True when ``old`` cannot be read (gone with its folder: the size decides)."""
    try:
        if old.is_symlink() or new.is_symlink():
            return os.readlink(old) == os.readlink(new)
        return imgs.file_sha256(old) == imgs.file_sha256(new)
    except OSError:
        return not os.path.lexists(old)


def _carry_cache(
    p: Project,
    rows: Sequence[ImageRow],
    old_root: Path,
    changed: Collection[int],
    out: Repointed,
) -> None:
    """Count the segments whose decoded images are kept: the cache keys hold the images'
    content, not their folder (:func:`fishermask.label.images.segment_entry`), so each cached
    segment without a changed image serves the new folder as it is. A segment an earlier
    version cached under the old folder's paths is taken over under its content key (and the
    old entry deleted once the old folder is gone). A segment holding a changed image, or
    not cached, is decoded again when next needed (each image checked against its hash)."""
    from fishermask.data.cache import drop_entries, write_entry

    gone = not occupied(old_root)
    pid = p.settings["project_id"]
    by_seg: dict[int, list[ImageRow]] = {}
    for r in rows:
        by_seg.setdefault(r.segment, []).append(r)
    out.cache_segments = len(by_seg)
    for seg, members in sorted(by_seg.items()):
        if any(r.id in changed for r in members):
            continue
        members.sort(key=lambda r: r.id)
        entry = imgs.segment_entry(
            p.cache_dir, pid, seg, [r.sha256 for r in members], p.image_size, p.channels, fit=p.fit
        )
        try:
            if entry.is_file():
                out.cache_kept += 1
                continue
            stats = [(r.path, r.bytes, r.mtime_ns) for r in members]  # as it was cached
            earlier = imgs.earlier_entry(
                p.cache_dir, old_root, pid, seg, stats, p.image_size, p.channels, fit=p.fit
            )
            if earlier is None:
                continue
            ds, source = earlier
            write_entry(entry, imgs.segment_dataset(ds.x_train.numpy(), entry.stem))
            if gone:
                drop_entries(p.cache_dir, source)
            out.cache_kept += entry.is_file()  # (a cache that cannot be written warned)
        except OSError:
            continue
