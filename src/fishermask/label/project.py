"""A labeling project: settings, images, labels, retraining and querying, on one SQLite store.

A *round* retrains the classifier on every current label, queries the next batch with the
project's strategy and commits the batch; only then does it estimate held-out accuracy (so the
batch is ready after one training, and the estimate follows while the user labels).
``train=False`` queries with the last good model only. A round's checkpoint is written
(temporary file, fsync, rename) before the round is committed as ``done`` together with its
new queue, so a round killed at any moment leaves the previous model and queue in place
("last good model").

Cold start: until every class has ``min_per_class`` labels the batch is chosen for
diversity (greedy k-center on the model's embeddings, or on downsampled pixels before there
is a model), and the round's ``mode`` says so.

Candidate subsample: the strategy scores at most ``query_pool`` unseen images per query, drawn
uniformly at random with the round's own generator (0: every unseen image), so a round's time
does not grow with the folder; the round's ``metrics["query"]`` records how many were scored.

Held-out accuracy: labels are split into 5 folds by a hash of the image id (stable across
rounds). With at least ``cv_below`` labels, fold 0 is held out (a model trained on the other
four); with fewer, 5-fold cross-validation; each with a 95 % Wilson interval over the
predictions. These models are trained only for the estimate, after the batch is committed;
none of them sees the labels it is scored on. While the estimate runs the round's metrics
carry ``"estimating": true``; an estimate stopped before it finished (the next round started,
or the process ended) is recorded as not estimated. Each held-out prediction (image, label,
predicted class, its probability) is stored with the estimate (table ``held_out``), so ``label
predict --min-prob P`` can say how accurate the predictions at or above P were.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import posixpath
import re
import shutil
import sqlite3
import sys
import tempfile
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fishermask.errors import ConfigError, DataError, FishermaskError
from fishermask.label import images as imgs
from fishermask.label import imports as label_imports
from fishermask.label import team
from fishermask.label.store import (
    DB_NAME,
    KINDS,
    SCAN_REFUSED,
    ImageRow,
    Store,
    pid_alive,
)
from fishermask.text import (
    AND_MORE_APART,
    ELIDED,
    SpreadsheetCsv,
    counted,
    did_you_mean,
    listed,
    spreadsheet_unsafe,
    suggestion,
    utc_iso,
)

# torch, the models, training and strategies are imported where they are used: the commands
# that never touch a model (label status, add, export csv, ...) start without torch
# (docs/benchmarks.md, "Labeling tool"; tests/label/test_no_torch.py)
if TYPE_CHECKING:
    import torch

    from fishermask import strategies
    from fishermask.models.base import Classifier
    from fishermask.training import Normalizer
    from fishermask.training.config import TrainConfig

Report = Callable[[str, int, int], None]  # (phase, done, total)
FOLDS = 5
#: Default cap on the unseen images the strategy scores per query (``--query-pool``): sized
#: so that a round (one training + a FisherMask query) on the small CNN at 32x32 stays under a
#: minute on one CPU core (docs/benchmarks.md, "Labeling tool").
QUERY_POOL = 2000


def _no_report(phase: str, done: int, total: int) -> None:
    """Progress goes nowhere."""


#: What each built-in strategy's batch is, in plain words (the page's mode line, after
#: "chosen by the model trained on N labels: "; "it" is that model): someone labeling a batch
#: should not need the paper, nor its terms (Fisher information, dropout, features), to know
#: why these images were chosen. The method's own name follows in brackets.
IN_PLAIN_WORDS = {
    "random": "images drawn at random",
    "entropy": "the images it is least sure of",
    "margin": "the images whose two likeliest classes are closest",
    "least_confidence": "the images whose likeliest class it believes least",
    "kcenter": "images unlike every labeled one, as it sees them",
    "badge": "images it is unsure of and that are unlike each other",
    "bait": "the images that would teach its last step most",
    "fishermask": "the images that would teach it most",
    "bald": "the images that slightly different versions of it disagree on most",
    "batchbald": "the images that slightly different versions of it disagree on most, "
    "taken together",
    "lpl": "the images it expects to get most wrong",
    "lplgrad": "the images whose answers its next training would change most",
    "probcover": "images that stand for the most unlabeled look-alikes",
    "typiclust": "the most typical image of each group with the fewest labels",
}


def folder_conflicts(
    paths: Sequence[str], classes: Sequence[str], sha256: Sequence[str]
) -> list[list[tuple[str, str]]]:
    """The sets of byte-for-byte copies (same ``sha256``) that lie in the top-level folders of
    two or more different classes, each as ``(path, class)`` by class order then path, the
    sets by their first path. Copies within one class's folder are no conflict."""
    known = set(classes)
    groups: dict[str, list[str]] = {}
    for path, sha in zip(paths, sha256, strict=True):
        if path.partition("/")[0] in known:
            groups.setdefault(sha, []).append(path)
    order = {c: i for i, c in enumerate(classes)}
    out = []
    for g in groups.values():
        tops = [(order[q.partition("/")[0]], q) for q in g]
        if len({t for t, _ in tops}) > 1:
            out.append([(q, classes[t]) for t, q in sorted(tops)])
    return sorted(out)


#: The most sets of copies in two classes' folders a folder labeling lists in its output; the
#: rest are counted, and all are written to :data:`CONFLICTS_FILE` (a folder of 100 000 photos
#: with thousands of such copies printed thousands of lines).
CONFLICTS_LISTED = 20
#: Where every set of copies in two classes' folders is listed when they are more than
#: :data:`CONFLICTS_LISTED`, relative to the project folder: ``set,path,folder`` rows.
CONFLICTS_FILE = "folder-conflicts.csv"


def folder_conflicts_said(
    conflicts: Sequence[Sequence[tuple[str, str]]],
    project: str = "PROJECT",
    listing: Path | None = None,
) -> str:
    """What :func:`folder_conflicts` found, to follow the line of a folder labeling: a clause
    saying they are not labeled and how to resolve it, then one indented line per set
    (``  same bytes: red: red/1.png; green: green/copy.png``), the first
    :data:`CONFLICTS_LISTED` sets only, then ``  ... and N more sets``. ``listing``: the file
    every set is written to (``set,path,folder`` CSV, atomically) when they are more, named in
    the last line; removed when they are not (an earlier listing would be out of date). Empty
    without conflicts."""
    if listing is not None and len(conflicts) <= CONFLICTS_LISTED:
        with contextlib.suppress(OSError):
            listing.unlink(missing_ok=True)
    if not conflicts:
        return ""
    n = sum(len(g) for g in conflicts)
    more = len(conflicts) - CONFLICTS_LISTED
    below = "listed below" if more <= 0 else f"the first {CONFLICTS_LISTED} listed below"
    said = (
        f"; {n} byte-for-byte copies in folders of different classes ("
        f"{counted(len(conflicts), 'set')}, {below}) contradict each other, so none is "
        "labeled by its folder: "
        "delete each wrong copy (then `fishermask label scan "
        f"{project} --forget-missing` and `fishermask label add {project} --from-folders`), "
        f"or give each set one class with `fishermask label add {project} labels.csv` (a "
        "path,label row per file)"
    )
    for g in conflicts[:CONFLICTS_LISTED]:
        by_class: dict[str, list[str]] = {}
        for path, c in g:
            by_class.setdefault(c, []).append(path)
        said += "\n  same bytes: " + "; ".join(f"{c}: {', '.join(q)}" for c, q in by_class.items())
    if more > 0:
        said += f"\n  ... and {counted(more, 'more set')}"
        if listing is not None:
            from fishermask.experiments.store import write_atomic

            buf = io.StringIO()
            w = SpreadsheetCsv(buf)
            w.writerow(["set", "path", "folder"])
            for k, g in enumerate(conflicts, start=1):
                w.writerows([k, path, c] for path, c in g)
            try:
                write_atomic(listing, lambda f: f.write(buf.getvalue().encode()))
            except OSError as exc:
                said += f" (not written to {listing}: {exc.strerror or exc})"
            else:
                said += f"; every set is listed in {listing} (set,path,folder)"
    return said


def folder_labels(
    paths: Sequence[str],
    classes: Sequence[str],
    sha256: Sequence[str] | None = None,
    project: str = "PROJECT",
    listing: Path | None = None,
) -> tuple[list[tuple[str, str]], str]:
    """``label init --labels-from-folders``: ``(path, class)`` for every image whose top-level
    folder (under the image folder, as in an ImageFolder layout: ``cat/a.jpg``,
    ``cat/2021/b.jpg``) is named exactly as a class, and one line saying what was labeled
    and what was not (the images outside class folders, and the folders not named as a
    class, a near miss in case, spacing, ``_``/``-`` or a plural ``s``/``es`` named with its
    class). Refused (one line) when no image is in a class folder: the option was then
    surely meant otherwise.

    ``sha256``: each path's content hash; the copies in folders of different classes
    (:func:`folder_conflicts`) are not labeled, and the line ends with
    :func:`folder_conflicts_said` (one more line per set of them, the first
    :data:`CONFLICTS_LISTED`; all of them in ``listing`` when they are more)."""
    known = set(classes)
    conflicts = folder_conflicts(paths, classes, sha256) if sha256 is not None else []
    contradicted = {q for g in conflicts for q, _ in g}

    def key(name: str) -> str:  # a folder named as a class but for case, spacing or _ and -
        return re.sub(r"[\s_-]+", "", name.casefold())

    loose: dict[str, str] = {}
    for c in classes:  # the exact key first, then a plural (Birds/ for bird, Boxes/ for box)
        loose.setdefault(key(c), c)
    for c in classes:
        for plural in (key(c) + "s", key(c) + "es"):
            loose.setdefault(plural, c)
    rows: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    others: dict[str, int] = {}
    at_root = 0
    for path in paths:
        top, sep, _ = path.partition("/")
        if not sep:
            at_root += 1
        elif path in contradicted:
            continue
        elif top in known:
            rows.append((path, top))
            counts[top] = counts.get(top, 0) + 1
        else:
            others[top] = others.get(top, 0) + 1

    def near_miss(name: str) -> str | None:
        k = key(name)
        return loose.get(k) or next(  # and a singular (bird/ for a class birds)
            (c for c in classes if key(c) in (k + "s", k + "es")), None
        )

    def folder(name: str) -> str:
        near = near_miss(name)
        return f"{name}/ ({others[name]}" + (f"; class {near!r}?" if near else "") + ")"

    other = sorted(others, key=lambda f: (-others[f], f))
    named = listed(other, 8, show=folder)
    if not rows and not contradicted:
        raise ConfigError(
            "--labels-from-folders: no image is in a folder named as a class ("
            + (
                f"folders: {named}"
                if other
                else "no folders: every image is directly in the image folder"
            )
            + f"; classes: {', '.join(classes)}); name each class's folder exactly as the class."
        )
    said = (
        f"labeled {counted(len(rows), 'image')} by their folder ("
        + ", ".join(f"{c} {counts[c]}" for c in classes if c in counts)
        + ")"
    )
    left = len(paths) - len(rows)
    if left:
        said += f"; {left} left unlabeled"
        parts = ([f"{at_root} directly in the image folder"] if at_root else []) + (
            [f"in folders not named as a class: {named}"] if other else []
        )
        said += f" ({'; '.join(parts)})" if parts else ""  # the copies: said below
        if any(near_miss(f) for f in others):
            said += (
                "; the images of a folder named 'class ...?' stay unlabeled: to label them by "
                f"their folder, rename it as the class, then `fishermask label scan {project}` "
                f"(their labels, skips and history follow them) and `fishermask label add "
                f"{project} --from-folders`, or give their labels with `label add` (a path,label "
                "CSV)"
            )
    said += folder_conflicts_said(conflicts, project, listing)
    return rows, said


def parse_classes(text: str | Sequence[str]) -> list[str]:
    names = [c.strip() for c in (text.split(",") if isinstance(text, str) else text)]
    if any(not c for c in names):
        raise ConfigError(f"--classes {text!r} has an empty class name; use e.g. cat,dog,bird.")
    if len(set(names)) != len(names):
        twice = next(c for i, c in enumerate(names) if c in names[:i])
        raise ConfigError(f"--classes names {twice!r} twice; give each class once.")
    keys = [class_key(c) for c in names]
    twin = next((i for i, k in enumerate(keys) if keys.index(k) != i), None)
    if twin is not None:
        first, second = names[keys.index(keys[twin])], names[twin]
        raise ConfigError(
            f"--classes names {first!r} and {second!r}, {differ_how(first, second)}: one class "
            "to a reader, and one folder where case is ignored (macOS, Windows); give each "
            "class once, or names that differ in their letters."
        )
    if len(names) < 2:
        raise ConfigError(f"--classes {text!r}: a classifier needs at least 2 classes.")
    for c in names:
        check_class_name(c)
    return names


def class_key(name: str) -> str:
    """``name`` as two class names are compared for sameness: case folded and its accents
    composed one way (Unicode NFC), so ``Cat`` and ``cat``, or ``café`` written with ``é``
    (NFC) and with ``e`` and an accent (NFD, as macOS writes file names), are one key. No two
    classes of a project share one (:func:`parse_classes`, :func:`parse_class_changes`); a
    label is still matched to its class exactly (:meth:`Project.unknown_class_hint`)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def differ_how(a: str, b: str) -> str:
    """How two names of one :func:`class_key` differ, for a message."""
    if unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b):
        return "which are the same letters composed two ways (Unicode NFC and NFD)"
    return "which differ only in case"


def check_class_name(name: str) -> None:
    """The rules every class name follows (``label init --classes``, ``label config
    --add-class`` and ``--rename-class``): short, no control characters, usable as a folder
    name (the imagefolder export makes one folder per class)."""
    if len(name) > 100 or any(ord(ch) < 32 for ch in name):
        raise ConfigError(f"class name {name!r} is too long or holds control characters.")
    if name in (".", "..") or "/" in name or "\\" in name:
        raise ConfigError(
            f"class name {name!r} cannot be a folder name (the imagefolder export makes one "
            "folder per class): leave out / and \\ and do not use . or .. alone."
        )


def parse_class_changes(
    add: Sequence[str],
    rename: Sequence[str],
    current: Sequence[str],
    former: dict[str, int],
    removed: Collection[str] = (),
) -> list[str]:
    """The class list after ``label config --add-class`` (``add``: names, each entry may be a
    comma list) and ``--rename-class`` (``rename``: ``OLD=NEW`` each) on the ``current``
    names; ``former``: every name a class had before, with its class id
    (:meth:`Store.former_class_names`). One line (:class:`ConfigError`) for the first bad one.

    A class keeps its id (its position): added classes come after the others, a rename
    changes only the name. A name a class had before is never given to another class (a
    page or script still using it would label the wrong class); renaming a class back to
    its own earlier name is allowed. ``removed``: the names of removed classes (in
    ``current``, which lists every class by id): not renamed, and their names are not given
    to another class.
    """
    live = [c for c in current if c not in removed]
    new = list(current)
    taken: dict[str, str] = {}  # new name -> the option that gave it
    renamed: set[int] = set()
    for entry in rename:
        olds = [
            entry[:k] for k in range(len(entry)) if entry[k] == "=" and entry[:k].strip() in live
        ]
        if not olds:
            gone = [n for n in removed if entry.startswith(n + "=")]
            said = (
                f"--rename-class {entry!r}: give OLD=NEW with OLD one of the project's classes "
                f"({', '.join(live)})"
            )
            raise ConfigError(
                f"{said}; class {gone[0]!r} was removed (--remove-class)."
                if gone
                else did_you_mean(f"{said}.", entry.partition("=")[0].strip(), live)
            )
        if len(olds) > 1:
            raise ConfigError(
                f"--rename-class {entry!r}: ambiguous (more than one class name ends at an =); "
                "rename that class in two steps through a name without =."
            )
        old = olds[0].strip()
        name = entry[len(olds[0]) + 1 :].strip()
        cid = current.index(old)
        what = f"--rename-class {entry!r}"
        if cid in renamed:
            raise ConfigError(f"{what}: class {old!r} is renamed twice; rename it once.")
        if not name:
            raise ConfigError(f"{what}: the new name is empty; use e.g. {old}=NEW.")
        if name == old:
            raise ConfigError(f"{what}: the new name is the old one; nothing to rename.")
        renamed.add(cid)
        new[cid] = name
        taken.setdefault(name, what)
    for entry in add:
        for name in (n.strip() for n in entry.split(",")):
            what = f"--add-class {entry!r}"
            if not name:
                raise ConfigError(f"{what} has an empty class name; use e.g. bird or bird,boat.")
            new.append(name)
            taken.setdefault(name, what)
    for cid, name in enumerate(new):
        if cid < len(current) and name == current[cid]:
            continue  # unchanged
        what = taken[name]
        check_class_name(name)
        if name in removed:
            raise ConfigError(
                f"{what}: {name!r} is the name of a removed class (--remove-class); a page, "
                "script or CSV still using it would label the new class: choose another name."
            )
        if new.count(name) > 1:
            raise ConfigError(
                f"{what}: {name!r} would name two classes; class names must be unique (a class "
                "is not merged this way: relabel its images with `label add`, then remove it with "
                "--remove-class)."
            )
        twin = next(  # an earlier class, or a later one left as it was (two new names: the
            # second is named with the first)
            (
                n
                for j, n in enumerate(new)
                if (j < cid or (j < len(current) and n == current[j]))
                and j != cid
                and class_key(n) == class_key(name)
            ),
            None,
        )
        if twin is not None:
            kind = "removed class" if twin in removed else "class"
            fix = (
                f" (to change the case of {twin!r}: --rename-class {twin}={name})"
                if what.startswith("--add-class") and twin in live
                else ""
            )
            raise ConfigError(
                f"{what}: {name!r} and the {kind} {twin!r} "
                f"{differ_how(name, twin).removeprefix('which ')}: one class to a reader, and "
                f"one folder where case is ignored (macOS, Windows); choose a name that differs "
                f"in its letters{fix}."
            )
        known = former.get(name, current.index(name) if name in current else cid)
        if known != cid:
            raise ConfigError(
                f"{what}: {name!r} is or was the name of another class (now {new[known]!r}); "
                "a page or script still using it would label the wrong class: choose a new "
                "name."
            )
    return new


#: The actions that set an image aside (shown again only by ``label revisit``), and the words
#: the commands, the API and ``label status`` use for them.
SET_ASIDE = ("unsure", "skip")
KIND_NAMES = {"unsure": "unsure", "skip": "skipped"}
#: The csv export's column (``--set-aside``) naming an image's state when it is set aside
#: (``skipped``, ``unsure``; empty on a label), which ``label add`` and ``init --labels`` read.
SET_ASIDE_COLUMN = "set_aside"


def tally_said(tally: dict[str, int]) -> str:
    """``2 labels, 2 skipped and 1 unsure`` of :meth:`Project.add_label_rows`'s ``tally``
    (``2 labels`` alone when nothing was set aside)."""
    parts = [counted(tally.get("label", 0), "label")] + [
        f"{tally[k]} {KIND_NAMES[k]}" for k in ("skip", "unsure") if tally.get(k)
    ]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def parse_set_aside(names: Sequence[str], what: str) -> list[str]:
    """``["skipped", "unsure"]`` (or ``skip``) -> store kinds, in :data:`SET_ASIDE` order."""
    words = {"unsure": "unsure", "skipped": "skip", "skip": "skip"}
    bad = [n for n in names if n not in words]
    if bad:
        raise ConfigError(
            did_you_mean(f"{what} {bad[0]!r}: use skipped or unsure (or both).", bad[0], words)
        )
    chosen = {words[n] for n in names}
    return [k for k in SET_ASIDE if k in chosen]


#: Largest ``--image-size`` side: the models take small inputs (32x32 by default), and every
#: image is decoded and held in memory at this size.
MAX_SIDE = 1024


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_decode_memory(n: int, channels: int, size: tuple[int, int]) -> None:
    """Refuse to decode ``n`` images at ``size`` when they would not fit in memory.

    A scan holds the decoded images twice (each one, then the stacked segment), so twice
    their size must be available; running out would get the process killed half-way.
    """
    need = 2 * n * channels * size[0] * size[1]
    have = available_memory()
    if have is not None and need > have:
        raise ConfigError(
            f"decoding {n} images at {size[0]}x{size[1]} needs about {need / 1e9:.1f} GB of "
            f"memory and {have / 1e9:.1f} GB is available: choose a smaller --image-size "
            "(e.g. 32x32)."
        )


def parse_strategy(
    text: str, imports: Sequence[dict[str, Any]] | None = None
) -> tuple[str, dict[str, Any]]:
    """``"fishermask:sparsity=0.01"`` -> ``("fishermask", {"sparsity": 0.01})``, validated
    (``imports``: the project's, loaded; named when they do not register the strategy)."""
    from fishermask import strategies
    from fishermask.experiments.config import StrategySpec

    spec = StrategySpec.parse(text)
    if spec.name not in strategies.available():
        raise ConfigError(
            did_you_mean(
                f"Unknown strategy {spec.name!r}; supported: {', '.join(strategies.available())}.",
                spec.name,
                strategies.available(),
            )
            + label_imports.not_registered("strategy", spec.name, imports)
        )
    strategies.get(spec.name, **spec.options)  # unknown options raise here
    return spec.name, dict(spec.options)


def check_query_pool(query_pool: object, batch: int) -> int:
    """``--query-pool``: 0 (score every unseen image) or an integer >= the batch size."""
    if isinstance(query_pool, bool) or not isinstance(query_pool, int) or query_pool < 0:
        raise ConfigError(
            f"--query-pool {query_pool!r}: must be 0 (score every unseen image) or an integer "
            f">= the batch size ({batch})."
        )
    if 0 < query_pool < batch:
        raise ConfigError(
            f"--query-pool {query_pool} is smaller than the batch ({batch}): use 0 (every "
            f"unseen image) or at least {batch}."
        )
    return query_pool


def check_changeable(
    *,
    model: str,
    width: float,
    batch: int,
    min_per_class: int,
    max_epochs: int,
    max_steps: int,
    budget: int | None,
    query_pool: int,
    imports: Sequence[dict[str, Any]] | None = None,
) -> None:
    """The checks of every setting that ``label init`` takes and ``label config`` may change
    (the strategy is checked against the model by :func:`check_strategy_for_model`);
    ``imports``: the project's, loaded (a model they register is valid)."""
    from fishermask.models import available_models, check_width

    if model not in available_models():
        raise ConfigError(
            did_you_mean(
                f"Unknown model {model!r}; supported: {', '.join(available_models())}.",
                model,
                available_models(),
            )
            + label_imports.not_registered("model", model, imports)
        )
    if not width > 0:
        raise ConfigError(f"--width {width}: must be > 0.")
    check_width(model, width)
    for name, v in (
        ("batch", batch),
        ("min-per-class", min_per_class),
        ("max-epochs", max_epochs),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"--{name} {v!r}: must be an integer >= 1.")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0:
        raise ConfigError(f"--max-steps {max_steps!r}: must be an integer >= 0 (0: no cap).")
    if budget is not None and budget < 1:
        raise ConfigError(f"--budget {budget}: must be >= 1.")
    check_query_pool(query_pool, batch)


def check_budget(
    budget: int | None, images: int, labeled: int, project: str, found: bool = False
) -> None:
    """A budget is a number of labels to reach: not below the labels already given and not
    above the project's images (refused, one line each, with the fix). ``found``: ``images``
    counts the image files found before any was decoded (``label init``: an unreadable one
    is among them), said so."""
    if budget is None:
        return
    if budget < labeled:
        raise ConfigError(
            f"--budget {budget} is below the {labeled} labels already given: use --budget "
            f">= {labeled} (the budget counts every label, those given included)."
        )
    if budget > images:
        raise ConfigError(
            f"--budget {budget} is more than the "
            + (f"{images} image files found" if found else f"project's {images} images")
            + f": use --budget "
            f"<= {images} (after `fishermask label scan {project}` adds images, raise it with "
            f"`fishermask label config {project} --budget N`)."
        )


def check_strategy_for_model(
    sname: str,
    sopts: dict[str, Any],
    model: str,
    width: float,
    num_classes: int,
    shape: tuple[int, int, int],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Check a parsed strategy against the project's model; returns its options.

    FisherMask without ``k`` or ``sparsity`` on a model whose final layer has more weights
    than the default sparsity keeps gets ``k`` = twice the final layer's weights (said).
    """
    from fishermask import strategies
    from fishermask.models import build_model

    sopts = dict(sopts)
    probe = build_model(model, num_classes, shape, width)
    if sname == "fishermask" and "k" not in sopts and "sparsity" not in sopts:
        try:
            strategies.get(sname, **sopts).check(probe)
        except ConfigError:
            sopts["k"] = 2 * probe.classifier.weight.numel()
            say(
                f"FisherMask's default sparsity keeps fewer weights than the {model}'s final "
                f"layer has; using k={sopts['k']} (twice the final layer's weights)."
            )
    strategies.get(sname, **sopts).check(probe)
    return sopts


def check_out_file(out: Path) -> None:
    """Refuse an output path that cannot take a file written atomically (a temporary file
    renamed over it): a folder, an existing device, pipe or socket (``/dev/stdout`` would be
    replaced, not written to), or a path under an existing file."""
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name.")
    if out.exists() and not out.is_file():
        raise ConfigError(
            f"--out {out} is not a regular file (a device, pipe or socket); give a file name."
        )
    _check_out_parent(out)


def _check_out_parent(out: Path) -> None:
    """Refuse an ``--out`` under a file, or in a folder this process cannot write (read-only
    file system, no permission): checked before anything is done, since the write comes last
    (``label next`` would have replaced the batch, then failed with a traceback)."""
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--out {out}: {parent} is a file, not a folder.")
            if not os.access(parent, os.W_OK | os.X_OK):
                why = "no permission to write there"
                with contextlib.suppress(OSError):
                    if os.statvfs(parent).f_flag & os.ST_RDONLY:
                        why = "it is on a read-only file system"
                raise ConfigError(
                    f"--out {out}: cannot write in {parent} ({why}); choose a folder you "
                    "can write, nothing was done."
                )
            return


#: The file an imagefolder export holds besides its class folders: it marks the folder as
#: one a later export of the same kind may replace (``label export`` again after more labels).
EXPORT_MARK = ".fishermask-export.json"
#: Files a file browser leaves in a folder it showed (macOS Finder, Windows Explorer): an
#: earlier export holding them is still one (they go with it).
BROWSER_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def earlier_export(out: Path, kind: str) -> bool:
    """Whether the folder ``out`` is an export of ``kind`` a new one may replace, and holds
    nothing else: ``imagefolder`` (:data:`EXPORT_MARK` of that format, and otherwise only the
    class folders and files it lists as written), or ``model`` (``model.json`` of the model
    format, and at most ``model.pt`` beside it). Anything else in it (a file of the user's,
    also one put in a class folder) keeps it refused."""
    try:
        names = {p.name: p for p in out.iterdir()}
        if kind == "model":
            from fishermask.label.predict import MODEL_FORMAT

            info = json.loads((out / "model.json").read_text("utf-8"))
            ours = {"model.json", "model.pt"} | BROWSER_FILES
            return info.get("format") == MODEL_FORMAT and set(names) <= ours
        info = json.loads((out / EXPORT_MARK).read_text("utf-8"))
        if info.get("format") != kind:
            return False
        folders, files = set(info["folders"]), set(info["files"])
        for name, p in names.items():
            if name == EXPORT_MARK or (name in BROWSER_FILES and p.is_file()):
                continue
            if name not in folders or p.is_symlink() or not p.is_dir():
                return False
            for f in p.iterdir():
                if f.is_symlink() or not f.is_file():
                    return False
                if f"{name}/{f.name}" not in files and f.name not in BROWSER_FILES:
                    return False
        return True
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return False


def check_export_folder(out: Path, kind: str) -> None:
    """``--out`` of a folder export: new, empty, or an earlier export of the same kind (which
    the new one replaces); anything else is refused in one line."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not earlier_export(out, kind):
        raise ConfigError(
            f"--out {out} exists and is neither empty nor an earlier `label export --format "
            f"{kind}` (those are replaced); choose a new path."
        )


@contextlib.contextmanager
def new_folder(out: Path, *, durable: bool = False, replaces: str | None = None) -> Iterator[Path]:
    """Build the folder ``out`` in a temporary folder beside it (yielded), then rename it into
    place (an empty ``out``, or an earlier export of the kind ``replaces`` the caller checked
    with :func:`check_export_folder`, is replaced: checked again just before, since the
    building may take minutes, and renamed aside first and removed after; a folder that no
    longer passes is refused, untouched): readers see all of it or nothing; on an error the
    temporary folder is removed.
    ``durable``: the names in the new folder and the folder's own name are fsynced (the
    caller fsyncs the files it writes), so a crash after the rename cannot leave it half on
    disk."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    old = None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would stay on the renamed folder
        yield tmp
        if durable:
            sync_dir(tmp)
        if out.exists():
            if any(out.iterdir()):  # an earlier export: aside, then removed once replaced
                if replaces is None or not earlier_export(out, replaces):
                    raise ConfigError(
                        f"--out {out} changed while the export was written (it now holds "
                        "files no earlier export wrote); nothing was replaced: move them out "
                        "or choose a new path."
                    )
                old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
                os.replace(out, old / "export")
            else:
                out.rmdir()
        os.replace(tmp, out)
        if durable:
            sync_dir(out.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / "export").exists():  # not replaced: the earlier back
            with contextlib.suppress(OSError):
                if not out.exists():
                    os.replace(old / "export", out)
                    old.rmdir()
        elif old is not None:
            with contextlib.suppress(OSError):
                old.rmdir()
        raise


def sync_dir(folder: Path) -> None:
    """fsync a folder (the names in it)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fold_of(image_id: int, copies: dict[int, int] | None = None) -> int:
    """The cross-validation fold of an image; a copy of an earlier image (``copies``, from
    :meth:`Store.copies`) is in that image's fold, so the held-out estimate never scores a
    model on the bytes it was trained on."""
    image_id = (copies or {}).get(image_id, image_id)
    return int(hashlib.sha256(f"fold:{image_id}".encode()).hexdigest()[:8], 16) % FOLDS


def wilson(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion."""
    if n == 0:
        return float("nan"), float("nan")
    p = correct / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def fit_normalizer(x: torch.Tensor, chunk: int = 4096) -> Normalizer:
    """Per-channel mean/std of uint8 images (as :meth:`Normalizer.fit`), in float64 chunks."""
    import torch

    from fishermask.training import Normalizer

    ch = x.shape[1]
    s = torch.zeros(ch, dtype=torch.float64)
    s2 = torch.zeros(ch, dtype=torch.float64)
    count = 0
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk].to(torch.float64) / 255.0
        s += part.sum(dim=(0, 2, 3))
        s2 += part.pow(2).sum(dim=(0, 2, 3))
        count += part.numel() // ch
    mean = s / max(count, 1)
    var = (s2 - count * mean.pow(2)) / max(count - 1, 1)
    std = var.clamp_min(0).sqrt().clamp_min(1e-3)
    return Normalizer(
        tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)
    )


@dataclass
class FileCheck:
    """What :meth:`Project.check_files` found: images scanned earlier that are no longer a file
    in the image folder, and images whose content no longer matches the stored hash."""

    missing: list[ImageRow] = field(default_factory=list)
    changed: list[ImageRow] = field(default_factory=list)


class Project:
    """An open labeling project folder (``project.sqlite`` + ``models/``)."""

    def __init__(self, path: str | os.PathLike[str], *, _initializing: bool = False) -> None:
        self.dir = Path(path)
        self.store = Store(self.dir / DB_NAME)
        if not _initializing and self.store.num_images() == 0:
            self.store.close()
            raise ConfigError(
                f"{self.dir} holds an unfinished project (its `label init` was interrupted "
                "before any image was added); run `fishermask label init` on it again."
            )
        self.settings = self.store.meta()
        self.classes: list[str] = []
        self.removed: frozenset[int] = frozenset()
        self.reload_classes()
        # (key of the images table they are of, images, ids): one attribute, replaced whole, so
        # a server thread never pairs the images of one scan with the ids of another
        self._decoded: tuple[int, torch.Tensor, list[int]] | None = None
        self.colour_added: list[str] = []  # see scan()
        self._nfc: tuple[dict[str, int], int, dict[str, int]] | None = None  # see _composed()
        # ((image_root, image_root_rel), the image folder, a note): see _find_root()
        self._root: tuple[tuple[str, str | None], Path, str | None] | None = None
        if not _initializing:
            self._record_relative_root()

    def close(self) -> None:
        self.store.close()

    # -- creation ---------------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str],
        images: str | os.PathLike[str],
        classes: str | Sequence[str],
        *,
        image_size: Sequence[int] = (32, 32),
        fit: str = imgs.DEFAULT_FIT,
        model: str = "cnn",
        width: float = 1.0,
        strategy: str = "fishermask",
        batch: int = 50,
        budget: int | None = None,
        min_per_class: int = 3,
        seed: int = 0,
        max_epochs: int = 50,
        max_steps: int = 300,
        query_pool: int = QUERY_POOL,
        cache_dir: str | os.PathLike[str] | None = None,
        say: Callable[[str], None] = lambda s: None,
        progress: bool = False,
        labels: str | os.PathLike[str] | None = None,
        imports: Sequence[str] = (),
        labels_from_folders: bool = False,
    ) -> Project:
        """Create a project, scan the images and import ``labels`` (a ``path,label`` CSV), or
        with ``labels_from_folders`` label each image in a top-level folder named as a class
        with that class (:func:`folder_labels`).

        All or nothing: when anything fails (a bad row of ``labels`` included), the project
        is not left behind, so the same ``label init`` can be run again once it is fixed.
        ``imports``: modules or ``.py`` files imported first (your own models and strategies;
        :mod:`fishermask.label.imports`). ``fit``: how each image is fitted to ``image_size``
        (:data:`fishermask.label.images.FITS`; fixed for the project's life).
        """
        from fishermask.data.images import check_image_size
        from fishermask.label.relocate import relative

        path = Path(path)
        root = Path(images)
        if (path / DB_NAME).exists():
            if not _interrupted_init(path):
                raise ConfigError(
                    f"{path} is already a labeling project; nothing was changed: go on with it "
                    f"(`fishermask label serve {path}` serves it, `fishermask label config "
                    f"{path}` shows its settings), or give `label init` a new folder."
                )
            # a `label init` killed before it added any image (no labels either): start over
            for suffix in ("", "-wal", "-shm"):
                (path / (DB_NAME + suffix)).unlink(missing_ok=True)
            say(f"replacing the unfinished project in {path} (its `label init` was interrupted)")
        if not root.is_dir():
            raise ConfigError(
                f"--images {root}: "
                + (
                    "a file, not a folder; give the folder that holds the images."
                    if root.exists()
                    else f"no such folder (looked for {root.absolute()}); give the folder "
                    "that holds the images."
                )
            )
        if labels is not None and labels_from_folders:
            raise ConfigError(
                "--labels and --labels-from-folders: give one (the folders' labels, or a CSV's)."
            )
        if labels is not None and not Path(labels).is_file():
            raise ConfigError(f"--labels {labels}: no such file (a CSV with header path,label).")
        names = parse_classes(classes)
        size = check_image_size(tuple(image_size))
        if max(size) > MAX_SIDE:
            raise ConfigError(
                f"--image-size {size[0]}x{size[1]}: at most {MAX_SIDE} a side (every image is "
                "decoded and kept in memory at this size); e.g. 32x32 or 64x64."
            )
        imgs.check_fit(fit)
        import_specs = label_imports.resolve(list(imports))
        label_imports.load(import_specs, str(path))
        check_changeable(
            model=model,
            width=width,
            batch=batch,
            min_per_class=min_per_class,
            max_epochs=max_epochs,
            max_steps=max_steps,
            budget=budget,
            query_pool=query_pool,
            imports=import_specs,
        )
        sname, sopts = parse_strategy(strategy, import_specs)
        files, refused = imgs.candidate_files(root)
        if not files:
            other = [r for r, _ in refused if r.lower().endswith(imgs.NOT_READ)]
            kinds = Counter(os.path.splitext(r)[1].lower() for r in other)
            found = (
                f"; found {len(other)} file{'s' * (len(other) != 1)} of image formats it does "
                f"not read ({', '.join(f'{k}: {n}' for k, n in kinds.most_common())}, e.g. "
                f"{other[0]}): convert them (e.g. to JPEG or PNG)"
                if other
                else ""
            )
            if linked := [r for r, why in refused if why == imgs.LINKED]:
                found += (
                    f"; found {counted(len(linked), 'symbolic link')} to folders, which are not "
                    f"followed (e.g. {linked[0]}): move or copy those folders into the image "
                    "folder, or give --images a folder that holds them"
                )
            raise ConfigError(
                f"no images under {root} (looked for {', '.join(imgs.EXTENSIONS)} in any case, "
                f"recursively, hidden files ignored){found}."
            )
        check_budget(budget, len(files), 0, str(path), found=True)  # again after decoding
        channels = imgs.guess_channels(root, files)
        check_decode_memory(len(files), channels, size)
        sopts = check_strategy_for_model(
            sname, sopts, model, width, len(names), (channels, *size), say
        )
        created_dir = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        project: Project | None = None
        try:
            store = Store(path / DB_NAME, create=True)
            store.set_classes(names)
            store.set_meta(
                {
                    "project_id": uuid.uuid4().hex[:12],
                    "image_root": str(root.resolve()),
                    "image_root_rel": relative(root, path),
                    "image_size": list(size),
                    "fit": fit,
                    "channels": channels,
                    "model": model,
                    "width": width,
                    "strategy": sname,
                    "strategy_options": sopts,
                    "batch": batch,
                    "budget": budget,
                    "min_per_class": min_per_class,
                    "seed": seed,
                    "max_epochs": max_epochs,
                    "max_steps": max_steps,
                    "query_pool": query_pool,
                    "cv_below": 100,
                    "min_eval": 20,
                    "cache_dir": str(Path(cache_dir).resolve()) if cache_dir else None,
                    "imports": import_specs,
                    "created": time.time(),
                }
            )
            store.close()
            project = cls(path, _initializing=True)
            added, unreadable = project.scan(progress=progress)
            for line in imgs.refused_lines(unreadable, "not added"):
                say(line)
            if not added:
                raise ConfigError(
                    f"none of the {len(files)} image files under {root} could be read."
                )
            if labels is not None:
                tally: dict[str, int] = {}
                project.add_csv_labels(labels, tally=tally)
                say(f"imported {tally_said(tally)} from {labels}")
            if labels_from_folders:
                images = list(project.store.images())
                rows, said = folder_labels(
                    [r.path for r in images],
                    names,
                    [r.sha256 for r in images],
                    str(path),
                    path / CONFLICTS_FILE,
                )
                project.add_label_rows(rows, source="import", what="folders")
                say(said)
            if budget is not None:
                check_budget(
                    budget, project.store.num_images(), project.counts()["labeled"], str(path)
                )
        except BaseException:
            if project is not None:
                project.close()
            for suffix in ("", "-wal", "-shm"):
                (path / (DB_NAME + suffix)).unlink(missing_ok=True)
            if created_dir:
                shutil.rmtree(path, ignore_errors=True)
            raise
        return project

    # -- settings ---------------------------------------------------------------------------
    def reload_settings(self) -> dict[str, Any]:
        """Re-read the settings and the classes (``label config`` may have changed them in
        another process)."""
        self.settings = self.store.meta()
        self.reload_classes()
        return self.settings

    def reload_classes(self) -> list[str]:
        """Re-read the class names and the removed classes (``label config --add-class /
        --rename-class / --remove-class`` may have changed them in another process).
        ``classes`` lists every class by id, removed ones included (a removed class keeps its
        id and name: never reordered), so a list read earlier names every class id it holds
        correctly, apart from a rename since; :attr:`current_classes` leaves the removed ones
        out."""
        with self.store.snapshot():
            classes = self.store.classes()
            removed = frozenset(self.store.removed_classes())
        self.classes, self.removed = classes, removed
        return self.classes

    def class_names(self) -> list[str]:
        """Every class's name by id as a person reads it, re-read (:meth:`reload_classes`): a
        class removed since is ``NAME (removed)`` (an annotator's own label of it, on an image
        someone else relabeled, is still a side of a disagreement)."""
        return [
            f"{c} (removed)" if i in self.removed else c
            for i, c in enumerate(self.reload_classes())
        ]

    @property
    def current_classes(self) -> list[str]:
        """The classes a label may be given, by id: every class but the removed ones (the
        page's keys, the cold start, the exports, the status)."""
        return [c for i, c in enumerate(self.classes) if i not in self.removed]

    def removed_hint(self, name: str) -> str:
        """``" (class 'NAME' was removed ...)"`` when ``name`` is a removed class, else ``""``."""
        if name in self.classes and self.classes.index(name) in self.removed:
            return (
                f" (class {name!r} was removed by `fishermask label config --remove-class`; "
                "its images were given other classes)"
            )
        return ""

    def mask_removed(self, model: Classifier) -> Classifier:
        """Make ``model`` never give a removed class any probability: its final layer's
        output for each class removed (read at every pass, so a long-lived server's cached
        model follows a removal) is set to -1e4, i.e. probability 0 after softmax and the
        others renormalised; in training that output gets no gradient. The weights and the
        state dict keep every class's output, so every class id stays the model's index."""

        def hook(module: Any, inputs: Any, out: torch.Tensor) -> torch.Tensor:
            import torch

            ids = [i for i in self.removed if i < out.shape[-1]]
            if not ids:
                return out
            idx = torch.tensor(sorted(ids), device=out.device)
            return out.index_fill(-1, idx, -1e4)

        model.classifier.register_forward_hook(hook)
        return model

    def configure(
        self,
        *,
        strategy: str | None = None,
        batch: int | None = None,
        query_pool: int | None = None,
        budget: int | None = None,
        min_per_class: int | None = None,
        max_epochs: int | None = None,
        max_steps: int | None = None,
        model: str | None = None,
        width: float | None = None,
        imports: Sequence[str] | None = None,
        add_classes: Sequence[str] = (),
        rename_classes: Sequence[str] = (),
        remove_classes: Sequence[str] = (),
        say: Callable[[str], None] = lambda s: None,
    ) -> dict[str, list[Any]]:
        """Change settings (None: keep); validated as at init, written with a history row in
        one transaction, used from the next round on. Returns ``{key: [old, new]}``.

        ``add_classes`` (names, or comma lists of them) appends classes, ``rename_classes``
        (``OLD=NEW`` each) renames them (:func:`parse_class_changes`): every class keeps its id,
        so labels keep their class and a model trained before knows the first classes (one
        added since gets probability 0 until the next retrain). ``remove_classes`` (names, or
        comma lists) marks classes removed (:meth:`Store.change_settings`): refused while an
        image still carries one as its label, or when fewer than 2 classes would stay; a
        removed class keeps its id and name, and from then on is offered, counted, predicted
        and exported nowhere. Refused while a round is running (that round and its worker use
        the settings it started with), a removal also while a label check runs. Image size and
        the image folder cannot change here: the decoded images and saved models depend on
        them.
        """
        from fishermask.label.store import CheckRunning, RoundBusy

        remove = [n.strip() for entry in remove_classes for n in entry.split(",")]
        for entry in remove_classes:
            if any(not n.strip() for n in entry.split(",")):
                raise ConfigError(
                    f"--remove-class {entry!r} has an empty class name; use e.g. car or car,van."
                )

        cur = self.reload_settings()
        specs = (cur.get("imports") or []) if imports is None else label_imports.resolve(imports)
        label_imports.load(specs, str(self.dir))  # the model/strategy named may be theirs
        new = {
            "batch": cur["batch"] if batch is None else batch,
            "query_pool": cur.get("query_pool", QUERY_POOL) if query_pool is None else query_pool,
            "budget": cur.get("budget") if budget is None else budget,
            "min_per_class": cur["min_per_class"] if min_per_class is None else min_per_class,
            "max_epochs": cur["max_epochs"] if max_epochs is None else max_epochs,
            "max_steps": cur["max_steps"] if max_steps is None else max_steps,
            "model": cur["model"] if model is None else model,
            "width": cur["width"] if width is None else width,
        }
        check_changeable(**new, imports=specs)
        if budget is not None:
            check_budget(budget, self.store.num_images(), self.counts()["labeled"], str(self.dir))
        if strategy is not None:
            sname, sopts = parse_strategy(strategy, specs)
        else:
            sname, sopts = cur["strategy"], dict(cur["strategy_options"])
            if imports is not None:  # the current strategy may be one the old imports gave
                parse_strategy(sname, specs)
        names = self.reload_classes()
        removed = [self.classes[i] for i in self.removed]
        if add_classes or rename_classes:  # checked here for one line before the transaction
            names = parse_class_changes(
                add_classes, rename_classes, names, self.store.former_class_names(), removed
            )
        for name in remove:
            if name in add_classes or any(r.split("=")[-1].strip() == name for r in rename_classes):
                raise ConfigError(
                    f"--remove-class {name!r}: a class added or renamed in the same command; "
                    "remove it in a later `label config`."
                )
        if (
            strategy is not None
            or model is not None
            or width is not None
            or imports is not None
            or len(names) != len(self.classes)  # the final layer grows
        ):
            sopts = check_strategy_for_model(
                sname,
                sopts,
                new["model"],
                float(new["width"]),
                len(names),
                (self.channels, *self.image_size),
                say,
            )
        new |= {"strategy": sname, "strategy_options": sopts}
        if imports is not None:
            new["imports"] = specs

        def classes(current: list[str], former: dict[str, int]) -> list[str]:
            # again in the transaction: another `label config` may have changed them since
            return parse_class_changes(add_classes, rename_classes, current, former, removed)

        try:
            diff = self.store.change_settings(
                new, classes if add_classes or rename_classes else None, remove=remove
            )
        except RoundBusy as busy:
            raise ConfigError(
                f"round {busy.args[0]} is running; change the settings when it has finished "
                "(they take effect from the next round)."
            ) from None
        except CheckRunning as exc:
            raise ConfigError(f"--remove-class: {exc}") from None
        self.reload_settings()
        return diff

    # -- settings shortcuts -----------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The image folder: the one recorded, or, when it is gone or empty, the folder at the
        same place relative to the project folder if it holds the project's images (a
        project moved together with its images; :attr:`root_note` says so):
        :func:`fishermask.label.relocate.find_root`."""
        return self._find_root()[0]

    @property
    def root_note(self) -> str | None:
        """One line when :attr:`root` is not the recorded folder (found relative to the
        project), naming the command that records it; else None."""
        return self._find_root()[1]

    def _find_root(self) -> tuple[Path, str | None]:
        from fishermask.label.relocate import find_root

        key = (str(self.settings["image_root"]), self.settings.get("image_root_rel"))
        if self._root is None or self._root[0] != key:

            def rows() -> list[tuple[str, int]]:
                return [(r.path, r.bytes) for r in self.store.images()]

            self._root = (key, *find_root(*key, self.dir, rows))
        return self._root[1], self._root[2]

    def _record_relative_root(self) -> None:
        """Record where the image folder lies relative to the project folder while the
        recorded folder is in place (a project made before ``image_root_rel`` was, or moved
        since without its images), so that a later move of both together finds it."""
        from fishermask.label.relocate import occupied, relative

        root = self.settings["image_root"]
        if not occupied(Path(root)):
            return
        rel = relative(root, self.dir)
        if rel == self.settings.get("image_root_rel", False):
            return
        with contextlib.suppress(sqlite3.Error):
            self.store.set_meta({"image_root_rel": rel})
            self.settings["image_root_rel"] = rel

    @property
    def image_size(self) -> tuple[int, int]:
        h, w = self.settings["image_size"]
        return int(h), int(w)

    @property
    def channels(self) -> int:
        return int(self.settings["channels"])

    @property
    def fit(self) -> str:
        """How each image is fitted to :attr:`image_size` (:func:`fishermask.label.images.fit_to`):
        ``stretch`` for a project made before the setting existed (what it decoded with)."""
        return str(self.settings.get("fit", imgs.LEGACY_FIT))

    @property
    def cache_dir(self) -> Path:
        from fishermask.data.cache_dir import resolve_cache_dir

        return resolve_cache_dir(self.settings.get("cache_dir"))

    def class_id(self, name: str) -> int:
        """The id of the current class ``name`` (a removed class is refused, named so; accents
        composed otherwise are the same name: :meth:`composed_class`)."""
        name = self.composed_class(name)
        if name not in self.current_classes:
            said = (
                f"label {name!r} is not one of the project's classes: "
                f"{', '.join(self.current_classes)}"
            )
            hint = self.unknown_class_hint(name, close=False)
            raise ConfigError(
                f"{said}{hint}." if hint else did_you_mean(f"{said}.", name, self.current_classes)
            )
        return self.classes.index(name)

    def unknown_class_hint(self, name: str, *, close: bool = True) -> str:
        """What follows "label 'X' is not one of the classes": that it was renamed or removed,
        else the class it differs from only in case (difflib sees no likeness between 'RED'
        and 'red'), else (``close``) a close class name (:func:`suggestion`), in parentheses;
        or ``""``.
        Labels are matched to their class exactly: one that differs in case is refused and
        named with its class, never taken for it."""
        hint = self.renamed_hint(name) + self.removed_hint(name)
        if hint:
            return hint
        same = [c for c in self.current_classes if class_key(c) == class_key(name)]
        if same:
            return f" (did you mean {same[0]!r}? labels are case-sensitive)"
        guess = suggestion(name, self.current_classes) if close else ""
        return f" ({guess})" if guess else ""

    def composed_class(self, name: str) -> str:
        """The current class ``name`` is, its accents composed otherwise ('é' as one
        character, Unicode NFC, or 'e' and an accent, NFD, as macOS writes names: a CSV or a
        Label Studio export written on another system), else ``name`` itself."""
        if name in self.current_classes or name.isascii():
            return name
        key = unicodedata.normalize("NFC", name)
        same = [c for c in self.current_classes if unicodedata.normalize("NFC", c) == key]
        return same[0] if len(same) == 1 else name

    def renamed_hint(self, name: str) -> str:
        """``" ('OLD' was renamed to 'NEW')"`` when ``name`` was a class's name before a
        ``label config --rename-class``, else ``""``."""
        was = self.store.former_class_names().get(name)
        if was is None:
            return ""
        return f" ({name!r} was renamed to {self.store.classes()[was]!r})"

    # -- images -----------------------------------------------------------------------------
    def scan(self, progress: bool = False) -> tuple[int, list[tuple[str, str]]]:
        """Add images that appeared under the root since the last scan; labels untouched.

        Returns the number added and the unreadable files (relative path, reason). In a grey
        project (1 channel), the colour images added, read as grey, are in
        :attr:`colour_added` until the next scan.
        """
        from fishermask.data.progress import progress_bar

        known = set(self.store.image_ids_by_path())
        files, _ = imgs.candidate_files(self.root, known)
        new = [f for f in files if f not in known]
        check_decode_memory(len(new), self.channels, self.image_size)
        with progress_bar("decoding images", len(new), progress and len(new) > 0) as advance:
            result = imgs.scan_folder(
                self.root, self.image_size, self.channels, known, advance, fit=self.fit
            )
        self.colour_added = (
            [f.path for f in result.found if imgs.guess_channels(self.root, [f.path]) == 3]
            if self.channels == 1
            else []
        )
        if result.found:
            segment = self.store.next_segment()
            pixels = np.stack([f.pixels for f in result.found])
            imgs.segment_images(
                self.cache_dir,
                self.root,
                self.settings["project_id"],
                segment,
                result.found,
                self.image_size,
                self.channels,
                pixels=pixels,
                fit=self.fit,
            )
            self.store.add_images(
                (
                    {
                        "path": f.path,
                        "sha256": f.sha256,
                        "bytes": f.bytes,
                        "width": f.width,
                        "height": f.height,
                        "mtime_ns": f.mtime_ns,
                    }
                    for f in result.found
                ),
                segment,
            )
            self._decoded = None
        # the files not added, as they are now: not counted as new until they change
        self.store.set_meta(
            {SCAN_REFUSED: imgs.refused_stats(self.root, (r for r, _ in result.unreadable))}
        )
        return len(result.found), result.unreadable

    def new_files(self) -> int:
        """How many image files of the folder are not in the project and new since the last
        scan (a file it refused is not counted again until it changes): only ``label scan``
        adds files, so ``label status``, ``label next`` and the page say so when this is not
        0."""
        return imgs.count_new_files(
            self.root, set(self.store.image_ids_by_path()), self.store.get_meta(SCAN_REFUSED)
        )

    def new_files_hint(
        self, n: int | None = None, audience: Literal["owner", "annotator"] = "owner"
    ) -> str | None:
        """One line saying that ``label scan`` is due (``n``: the count of
        :meth:`new_files`, counted here when None), or None. For the owner it names the
        command with the project's folder; an annotator, who cannot scan, is told that the
        owner's scan adds the files (without the project's path, the owner's business)."""
        n = self.new_files() if n is None else n
        if not n:
            return None
        them = "it" if n == 1 else "them"
        fix = (
            f"`fishermask label scan {self.dir}` adds {them}, or says why not"
            if audience == "owner"
            else f"the owner's `fishermask label scan` adds {them}"
        )
        return (
            f"{counted(n, 'image file')} in the image folder {'is' if n == 1 else 'are'} not in "
            f"the project (added since the last scan?): {fix}"
        )

    def images(self) -> tuple[torch.Tensor, list[int]]:
        """Decoded images ``[N, Ch, H, W]`` uint8 in image-id order, and their ids.

        Kept in memory while the images table is as it was (ids, segments and hashes): a
        long-lived Project (the server's) decodes again after another process's `label scan`
        added, forgot or took the new content of images."""
        import torch

        rows = self.store.images()
        key = hash((self.fit, tuple((r.id, r.segment, r.sha256) for r in rows)))
        cached = self._decoded
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        parts: list[torch.Tensor] = []
        seg_rows: dict[int, list[ImageRow]] = {}
        for r in rows:
            seg_rows.setdefault(r.segment, []).append(r)
        for seg in sorted(seg_rows):
            try:
                part = imgs.segment_images(
                    self.cache_dir,
                    self.root,
                    self.settings["project_id"],
                    seg,
                    seg_rows[seg],
                    self.image_size,
                    self.channels,
                    missing_fix=self.missing_fix(),
                    fit=self.fit,
                )
            except imgs.ImageChanged as exc:
                raise DataError(f"{exc}: {self.changed_fix()}") from None
            parts.append(part)
        # segments hold consecutive ids (each scan appends), so concatenation is id order
        images = (
            torch.cat(parts)
            if parts
            else torch.empty(0, self.channels, *self.image_size, dtype=torch.uint8)
        )
        ids = [r.id for r in rows]
        self._decoded = (key, images, ids)
        return images, ids

    def check_out_place(self, out: str | os.PathLike[str], *, images: bool = False) -> None:
        """Refuse an ``--out`` that would overwrite a file of the project (its database and
        journal, ``models/``, ``worker.log``, ``serve.lock``: the rename over ``project.sqlite``
        left every later command with 'database disk image is malformed'; a new ``serve.lock``
        would let a second server start), or put an image in the image
        folder (``images``: an imagefolder export; else a file named as an image), which the
        next ``label scan`` would add as a new image, or which replaces one."""
        real = Path(os.path.realpath(out))
        home = Path(os.path.realpath(self.dir))
        own = real.parent == home and (
            real.name.startswith(DB_NAME) or real.name in ("worker.log", "serve.lock")
        )
        if own or real.is_relative_to(home / "models"):
            raise ConfigError(
                f"--out {out} is a file of the project {self.dir} (its database, models, "
                "log or serve lock): writing there would destroy the project; choose a path "
                f"outside {self.dir / 'models'}, not named {DB_NAME}*, worker.log or "
                "serve.lock."
            )
        root = Path(os.path.realpath(self.root))
        if real.is_relative_to(root) and (images or real.suffix.lower() in imgs.EXTENSIONS):
            what = "its copies of the images" if images else "it"
            raise ConfigError(
                f"--out {out} is inside the image folder {self.root}: the next `fishermask label "
                f"scan {self.dir}` would add {what} as new images"
                + ("" if images else " (or it replaces an image)")
                + "; choose a path outside the image folder."
            )

    def missing_fix(self) -> str:
        """What to do about images that went missing since they were scanned."""
        return (
            "restore it, or forget the missing images for good with `fishermask label scan "
            f"{self.dir} --forget-missing` (their labels go with them; `fishermask label scan "
            f"{self.dir}` lists them, and finds an image moved or renamed inside the image "
            "folder by its content, with its label)"
        )

    def changed_fix(self) -> str:
        """What to do about images that changed since they were scanned."""
        return (
            "restore the original file, or take the new content with `fishermask label scan "
            f"{self.dir} --accept-changed` (a changed image's label is cleared, to be labeled "
            f"again); `fishermask label scan {self.dir}` lists every changed image."
        )

    def check_files(
        self, rows: Sequence[ImageRow] | None = None, *, verify: bool = False
    ) -> FileCheck:
        """Check scanned images (all, or ``rows``) against their files.

        A file whose size and modification time are the stored ones is taken as unchanged
        (``verify``: hash every file anyway); otherwise its SHA-256 decides. A file touched
        without a change of content gets its new modification time recorded.
        """
        out = FileCheck()
        touched: list[tuple[int, int]] = []
        root_real = Path(os.path.realpath(self.root))
        for r in self.store.images() if rows is None else rows:
            state = imgs.check_file(
                self.root, r.path, r.sha256, r.bytes, r.mtime_ns, verify=verify, root_real=root_real
            )
            if state == "missing":
                out.missing.append(r)
            elif state == "changed":
                out.changed.append(r)
            elif state == "touched":
                try:
                    touched.append((r.id, (self.root / r.path).stat().st_mtime_ns))
                except OSError:
                    pass
        if touched:
            self.store.set_mtimes(touched)
        return out

    def check_intact(self) -> None:
        """Refuse (:class:`DataError`, one line naming the first images and the fixes) while an
        image of the project is missing or changed since it was scanned: a round decodes every
        image, so it would fail on them. The check of ``label train``, ``label next`` and
        ``POST /api/next`` before a round starts; as cheap as :meth:`check_files` (a stat per
        image, a hash only for a file whose size or modification time changed)."""
        check = self.check_files()
        parts = []
        if check.missing:
            parts.append(
                f"image {self._paths(check.missing)} of this project is missing (moved or "
                f"deleted since it was scanned); {self.missing_fix()}."
            )
        if check.changed:
            parts.append(
                f"image {self._paths(check.changed)} changed since it was scanned (its content "
                f"no longer matches the stored hash): {self.changed_fix()}"
            )
        if parts:
            raise DataError(" ".join(parts))

    def follow_moves(self, missing: Sequence[ImageRow]) -> list[tuple[ImageRow, str]]:
        """Find missing images (``missing``, from :meth:`check_files`) under a new path in the
        image folder: a file not in the project whose SHA-256 is a missing image's is that image
        moved or renamed (its label describes that content), when the match is one to one
        (one missing image and one new file with that content). Each such image takes the new
        path and keeps its id, labels, queue place and decoded pixels (the cache entry is
        keyed by content, not decoded again). Returns ``(row as it was, new path)`` per image moved;
        the rest stay missing (and the new files are added as new images by :meth:`scan`)."""
        if not missing:
            return []
        known = set(self.store.image_ids_by_path())
        files, _ = imgs.candidate_files(self.root, known)
        sizes = {r.bytes for r in missing}
        found: dict[str, list[tuple[str, int]]] = {}  # sha256 -> [(path, mtime_ns)]
        for rel in files:
            if rel in known:
                continue
            try:
                st = (self.root / rel).stat()
                if st.st_size not in sizes:  # only a file of a missing image's size can be one
                    continue
                digest = imgs.file_sha256(self.root / rel)
            except OSError:
                continue  # vanished meanwhile: the scan reports it
            found.setdefault(digest, []).append((rel, st.st_mtime_ns))
        lost: dict[str, list[ImageRow]] = {}
        for r in missing:
            lost.setdefault(r.sha256, []).append(r)
        moves = [
            (rows[0].id, found[digest][0][0], found[digest][0][1])
            for digest, rows in lost.items()
            if len(rows) == 1 and len(found.get(digest, ())) == 1
        ]
        if not moves:
            return []
        root_real = Path(os.path.realpath(self.root))

        def still_missing(r: ImageRow) -> bool:
            state = imgs.check_file(
                self.root, r.path, r.sha256, r.bytes, r.mtime_ns, root_real=root_real
            )
            return state == "missing"

        moved = self.store.move_images(moves, still_missing=still_missing)
        self._decoded = None
        # the segments' cached pixels are keyed by content, not path: nothing to decode again
        return moved

    def accept_changed(
        self, rows: Sequence[ImageRow]
    ) -> tuple[list[tuple[str, str | None]], list[tuple[str, str]]]:
        """Take the new content of changed images: their hash, size and pixel size are
        replaced and their labels cleared (undone, history kept), so they are labeled again.

        Returns ``(path, the class of its cleared label or None)`` per accepted image, and
        ``(path, reason)`` for each whose new content cannot be read (left as it was).
        """
        updates: list[dict[str, Any]] = []
        unreadable: list[tuple[str, str]] = []
        for r in rows:
            try:
                f = imgs.read_one(self.root, r.path, self.image_size, self.channels, self.fit)
            except DataError as exc:
                unreadable.append((r.path, str(exc)))
                continue
            updates.append(
                {
                    "id": r.id,
                    "sha256": f.sha256,
                    "bytes": f.bytes,
                    "width": f.width,
                    "height": f.height,
                    "mtime_ns": f.mtime_ns,
                }
            )
        cleared = self.store.replace_images(updates) if updates else {}
        self._decoded = None
        # the cached pixels of these segments are of the old content (keyed by its hash, so
        # never taken for the new): delete them now rather than when the segment is decoded
        by_seg = {r.id: r.segment for r in rows}
        for seg in sorted({by_seg[u["id"]] for u in updates}):
            imgs.drop_segment_cache(self.cache_dir, self.root, self.settings["project_id"], seg)
        by_id = {r.id: r.path for r in rows}
        accepted = []
        for u in updates:
            kind, cid = cleared.get(u["id"], (None, None))
            accepted.append((by_id[u["id"]], self.classes[cid] if kind == "label" else None))
        return accepted, unreadable

    def forget_missing(self, rows: Sequence[ImageRow]) -> list[dict[str, Any]]:
        """Remove missing images (``rows``, from :meth:`check_files`) from the project for good.

        One transaction (:meth:`Store.forget_images`): each image that is still missing when the
        database is write-locked leaves the images, the queue and the labels (its row and label
        history are kept in ``forgotten_images``). Image ids are not renumbered, so the labels,
        rounds and held-out folds (a hash of the id) of the other images stay as they were.
        After the commit the cached decoded images of each segment that held them are cut down
        to the images left (:meth:`_carry_cache`), or dropped and decoded again on the next
        load (checked against their hashes).

        Refused (:class:`ConfigError`, nothing written) while a round is running and when every
        image of the project is missing. Returns, per image forgotten, ``{"id", "path",
        "segment", "kind", "label"}`` (its action when forgotten; label: its class name).
        """
        from fishermask.label.store import EveryImageForgotten, RoundBusy

        root_real = Path(os.path.realpath(self.root))

        def still_missing(r: ImageRow) -> bool:
            state = imgs.check_file(
                self.root, r.path, r.sha256, r.bytes, r.mtime_ns, root_real=root_real
            )
            return state == "missing"

        try:
            gone = self.store.forget_images([r.id for r in rows], still_missing=still_missing)
        except RoundBusy as busy:
            raise ConfigError(
                f"round {busy.args[0]} is running (a retrain or `label next` decodes and queries "
                "the images by position); nothing was forgotten: run `fishermask label scan "
                f"{self.dir} --forget-missing` again when it has finished."
            ) from None
        except EveryImageForgotten:
            raise ConfigError(
                f"every image of the project ({self.store.num_images()}) is missing: is the "
                f"image folder {self.root} moved, renamed or not mounted? Nothing was forgotten; "
                "restore the folder, or point the project at its new place with `fishermask "
                f"label config {self.dir} --images NEW` (a project cannot lose every image: to "
                "start over, `fishermask label init` a new project)."
            ) from None
        self._decoded = None
        self._carry_cache(rows, gone)
        for g in gone:
            g["label"] = self.classes[g["class_id"]] if g["kind"] == "label" else None
        return gone

    def _carry_cache(self, rows: Sequence[ImageRow], gone: list[dict[str, Any]]) -> None:
        """After images were forgotten: keep the cached decoded images of the others in each
        segment that held them (no decoding), else drop the segment's entries (decoded again,
        hash-checked, on the next load). A segment left without images is dropped."""
        out = {g["id"] for g in gone}
        by_seg: dict[int, list[ImageRow]] = {}
        for r in rows:
            if r.id in out:
                by_seg.setdefault(r.segment, []).append(r)
        left: dict[int, list[ImageRow]] = {}
        for r in self.store.images():
            if r.segment in by_seg:
                left.setdefault(r.segment, []).append(r)
        pid = self.settings["project_id"]
        for seg in sorted(by_seg):
            members = sorted(by_seg[seg] + left.get(seg, []), key=lambda r: r.id)
            keep = [k for k, r in enumerate(members) if r.id not in out]
            try:
                carried = bool(keep) and imgs.carry_segment(
                    self.cache_dir,
                    pid,
                    seg,
                    [r.sha256 for r in members],
                    keep,
                    self.image_size,
                    self.channels,
                    fit=self.fit,
                )
            except OSError:
                carried = False
            if not carried:
                imgs.drop_segment_cache(self.cache_dir, self.root, pid, seg)

    # -- labels -----------------------------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        return self._counts(self.store.label_counts())

    def _counts(self, n: dict[str, Any]) -> dict[str, Any]:
        return {
            "images": self.store.num_images(),
            "labeled": n["labeled"],
            "skipped": n["skipped"],
            "unsure": n["unsure"],
            "per_class": {
                c: n["per_class"].get(i, 0)
                for i, c in enumerate(self.classes)
                if i not in self.removed
            },
            "budget": self.settings.get("budget"),
        }

    def resolve_path(self, ref: str, by_path: dict[str, int]) -> int | None:
        """The image id of a path given relative to the root, or absolute inside it.

        ``\\`` separators, ``./``, repeated ``/`` and ``..`` are normalised (``./cat//1.jpg``
        and ``cat/../cat/1.jpg`` are ``cat/1.jpg``; ``../imgs/cat/1.jpg`` of the folder
        ``imgs`` too); a relative path that leads outside the image folder (``../x.jpg``)
        names no image (:meth:`not_added_why` says why). A name whose accents are composed
        otherwise than the file's (``é`` or ``e`` + accent: Unicode NFC or NFD) names it.
        """
        ref = ref.strip().replace("\\", "/")
        if ref in by_path:
            return by_path[ref]
        p = Path(ref)
        if p.is_absolute():
            try:
                rel = Path(os.path.realpath(p)).relative_to(Path(os.path.realpath(self.root)))
            except ValueError:
                return None
            rel_: str | None = rel.as_posix()
        else:
            rel_ = _normal(ref, self.root)
        if rel_ is None:
            return None
        if rel_ in by_path or rel_.isascii():
            return by_path.get(rel_)
        # the same letters, composed otherwise: 'é' (NFC) in the CSV, 'e' + accent (NFD, as
        # macOS writes file names) in the folder, or the other way round
        return self._composed(by_path).get(unicodedata.normalize("NFC", rel_))

    def _composed(self, by_path: dict[str, int]) -> dict[str, int]:
        """The images of ``by_path`` whose path is not ASCII, by its NFC form (a form two
        paths share names neither), built once per ``by_path``: a CSV row after row."""
        held = self._nfc
        if held is None or held[0] is not by_path or held[1] != len(by_path):
            index: dict[str, int] = {}
            shared: set[str] = set()
            for path, image_id in by_path.items():
                if not path.isascii():
                    key = unicodedata.normalize("NFC", path)
                    if key in index:  # two files of one name in two forms: neither is meant
                        shared.add(key)
                    index[key] = image_id
            held = (by_path, len(by_path), {k: v for k, v in index.items() if k not in shared})
            self._nfc = held
        return held[2]

    def not_an_image(self, ref: str, by_path: dict[str, int]) -> str:
        """The one refusal of a path that names no image of the project (``label add``,
        ``label decide``, ``label history``): ``'x.jpg' is not an image of this project``,
        with why when it is a file of the image folder all the same (:meth:`not_added_why`),
        else where paths are taken from."""
        why, in_folder = self._unknown_why(ref, by_path)
        said = f"{ref!r} is not an image of this project{why}"
        if in_folder:
            return said
        example = min(by_path) if by_path else "cat/0001.jpg"
        return (
            f"{said}; paths are relative to the image folder {self.root} (e.g. {example!r}), "
            "or absolute inside it"
        )

    def _unknown_why(self, ref: str, by_path: dict[str, int]) -> tuple[str, bool]:
        """What follows "'x' is not an image of this project": why, when it is a file of the
        image folder all the same (:meth:`not_added_why`; True), else the image it most likely
        meant (:meth:`meant_path`), if any (False)."""
        why = self.not_added_why(ref)
        if why:
            return why, True
        meant = self.meant_path(ref, by_path)
        return (f" (did you mean {meant!r}?)" if meant else ""), False

    def meant_path(self, ref: str, by_path: dict[str, int]) -> str | None:
        """The image a path that names none most likely meant, or None: a path relative to
        the current folder that leads into the image folder (``photos/cat/1.jpg`` typed in the
        folder above ``photos``, or the image folder's own name first), else the one image
        whose path differs from it only in case (``ship/3.jpg`` for ``Ship/3.jpg``)."""
        ref = ref.strip().replace("\\", "/")
        if not ref or Path(ref).is_absolute():
            return None
        root = Path(os.path.realpath(self.root))
        tries = [Path(os.path.realpath(Path.cwd() / ref))]
        parts = Path(ref).parts
        if len(parts) > 1 and parts[0] == root.name:  # the folder's name, typed elsewhere
            tries.append(root.joinpath(*parts[1:]))
        for full in tries:
            try:
                rel = full.relative_to(root).as_posix()
            except ValueError:
                continue
            if rel in by_path:
                return rel
        norm = _normal(ref)
        if norm is None:
            return None
        same = [p for p in by_path if p.casefold() == norm.casefold()]
        return same[0] if len(same) == 1 else None

    def add_folder_labels(self) -> str:
        """``label add --from-folders``: label every image that has no current action (no
        label, skip or unsure) and lies in a top-level folder named as a current class with
        that class (:func:`folder_labels`); an image someone labeled, skipped or marked unsure
        is left as it is, and those whose label differs from their folder are counted and
        named (the folder or the label is wrong). Returns what was done, in one line."""
        self.reload_classes()
        images = list(self.store.images())
        paths, sha256 = [r.path for r in images], [r.sha256 for r in images]
        rows, _ = folder_labels(paths, self.current_classes, sha256)
        by_path = {r.path: r.id for r in images}
        with self.store.snapshot():  # the labels as of `last`: one given after it is kept
            current = self.store.current()
            last = self.store.last_label_id()
        new = [(p, c) for p, c in rows if by_path[p] not in current]
        written, _ = (
            self.add_label_rows(new, source="import", what="folders", unless_after=last)
            if new
            else (0, 0)
        )
        meanwhile = len(new) - written  # labeled (skipped, ...) on a page since `last`
        agree = differ = aside = 0
        examples: list[str] = []
        for path, cls in rows:
            cur = current.get(by_path[path])
            if cur is None:
                continue
            if cur[1] != "label":
                aside += 1
            elif self.classes[cur[2]] == cls:
                agree += 1
            else:
                differ += 1
                if len(examples) < 3:
                    examples.append(f"{path} is labeled {self.classes[cur[2]]}")
        said = f"labeled {counted(written, 'image')} by their folder ({len(rows)} in class folders"
        said += f"; {agree} already labeled as their folder says" if agree else ""
        said += f"; {aside} skipped or unsure, left so" if aside else ""
        said += f"; {meanwhile} given meanwhile, left as given" if meanwhile else ""
        said += ")"
        if differ:
            said += (
                f"; {differ} labeled otherwise than their folder says, left as labeled (e.g. "
                + "; ".join(examples)
                + "): the folder or the label is wrong"
            )
        open_sets = [  # a set whose every copy has a label, skip or unsure is settled
            g
            for g in folder_conflicts(paths, self.current_classes, sha256)
            if any(by_path[q] not in current for q, _ in g)
        ]
        return said + folder_conflicts_said(open_sets, str(self.dir), self.dir / CONFLICTS_FILE)

    def add_label_rows(
        self,
        rows: Sequence[tuple[str, str]] | Sequence[tuple[str, str, str | None]],
        *,
        source: str,
        what: str,
        unless_after: int | None = None,
        decide: bool = False,
        single: bool = False,
        places: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        tally: dict[str, int] | None = None,
    ) -> tuple[int, int]:
        """Validate every ``(path, class name)`` first, then write them in one transaction; a
        row ``(path, class name, annotator)`` records who gave it (None: the owner).
        ``kinds``: each row's action, ``label`` (the default), ``skip`` or ``unsure`` (its
        class name is then ignored); ``tally``, when given, gets the count written of each.
        ``places``: where each row is, as a bad row's message names it (``line 3`` of a CSV
        file, ``task 41`` of a Label Studio export; default ``row N``, counting from 1).
        ``unless_after``: a label row id; an image with a row after it is left out
        (:meth:`Store.add_labels`), not counted as written. ``decide``: each row is the
        owner's decision (source ``decision``, :mod:`fishermask.label.team`), written also
        when the image has that class already (unless by a decision of it). ``single``: one
        row a command typed (``label decide``), whose errors name no row number.

        Returns (written, already current: the same class given by the same annotator).
        Nothing is written if any row is bad.
        """
        by_path = self.store.image_ids_by_path()
        self.reload_classes()  # `label config` may have added or renamed one since the open
        actions: list[tuple[int, str, int | None]] = []
        errors: list[str] = []
        seen: dict[int, int] = {}
        unknown = False
        by: dict[int, str | None] = {}
        kind_of: dict[int, str] = {}
        for i, (ref, label, *who) in enumerate(rows, start=1):
            where = "" if single else (places[i - 1] if places is not None else f"row {i}") + ": "
            kind = kinds[i - 1] if kinds is not None else "label"
            image_id = self.resolve_path(ref, by_path)
            if image_id is None and single:  # worded as `label history` words it
                errors.append(self.not_an_image(ref, by_path))
                continue
            if image_id is None:
                why, in_folder = self._unknown_why(ref, by_path)
                unknown = unknown or not in_folder
                errors.append(f"{where}{ref!r} is not an image of this project{why}")
                continue
            label = self.composed_class(label)
            if kind == "label" and label not in self.current_classes:
                errors.append(
                    f"{where}label {label!r} is not one of {', '.join(self.current_classes)}"
                    + self.unknown_class_hint(label)
                )
                continue
            cid = self.classes.index(label) if kind == "label" else -1
            if image_id in seen and (seen[image_id], kind_of[image_id]) != (cid, kind):
                errors.append(f"{where}{ref!r} is given two different labels")
                continue
            seen[image_id] = cid
            kind_of[image_id] = kind
            by[image_id] = who[0] if who else None
        if errors:
            hint = ""
            if unknown:
                example = min(by_path) if by_path else "cat/0001.jpg"
                hint = (
                    f" Paths are relative to the image folder {self.root} (e.g. {example!r}) "
                    "or absolute inside it."
                )
            said = listed(errors, 3, sep="; ", more=AND_MORE_APART)
            raise ConfigError(f"{what}: {said}; nothing was written.{hint}")
        with self.store.snapshot():
            current = self.store.current()
            gave = {lid: a for _, a, lid, _, _ in self.store.current_by_annotator()}
            decisions = self.store.decisions()
        same = 0
        for image_id, cid in seen.items():
            cur = current.get(image_id)
            kind = kind_of[image_id]
            # already so: the same class (or set aside so), and no annotator named or the one
            # who gave it (a decision: the same class by a decision)
            if (
                cur is not None
                and cur[1] == kind
                and (kind != "label" or cur[2] == cid)
                and (image_id in decisions if decide else by[image_id] in (None, gave.get(cur[0])))
            ):
                same += 1
                continue
            actions.append((image_id, kind, cid if kind == "label" else None))
        written = (
            self.store.add_labels(
                actions,
                source="decision" if decide else source,
                annotators=[None if decide else by[i] for i, _, _ in actions],
                unless_after=unless_after,
            )
            if actions
            else []
        )
        if tally is not None:
            # every action is written but with unless_after, whose callers give labels only
            done = [k for _, k, _ in actions] if len(written) == len(actions) else []
            done = done or ["label"] * len(written)
            for kind in ("label", *SET_ASIDE):
                tally[kind] = done.count(kind)
        return len(written), same

    def not_added_why(self, ref: str) -> str:
        """Why ``ref``, a path no image of the project has, is a file of the image folder
        all the same (`` (a .heic file, which ...)``), or ``""`` when it is none."""
        ref = ref.strip().replace("\\", "/")
        if not Path(ref).is_absolute():
            rel = _normal(ref, self.root)
            if rel is None:
                return (
                    f" (it leads outside the image folder {self.root}: paths are relative to "
                    "it, and every image lies inside it)"
                )
            ref = rel or ref
        full = Path(ref) if Path(ref).is_absolute() else self.root / ref
        root_real = Path(os.path.realpath(self.root))
        if not imgs.inside(root_real, full):
            return ""
        name = full.name.lower()
        if name.endswith(imgs.NOT_READ):
            return f" ({imgs.not_read(name)})"
        # hidden as a scan sees it: inside the folder ('./red/new.png' and a folder such as
        # ~/.data/images are not; an absolute path is taken relative to the folder)
        parts = (
            Path(os.path.abspath(full)).relative_to(os.path.abspath(self.root)).parts
            if Path(os.path.abspath(full)).is_relative_to(os.path.abspath(self.root))
            else Path(os.path.realpath(full)).relative_to(root_real).parts
        )
        if not name.endswith(imgs.EXTENSIONS) or imgs.is_hidden("/".join(parts)):
            return ""
        return (
            " (a file of the image folder that the project has not added: "
            f"`fishermask label scan {self.dir}` adds it, or says why not)"
        )

    def add_csv_labels(
        self,
        path: str | os.PathLike[str],
        *,
        source: str = "import",
        decide: bool = False,
        tally: dict[str, int] | None = None,
    ) -> tuple[int, int]:
        """:meth:`add_label_rows` of a ``path,label`` CSV file, a bad row named by its line;
        its images set aside too (a ``set_aside`` column, :meth:`read_csv_labels`). ``tally``:
        :meth:`add_label_rows`'s, and ``rows_set_aside``, the rows read that set one aside."""
        lines: list[str] = []
        kinds: list[str] | None = None if decide else []
        rows = self.read_csv_labels(path, places=lines, kinds=kinds, decide=decide)
        if tally is not None:
            tally["rows_set_aside"] = sum(k != "label" for k in kinds or ())
        return self.add_label_rows(
            rows,
            source=source,
            what=str(path),
            decide=decide,
            places=lines,
            kinds=kinds,
            tally=tally,
        )

    def read_csv_labels(
        self,
        path: str | os.PathLike[str],
        places: list[str] | None = None,
        kinds: list[str] | None = None,
        *,
        decide: bool = False,
    ) -> list[tuple[str, str]]:
        """Rows of a ``path,label`` CSV file (header required); ``places``, when given, gets
        each row's line in the file as an editor numbers it (``line 2`` for the first after
        the header; a row with a quoted field over several lines: the line it starts on),
        which every message about a row names.

        A ``set_aside`` column (any after the first two, as ``label export --format csv
        --set-aside`` writes it): a row whose label is empty and whose ``set_aside`` is
        ``skipped`` or ``unsure`` sets its image aside so; ``kinds``, when given, gets each
        row's kind (``label``, ``skip`` or ``unsure``), and such a row's label is ``""``.
        Refused (one line) without ``kinds`` or with ``decide`` (a decision is a label), and for a
        row with both a label and a ``set_aside``. A file without the column reads as
        before: every row a label."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read labels file {path}: {exc}.") from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            # a spreadsheet's "Unicode Text" (UTF-16, with its byte-order mark), or a legacy
            # code page: the codec's "can't decode byte 0xff in position 0" said neither
            what = "UTF-16 text" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else None
            raise ConfigError(
                f"{path} is {what}, not UTF-8; save it as CSV UTF-8 (comma-separated)."
                if what
                else f"{path} is not UTF-8 text (another encoding, or not text); save it as "
                "CSV UTF-8 (comma-separated)."
            ) from None
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["path", "label"]:
            first = text.splitlines()[0].strip().lower() if text.strip() else ""
            for sep, said in ((";", "semicolons (;)"), ("\t", "tabs")):
                if first.replace(" ", "") == f"path{sep}label":  # the header, otherwise separated
                    raise ConfigError(
                        f"{path}: its columns are separated by {said}, not commas; save it as "
                        "CSV with commas (in a spreadsheet: CSV UTF-8, comma-separated), with "
                        "the header `path,label`."
                    )
            raise ConfigError(f"{path}: the first row must be the header `path,label`.")
        names = [h.strip().lower() for h in header]
        aside = names.index(SET_ASIDE_COLUMN) if SET_ASIDE_COLUMN in names[2:] else None
        words = {"skipped": "skip", "skip": "skip", "unsure": "unsure"}
        rows = []
        end = reader.line_num  # the last line read: the row after it starts on the next
        for row in reader:
            start, end = end + 1, reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 2:
                raise ConfigError(f"{path}, line {start}: expected `path,label`, got {row!r}.")
            ref, label = spreadsheet_unsafe(row[0]), spreadsheet_unsafe(row[1].strip())
            state = row[aside].strip() if aside is not None and aside < len(row) else ""
            kind = "label"
            if state:
                where = f"{path}, line {start}"
                if state.lower() not in words:
                    raise ConfigError(
                        f"{where}: {SET_ASIDE_COLUMN} {state!r}: use skipped or unsure, or leave "
                        "it empty on a row with a label."
                    )
                kind = words[state.lower()]
                if label:
                    raise ConfigError(
                        f"{where}: {ref!r} has both a label ({label}) and {SET_ASIDE_COLUMN} "
                        f"({state}); an image is labeled or set aside: empty one of them."
                    )
                if decide:
                    raise ConfigError(
                        f"{where}: {ref!r} is set aside ({KIND_NAMES[kind]}); a decision is a "
                        "label: give the class, or leave the row out."
                    )
                if kinds is None:
                    raise ConfigError(
                        f"{where}: {ref!r} is set aside ({KIND_NAMES[kind]}); this command "
                        "reads labels only: leave the row out."
                    )
            rows.append((ref, label))
            if kinds is not None:
                kinds.append(kind)
            if places is not None:
                places.append(f"line {start}")
        return rows

    # -- rounds -----------------------------------------------------------------------------
    def recover(self) -> list[int]:
        """Mark rounds whose process died as interrupted; returns their ids.

        A finished round whose accuracy estimate's process died (killed, or stopped because
        the next round started) is marked as not estimated; a label check whose process died
        as interrupted (:meth:`Store.recover_checks`).
        """
        self.store.recover_checks()
        out = []
        for r in self.store.rounds():
            live = r["status"] == "running" or r["metrics"].get("estimating")
            if not live or pid_alive(r["pid"], r.get("pid_start")):
                continue
            if r["status"] == "running":
                self.store.mark_interrupted(r["id"])
                out.append(r["id"])
            else:  # unless it finished after the rounds were read (checked in the write)
                self.store.mark_not_estimated(
                    r["id"], "not estimated: the estimate was stopped before it finished"
                )
        if self.store.running_round() is None:  # else its checkpoint may be being written
            for stale in (self.dir / "models").glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        return out

    def needs_restart(self) -> bool:
        """True when the latest round was interrupted (and no round runs now)."""
        rounds = self.store.rounds()
        return bool(rounds) and rounds[-1]["status"] == "interrupted"

    def train_config(self) -> TrainConfig:
        from fishermask.training.config import TrainConfig

        return TrainConfig(
            max_epochs=int(self.settings["max_epochs"]), max_steps=int(self.settings["max_steps"])
        )

    def load_imports(self) -> dict[str, str]:
        """Import the project's ``--import`` entries (of the settings in use: a round's own)
        in this process; ``{path: SHA-256}`` of their files. One line when one is gone."""
        return label_imports.load(self.settings.get("imports"), str(self.dir))

    def new_model(
        self,
        round_id: int,
        purpose: int = 0,
        *,
        model: str | None = None,
        width: float | None = None,
        num_classes: int | None = None,
    ) -> Classifier:
        """A fresh model of the project's (or the given) architecture; ``num_classes``: its
        outputs (default: the project's classes; a checkpoint's own count when loading one
        trained before a class was added)."""
        import torch

        from fishermask.experiments.runner import derive_seed
        from fishermask.models import build_model

        self.load_imports()
        torch.manual_seed(derive_seed(int(self.settings["seed"]), round_id * 8 + purpose, "init"))
        built = build_model(
            model or self.settings["model"],
            len(self.classes) if num_classes is None else num_classes,
            (self.channels, *self.image_size),
            float(self.settings["width"] if width is None else width),
        )
        # a removed class keeps its output (its id stays the index) at probability 0
        return self.mask_removed(built)

    def strategy(self) -> strategies.Strategy:
        from fishermask import strategies

        self.load_imports()
        return strategies.get(self.settings["strategy"], **self.settings["strategy_options"])

    def _fit(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        norm: Normalizer,
        round_id: int,
        purpose: int,
        on_epoch: Callable[[int, int, float], None] | None,
    ) -> tuple[Classifier, torch.nn.Module | None]:
        from fishermask.experiments.runner import generator
        from fishermask.training import make_augmenter, train

        model = self.new_model(round_id, purpose)
        aux = self.strategy().make_auxiliary(model)
        cfg = self.train_config()
        train(
            model,
            x,
            y,
            cfg,
            make_augmenter(cfg, norm, self.channels),
            generator=generator(int(self.settings["seed"]), round_id * 8 + purpose, "train"),
            aux=aux,
            on_epoch=on_epoch,
        )
        return model, aux

    def expected_epochs(self, n: int) -> int:
        cfg = self.train_config()
        per_epoch = max(1, math.ceil(n / cfg.batch_size))
        e = cfg.epoch_limit
        return min(e, math.ceil(cfg.max_steps / per_epoch)) if cfg.max_steps else e

    def _labeled_tensors(
        self, labeled: dict[int, int], id_pos: dict[int, int]
    ) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Labeled image ids (sorted), their positions in the image tensor, their classes."""
        import torch

        ids = sorted(labeled)
        pos = torch.tensor([id_pos[i] for i in ids], dtype=torch.int64)
        y = torch.tensor([labeled[i] for i in ids], dtype=torch.int64)
        return ids, pos, y

    def train_final(
        self,
        x: torch.Tensor,
        norm: Normalizer,
        labeled: dict[int, int],
        id_pos: dict[int, int],
        round_id: int,
        report: Report,
    ) -> tuple[Classifier, torch.nn.Module | None]:
        """The round's model: trained on every label (the one that queries and is saved)."""
        _, pos, y = self._labeled_tensors(labeled, id_pos)
        total = self.expected_epochs(len(y)) + 1

        def on_epoch(epoch: int, limit: int, acc: float) -> None:
            report("training on every label", min(epoch, total - 1), total)

        model, aux = self._fit(x[pos], y, norm, round_id, 0, on_epoch)
        report("querying the next batch", total - 1, total)
        return model, aux

    def estimate_accuracy(
        self,
        x: torch.Tensor,
        norm: Normalizer,
        labeled: dict[int, int],
        id_pos: dict[int, int],
        round_id: int,
        report: Report,
        held_out: list[tuple[int, int, int, float]] | None = None,
    ) -> dict[str, Any]:
        """Held-out accuracy of this round's training recipe (fold 0, or 5-fold CV).

        Each model is trained without the labels it is scored on (``purpose`` 1 + fold keeps
        its seeds apart from the final model's). ``held_out`` (when given) receives each
        held-out prediction as ``(image_id, label, predicted class, its probability)``.
        """
        import torch

        from fishermask.training.trainer import predict

        ids, pos, y = self._labeled_tensors(labeled, id_pos)
        copies = self.store.copies()
        folds = torch.tensor([fold_of(i, copies) for i in ids])
        n = len(ids)
        present = len(set(y.tolist()))
        if n >= int(self.settings["cv_below"]):
            eval_folds, method = [0], "held-out 20 % of the labels"
        elif n >= int(self.settings["min_eval"]) and present >= 2:
            eval_folds, method = list(range(FOLDS)), "5-fold cross-validation"
        else:
            return {
                "accuracy": None,
                "method": f"not estimated: needs {self.settings['min_eval']} labels in at least"
                f" 2 classes (has {n} in {present})",
            }
        e_all = self.expected_epochs(n)
        total = len(eval_folds) * e_all
        done = 0
        correct = seen = 0
        for k, f in enumerate(eval_folds):
            test = folds == f
            if not bool(test.any()) or bool(test.all()):
                done += e_all
                continue
            phase = f"estimating accuracy ({k + 1}/{len(eval_folds)})"
            base = done

            def on_epoch(
                epoch: int, limit: int, acc: float, base: int = base, phase: str = phase
            ) -> None:
                report(phase, base + min(epoch, e_all), total)

            model, _ = self._fit(x[pos[~test]], y[~test], norm, round_id, 1 + k, on_epoch)
            probs, _ = predict(model, x[pos[test]], norm)
            probs = probs.cpu()
            pred = probs.argmax(1)
            conf = probs.gather(1, pred[:, None]).squeeze(1)
            correct += int((pred == y[test]).sum())
            if held_out is not None:
                test_ids = [ids[j] for j in torch.nonzero(test).flatten().tolist()]
                held_out.extend(
                    zip(test_ids, y[test].tolist(), pred.tolist(), conf.tolist(), strict=True)
                )
            seen += int(test.sum())
            done = base + e_all
        if not seen:
            return {"accuracy": None, "method": "not estimated: no fold to hold out"}
        lo, hi = wilson(correct, seen)
        return {"accuracy": correct / seen, "low": lo, "high": hi, "n_eval": seen, "method": method}

    def save_checkpoint(
        self, round_id: int, model: Classifier, aux: torch.nn.Module | None, norm: Normalizer
    ) -> str:
        import torch

        from fishermask.experiments.store import write_atomic

        rel = f"models/round-{round_id:05d}.pt"
        state = {
            "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "aux": {k: v.cpu() for k, v in aux.state_dict().items()} if aux is not None else None,
            "normalizer": {"mean": list(norm.mean), "std": list(norm.std)},
            "classes": list(self.classes),
            "model_name": self.settings["model"],
            "width": self.settings["width"],
            "image_shape": [self.channels, *self.image_size],
            "fit": self.fit,
        }
        write_atomic(self.dir / rel, lambda f: torch.save(state, f))
        return rel

    def load_model(
        self, round_row: dict[str, Any]
    ) -> tuple[Classifier, torch.nn.Module | None, Normalizer]:
        from fishermask.label.predict import read_checkpoint, unreadable_model
        from fishermask.training import Normalizer

        rel = round_row["checkpoint"]
        state = read_checkpoint(self.dir, rel)  # DataError (one line) when it cannot be read
        # the architecture the checkpoint was trained with (``label config`` may have changed
        # the project's model since)
        # a model trained before `label config --add-class` has the outputs of the classes it
        # knew (the first ones: classes keep their ids); the callers give the new ones 0
        model = self.new_model(
            round_row["id"],
            model=state["model_name"],
            width=float(state["width"]),
            num_classes=len(state["classes"]),
        )
        try:
            if len(state["classes"]) > len(self.classes):  # ids are never dropped
                raise RuntimeError("more classes than the project's")
            model.load_state_dict(state["model"])
        except RuntimeError:  # weights of another shape: damaged, or another project's file
            raise DataError(
                unreadable_model(self.dir, rel, "its weights do not fit its architecture")
            ) from None
        aux = self.strategy().make_auxiliary(model)
        if aux is not None:
            if state.get("aux") is None:
                raise ConfigError(
                    f"the latest model ({round_row['checkpoint']}) was trained without the "
                    f"auxiliary module {self.settings['strategy']} needs (the strategy was "
                    f"changed); retrain first: fishermask label train {self.dir}"
                )
            aux.load_state_dict(state["aux"])
        model.eval()
        norm = Normalizer(tuple(state["normalizer"]["mean"]), tuple(state["normalizer"]["std"]))
        return model, aux, norm

    def check_model(self) -> None:
        """Refuse (:class:`DataError`, one line naming the file and ``label train`` as the
        fix) when the latest model's checkpoint cannot be read: asked before a round that
        queries with that model starts (``label next``), so it fails before anything is
        written."""
        from fishermask.label.predict import read_checkpoint

        row = self.store.last_good_round(with_model=True)
        if row is not None:
            read_checkpoint(self.dir, row["checkpoint"])

    def latest_model(
        self,
    ) -> tuple[dict[str, Any], Classifier, torch.nn.Module | None, Normalizer] | None:
        row = self.store.last_good_round(with_model=True)
        if row is None:
            return None
        model, aux, norm = self.load_model(row)
        return row, model, aux, norm

    def run_round(
        self,
        *,
        train_model: bool = True,
        n: int | None = None,
        round_id: int | None = None,
        report: Report = _no_report,
        started_by: str = team.OWNER,
    ) -> dict[str, Any]:
        """Retrain (optional), queue the next batch, then estimate accuracy.

        The batch is committed (round ``done``) right after the query; the held-out estimate
        runs after that and is written into the round's metrics. A new round (no
        ``round_id``) records ``started_by``. Returns the round row.
        """
        import torch

        if round_id is None:
            round_id = self.store.start_round(
                self.settings["strategy"], os.getpid(), started_by=started_by
            )
        # the settings recorded when the round started (``label config`` refuses changes
        # while a round runs, so these are the current ones)
        started = self.store.round(round_id)
        self.settings = (started or {}).get("settings") or self.reload_settings()
        self.reload_classes()  # as they are now (`label config` refuses changes from here on)
        estimate = False
        try:
            if self.settings.get("imports"):  # what this round ran with, traceably
                digests = self.load_imports()
                self.store.add_round_settings(round_id, {"import_sha256": digests})
            report("loading images", 0, 1)
            self.store.progress(round_id, "loading images", 0, 1)
            x, ids = self.images()
            id_pos = {i: p for p, i in enumerate(ids)}
            last_label = self.store.last_label_id()
            current = self.store.current()
            labeled = {i: c for i, (_, k, c) in current.items() if k == "label" and i in id_pos}

            def both(phase: str, done: int, total: int) -> None:
                report(phase, done, total)
                self.store.progress(round_id, phase, done, total)

            model = aux = None
            metrics: dict[str, Any] = {}
            checkpoint = None
            norm = fit_normalizer(x)
            trainable = len(labeled) >= 2 and len(set(labeled.values())) >= 2
            if train_model and trainable:
                model, aux = self.train_final(x, norm, labeled, id_pos, round_id, both)
                checkpoint = self.save_checkpoint(round_id, model, aux, norm)
                per_class = torch.bincount(
                    torch.tensor(list(labeled.values()), dtype=torch.int64),
                    minlength=len(self.classes),
                ).tolist()
                metrics = {
                    "n_labels": len(labeled),
                    "per_class": per_class,
                    "accuracy": None,
                    "method": "being estimated",
                    "estimating": True,
                }
                estimate = True
            elif (latest := self.latest_model()) is not None:
                prev, model, aux, norm = latest
                checkpoint = prev["checkpoint"]
            both("querying the next batch", 0, 1)
            t = time.perf_counter()
            queue, mode, info = self.choose(x, ids, model, aux, norm, labeled, current, n, round_id)
            if info:
                metrics["query"] = info | {"seconds": round(time.perf_counter() - t, 3)}
            self.store.finish_round(
                round_id,
                status="done",
                mode=mode,
                n_labels=len(labeled),
                last_label_id=last_label,
                checkpoint=checkpoint,
                metrics=metrics,
                queue=queue,
            )
        except BaseException as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if isinstance(exc, KeyboardInterrupt):  # the page said 'interrupted: KeyboardInterrupt'
                msg = (
                    "stopped with Ctrl-C; every label is kept: the next `label serve` restarts "
                    "this retrain ('next batch' or `label train` start a new one)"
                )
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            self.store.finish_round(round_id, status=status, message=msg)
            raise
        if estimate:  # the batch is ready; the estimate follows
            metrics.pop("estimating")
            held_out: list[tuple[int, int, int, float]] = []
            try:
                found = self.estimate_accuracy(
                    x, norm, labeled, id_pos, round_id, both, held_out=held_out
                )
            except BaseException as exc:
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if isinstance(exc, KeyboardInterrupt):  # as a worker stopped meanwhile says
                    msg = "the estimate was stopped before it finished"
                found = {"accuracy": None, "method": f"not estimated: {msg}"}
                self.store.set_metrics(round_id, metrics | found, phase="done")
                raise
            self.store.set_estimate(round_id, metrics | found, held_out, phase="done")
        row = self.store.round(round_id)
        assert row is not None
        return row

    def choose(
        self,
        x: torch.Tensor,
        ids: list[int],
        model: Classifier | None,
        aux: torch.nn.Module | None,
        norm: Normalizer,
        labeled: dict[int, int],
        current: dict[int, tuple[int, str, int | None]],
        n: int | None,
        round_id: int,
    ) -> tuple[list[tuple[int, float | None, list[dict[str, Any]]]], str, dict[str, Any]]:
        """The next batch: ``(queue rows, mode, query info)``; the info is empty at cold start."""
        import torch
        import torch.nn.functional as F

        from fishermask.experiments.runner import generator
        from fishermask.query_api import query
        from fishermask.strategies.kcenter import k_center_greedy
        from fishermask.training.trainer import predict

        id_pos = {i: p for p, i in enumerate(ids)}
        # an image with the bytes of one seen before (or of one with a lower id) is never
        # queued: labeling it again would spend the budget on nothing new
        copies = self.store.copies()
        seen = {copies.get(i, i) for i in current}
        cand = torch.tensor(
            [p for p, i in enumerate(ids) if i not in copies and i not in seen], dtype=torch.int64
        )
        lab_ids = sorted(labeled)
        lab_pos = torch.tensor([id_pos[i] for i in lab_ids], dtype=torch.int64)
        lab_y = torch.tensor([labeled[i] for i in lab_ids], dtype=torch.int64)
        budget = min(n or int(self.settings["batch"]), len(cand))
        if budget == 0:
            left = "every image has been seen: nothing left to label"
            if copies:
                are = "is" if len(copies) == 1 else "are"
                left += (
                    f" ({counted(len(copies), 'copy', 'copies')} of other images {are} never shown)"
                )
            return [], left, {}
        counts = torch.bincount(lab_y, minlength=len(self.classes)).tolist()
        need = int(self.settings["min_per_class"])
        lacking = [
            f"{c}: {k}"
            for i, (c, k) in enumerate(zip(self.classes, counts, strict=True))
            if k < need and i not in self.removed
        ]
        gen = generator(int(self.settings["seed"]), round_id, "query")
        info: dict[str, Any] = {}
        # a model trained before `label config --add-class`: its uncertainty is over the
        # classes it knew, and the strategies' labels may name one it has no output for
        unknown = (
            [
                c
                for i, c in enumerate(self.classes)
                if i >= model.num_classes and i not in self.removed
            ]
            if model is not None
            else []
        )
        if lacking or model is None or unknown:
            if model is not None:
                _, feats = predict(model, x, norm, embeddings=True)
                assert feats is not None
                on = "as the model sees them"  # k-center on the model's features
            else:
                feats = F.adaptive_avg_pool2d(x.to(torch.float32) / 255.0, 8).flatten(1)
                on = "by how they look (no model yet)"  # k-center on downsampled pixels
            pick, dist = k_center_greedy(feats[cand], feats[lab_pos], budget, generator=gen)
            chosen, scores = cand[pick], dist
            why = (
                # the mode stays on the page while this batch is labeled: say when it counted
                f"until every class has {need} label{'' if need == 1 else 's'} (when this "
                "batch was chosen: "
                f"{', '.join(lacking)})"
                if lacking
                # every class has enough labels (given with `init --labels` or `label add`):
                # the next round trains the model this batch lacked
                else "until a model is trained (`fishermask label train` or 'next batch' trains "
                "one on the labels given)"
                if model is None
                else f"until a model is trained with {', '.join(unknown)} (added after the "
                "latest model was trained: `fishermask label train` or 'next batch' trains one)"
            )
            # in plain words (the page's mode line): "cold start", "k-center" and
            # "downsampled pixels" told a labeler nothing
            mode = f"a varied mix of images, picked {on}, {why}"
        else:
            cap = int(self.settings.get("query_pool", QUERY_POOL))
            scored = cand
            if cap and len(cand) > max(cap, budget):
                draw = generator(int(self.settings["seed"]), round_id, "candidates")
                keep = torch.randperm(len(cand), generator=draw)[: max(cap, budget)]
                scored = cand[keep.sort().values]
            res = query(
                model,
                x,
                labeled=lab_pos,
                labels=lab_y,
                budget=budget,
                strategy=self.settings["strategy"],
                candidates=scored,
                normalizer=norm,
                seed=gen,
                aux=aux,
                **self.settings["strategy_options"],
            )
            chosen, scores = res.indices, res.scores
            name = self.settings["strategy"]
            mode = f"chosen by the model trained on {counted(len(lab_ids), 'label')}"
            if name in IN_PLAIN_WORDS:  # what the batch is, for someone who never read a paper
                mode += f": {IN_PLAIN_WORDS[name]}"
            mode += f" (method: {name})"
            if len(scored) < len(cand):
                mode += (
                    f", from {len(scored)} images drawn at random of the {len(cand)} not yet shown"
                )
            info = {"query_pool": cap, "scored": len(scored), "unseen": len(cand)}
        guesses: list[list[dict[str, Any]]] = [[] for _ in range(len(chosen))]
        if model is not None:
            guesses = self._top_guesses(model, x[chosen], norm)
        queue = [
            (
                ids[int(p)],
                None if scores is None or not math.isfinite(float(scores[k])) else float(scores[k]),
                guesses[k],
            )
            for k, p in enumerate(chosen.tolist())
        ]
        return queue, mode, info

    def batches_after_add(self, added: Sequence[str]) -> str:
        """What the next batches will be once classes ``added`` were added (``label config
        --add-class``), by the rule :meth:`choose` follows, in one line: a varied mix (cold
        start) until every class has ``min_per_class`` labels, naming the classes short of
        them, and whether batches were so already or go back to it; or that no batch is left
        to choose, every image having been seen. Read without the images or a model."""
        need = int(self.settings["min_per_class"])
        with self.store.snapshot():
            current = self.store.current()
            copies = self.store.copies()
            ids = list(self.store.image_ids_by_path().values())
        self.reload_classes()
        seen = {copies.get(i, i) for i in current}
        if not any(i not in copies and i not in seen for i in ids):
            return (
                "every image has been seen, so no batch is left to choose: give "
                f"{', '.join(added)} labels with `label add` (a path,label CSV) or by relabeling "
                "images on the Labeled view."
            )
        counts = Counter(c for _, kind, c in current.values() if kind == "label")
        short = [(c, counts[i]) for i, c in enumerate(self.classes) if i not in self.removed]
        short = [(c, n) for c, n in short if n < need]
        before = [c for c, _ in short if c not in added]
        return (
            f"from the next batch on, batches {'stay' if before else 'go back to'} a varied mix "
            f"of images (cold start) until every class has {counted(need, 'label')} (short now: "
            + listed(short, 6, show=lambda cn: f"{cn[0]} {cn[1]}")
            + ") and a model is trained with them; `label add` gives labels you already know, "
            "--min-per-class lowers the bar."
        )

    def _top_guesses(
        self, model: Classifier, x: torch.Tensor, norm: Normalizer
    ) -> list[list[dict[str, Any]]]:
        """The model's top 3 classes with their probabilities, per image of ``x``."""
        from fishermask.training.trainer import predict

        probs, _ = predict(model, x, norm)
        # [N, C'] where C' < C for a model trained before classes were added: those are
        # never guessed (their probability is 0); a removed class (probability 0 too, see
        # mask_removed) is never named
        top = probs.cpu().topk(min(3 + len(self.removed), probs.shape[1]), dim=1)
        return [
            [
                {"label": self.classes[int(c)], "prob": round(float(p), 4)}
                for p, c in zip(pv, cv, strict=True)
                if int(c) not in self.removed
            ][:3]
            for pv, cv in zip(top.values, top.indices, strict=True)
        ]

    def guesses(self, image_ids: Sequence[int]) -> tuple[dict[int, list[dict[str, Any]]], str]:
        """The latest model's top guesses for these images, and why there are none when there
        are none ("" when there are): no model yet, or the images cannot be loaded (one went
        missing or changed since the scan; ``label scan`` says which). A model whose checkpoint
        cannot be read is refused (:class:`DataError`, the one line of
        :func:`~fishermask.label.predict.read_checkpoint`): its fix is a new model, not a list
        without guesses."""
        import torch

        if not image_ids:
            return {}, ""
        latest = self.latest_model()
        if latest is None:
            return {}, "no model yet (the first `label train` or 'next batch' trains one)"
        _, model, _, norm = latest
        try:
            x, ids = self.images()
        except DataError as exc:
            return {}, f"the images cannot be loaded: {exc}"
        id_pos = {i: p for p, i in enumerate(ids)}
        known = [i for i in image_ids if i in id_pos]
        if not known:
            return {}, ""
        sel = torch.tensor([id_pos[i] for i in known], dtype=torch.int64)
        return dict(zip(known, self._top_guesses(model, x[sel], norm), strict=True)), ""

    def set_aside(self, kinds: Sequence[str] = SET_ASIDE) -> list[dict[str, Any]]:
        """The images currently skipped or unsure (``kinds``: ``skip``, ``unsure``), oldest
        first: ``{"image_id", "path", "label_id", "kind", "created"}`` each. The state of an
        image is its current action (:meth:`Store.current`): an image skipped, then labeled, is
        labeled; an unsure that was undone is no longer unsure."""
        return self.store.set_aside(kinds)

    def revisit(
        self,
        kinds: Sequence[str] = SET_ASIDE,
        n: int | None = None,
        *,
        started_by: str = team.OWNER,
        require_batch_done: bool = False,
    ) -> tuple[int | None, list[dict[str, Any]]]:
        """Queue the images currently skipped or unsure (the ``n`` oldest, default all) as the
        batch, with the latest model's guesses; the batch queued before is replaced (its
        unlabeled images are unseen again, so the strategy may choose them later).

        Their earlier skip/unsure stays in the history; a label given now is the newest action,
        so it wins. The strategy's queries are unchanged: the next "next batch" chooses among
        the unseen images as usual (images still skipped or unsure are not among them).
        Refused (:class:`RoundBusy`) while a round is running, and with ``require_batch_done``
        (an annotator asks) while the batch has images nobody has acted on
        (:class:`~fishermask.label.store.BatchNotDone`). The revisit round records
        ``started_by``. Returns ``(round id, the items queued)``; ``(None, [])`` when there is
        nothing to revisit (the batch is left as it is).
        """
        items = self.set_aside(kinds)[:n] if n is not None else self.set_aside(kinds)
        if not items:
            return None, []
        guesses, _ = self.guesses([it["image_id"] for it in items])
        names = " or ".join(KIND_NAMES[k] for k in SET_ASIDE if k in kinds)
        mode = (
            f"a second look at the images marked {names}, oldest first (the next batch is "
            "picked as usual)"
        )
        round_id, queued = self.store.queue_set_aside(
            [it["label_id"] for it in items],
            guesses,
            mode=mode,
            started_by=started_by,
            require_batch_done=require_batch_done,
        )
        keep = set(queued)
        return round_id, [it for it in items if it["image_id"] in keep]

    # -- status -----------------------------------------------------------------------------
    def accuracy_history(self, rounds: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The held-out accuracy of every round that trained a model, oldest first: whether
        more labels still pay. ``{"round", "finished" (epoch seconds), "labels" (the labels it
        trained on), "accuracy", "low", "high" (95 % Wilson interval), "held_out" (labels
        scored), "method"}``; ``accuracy`` None with the reason in ``method`` where there is
        no estimate (too few labels, stopped, being estimated). ``rounds``: the store's, when
        already read."""
        out = []
        for r in self.store.rounds() if rounds is None else rounds:
            m = r["metrics"]
            if r["status"] != "done" or "n_labels" not in m:  # no model trained in it
                continue
            out.append(
                {
                    "round": r["id"],
                    "finished": r["finished"],
                    "labels": m["n_labels"],
                    "accuracy": m.get("accuracy"),
                    "low": m.get("low"),
                    "high": m.get("high"),
                    "held_out": m.get("n_eval"),
                    "method": m.get("method", ""),
                }
            )
        return out

    def status(self) -> dict[str, Any]:
        self.reload_settings()
        rounds = self.store.rounds()
        latest = rounds[-1] if rounds else None
        acc = next(
            (r["metrics"] for r in reversed(rounds) if r["metrics"].get("accuracy") is not None),
            None,
        )
        if acc is None:  # no estimate yet: the latest round's reason (too few labels, stopped)
            acc = next((r["metrics"] for r in reversed(rounds) if "method" in r["metrics"]), None)
        if acc is not None and isinstance(acc.get("per_class"), list):
            # the labels per class the model was trained on: ``per_class`` is a list in class
            # order (kept as it was for readers of it); named here, a class added later is 0
            counts = acc["per_class"]
            acc = acc | {
                "per_class_by_name": {
                    c: counts[i] if i < len(counts) else 0
                    for i, c in enumerate(self.classes)
                    if i not in self.removed
                }
            }
        queue_round = next((r for r in reversed(rounds) if r["status"] == "done"), None)
        n = self.store.label_counts()  # kept by the store until a label changes
        return {
            **self._counts(n),
            "annotators": n["annotators"],
            "disagreements": n["disagreements"],
            "decided": n["decided"],
            "classes": self.current_classes,
            "round": None
            if latest is None
            else {
                k: latest[k]
                for k in ("id", "status", "phase", "done", "total", "message", "mode", "started_by")
            }
            | {"query": latest["metrics"].get("query")},
            "training": bool(latest and latest["status"] == "running"),
            "estimating": next(
                (r["id"] for r in reversed(rounds) if r["metrics"].get("estimating")), None
            ),
            "accuracy": acc,
            # the estimated rounds' accuracy by labels (the page's chart of it)
            "history": [
                {k: h[k] for k in ("round", "labels", "accuracy", "low", "high", "method")}
                for h in self.accuracy_history(rounds)
                if h["accuracy"] is not None
            ],
            "mode": queue_round["mode"] if queue_round else "",
            "queue_round": queue_round["id"] if queue_round else None,
            "queue_started_by": queue_round["started_by"] if queue_round else None,
            "batch_left": self.store.batch_left(),
            "strategy": self.settings["strategy"],
        }

    def copy_rows(self) -> list[dict[str, Any]]:
        """The images whose file is a byte-for-byte copy of an earlier one: ``{"path",
        "copy_of", "label", "copy_of_label"}`` each (labels as class names, None when
        unlabeled), by path."""
        copies = self.store.copies()
        if not copies:
            return []
        paths = {r.id: r.path for r in self.store.images()}
        labels = self.store.current_labels()
        classes = self.reload_classes()  # after the labels: it names every class they hold

        def name(i: int) -> str | None:
            return classes[labels[i]] if i in labels else None

        rows = [
            {"path": paths[i], "copy_of": paths[f], "label": name(i), "copy_of_label": name(f)}
            for i, f in copies.items()
        ]
        return sorted(rows, key=lambda r: r["path"])

    def copies_note(self) -> str | None:
        """One line on the images that are copies of others (or None without any): what the
        tool does with them and how to list them."""
        rows = self.copy_rows()
        if not rows:
            return None
        eg = rows[0]
        return (
            f"{counted(len(rows), 'image file')} "
            + ("is a byte-for-byte copy" if len(rows) == 1 else "are byte-for-byte copies")
            + f" of others (e.g. {eg['path']} "
            f"= {eg['copy_of']}): a batch never shows a copy of an image already seen or "
            "chosen, and the held-out accuracy keeps copies on the same side; `fishermask "
            f"label status {self.dir} --list copies` lists them"
        )

    def disagreements(self) -> list[dict[str, Any]]:
        """The images whose annotators' own current labels differ, by path:
        ``{"image_id", "path", "current", "status" (open, decided), "labels": {annotator:
        class}}`` each (see :mod:`fishermask.label.team`). An annotator's own label of a
        class removed since (``label config --remove-class``; the image relabeled by someone
        else) is named ``NAME (removed)``."""
        paths = {r.id: r.path for r in self.store.images()}
        # the classes read after the labels: a server's may be older than a class added
        with self.store.snapshot():
            rows, current = self.store.disagreement_sides(), self.store.current()
            decisions = self.store.decisions()
        names = self.class_names()
        return team.disagreement_rows(rows, paths, current, names, decisions)

    def label_history(self, image_id: int) -> list[dict[str, Any]]:
        """Every action on image ``image_id`` but the undo rows, oldest first (each annotator's
        labels with their ids: what an undo of someone else's label needs, which ``GET
        /api/labeled`` gives for the image's current label only): ``{"label_id", "kind",
        "label"`` (the class, ``NAME (removed)`` for a class removed since; None for a skip or
        unsure), ``"by", "source", "created", "undone"`` (whether an undo row cancels it),
        ``"undone_by"`` (who undid it, or None), ``"current"`` (it is the image's current
        action)}``, read in one state of the database."""
        with self.store.snapshot():
            rows = self.store.history(image_id)
            cur = self.store.current().get(image_id)
        names = self.class_names()
        undone = {r.undoes: r.annotator for r in rows if r.kind == "undo"}
        return [
            {
                "label_id": r.id,
                "kind": r.kind,
                "label": names[r.class_id] if r.class_id is not None else None,
                "by": team.name_of(r.annotator),
                "source": r.source,
                "created": r.created,
                "undone": r.id in undone,
                "undone_by": team.name_of(undone[r.id]) if r.id in undone else None,
                "current": cur is not None and cur[0] == r.id,
            }
            for r in rows
            if r.kind != "undo"
        ]

    def batch(self) -> list[dict[str, Any]]:
        """The current queue, each item with its state in this batch: its current action
        (label/skip/unsure, ``by`` the annotator who gave it, ``owner`` for the owner) when
        that was given after the batch was queued, else None (to do).

        ``earlier``: the current action given before the batch was queued (a skipped or
        unsure image queued again by :meth:`revisit`), else None. A batch the strategy chose
        holds only images without an action when it was chosen, so for it the state is simply
        the current action.
        """
        current = self.store.queue_current()
        queue = self.store.queue()
        classes = self.reload_classes()  # after the labels: every class they name is in it
        renamed = {
            old: classes[i]
            for old, i in self.store.former_class_names().items()
            if i < len(classes)
        }
        gone = {classes[i] for i in self.removed}
        out = []
        for q in queue:
            cur = current.get(q["image_id"])
            state = earlier = None
            if cur is not None:
                action = {
                    "label_id": cur[0],
                    "kind": cur[1],
                    "label": self.classes[cur[2]] if cur[2] is not None else None,
                    "by": team.name_of(cur[3]),
                }
                if cur[0] > q["since"]:
                    state = action
                else:
                    earlier = action
            out.append(
                {
                    "image_id": q["image_id"],
                    "path": q["path"],
                    "width": q["width"],  # the file's, as scanned: the page shows a copy
                    "height": q["height"],
                    "rank": q["position"] + 1,
                    "score": q["score"],
                    # stored with the names of when the batch was chosen: a class renamed
                    # since is given its name now (confirming the guess labels that class)
                    # a class removed since is left out
                    "guesses": [
                        g | {"label": renamed.get(g["label"], g["label"])}
                        for g in q["guesses"]
                        if renamed.get(g["label"], g["label"]) not in gone
                    ],
                    "state": state,
                    "earlier": earlier,
                }
            )
        return out

    # -- export / import --------------------------------------------------------------------
    def labeled_rows(
        self,
        *,
        missing_ok: bool = True,
        current: dict[int, tuple[int, str, int | None]] | None = None,
    ) -> list[tuple[int, str, str]]:
        """``(image id, path, class name)`` of every labeled image, sorted by path;
        ``current``: the images' current actions as read by the caller (default: read here).

        Refused (:class:`DataError`) when a labeled image changed since it was scanned (its
        label describes the old content), or, without ``missing_ok``, when one is missing.
        """
        if current is None:
            current = self.store.current()
        labels = {i: c for i, (_, k, c) in current.items() if k == "label" and c is not None}
        images = [r for r in self.store.images() if r.id in labels]
        check = self.check_files(images)
        if check.changed:
            raise self._changed_export_error([r.path for r in check.changed])
        if check.missing and not missing_ok:
            raise DataError(
                f"labeled image {self._paths(check.missing)} is missing "
                "(moved or deleted since it was scanned); this export copies every labeled "
                f"image (the csv export lists the labels without the files): {self.missing_fix()}."
            )
        classes = self.reload_classes()  # after the labels (a server's project is long-lived)
        rows = [(r.id, r.path, classes[labels[r.id]]) for r in images]
        return sorted(rows, key=lambda t: t[1])

    def _paths(self, images: Sequence[Any]) -> str:
        """The first of ``images`` (paths or records with a ``path``) in the image folder, then
        how many more: ``/data/imgs/cat/1.jpg (and 2 more)``."""
        return listed(
            images,
            1,
            show=lambda i: self.root / (i if isinstance(i, str) else i.path),
            more=AND_MORE_APART,
        )

    def _changed_export_error(self, paths: Sequence[str]) -> DataError:
        """The refusal to export labeled images whose content changed since the scan."""
        return DataError(
            f"labeled image {self._paths(paths)} changed since it was "
            "scanned (its label describes the old content); nothing was exported: "
            f"{self.changed_fix()}"
        )

    def csv_rows(self, *, annotators: bool = False, set_aside: bool = False) -> list[list[str]]:
        """``[path, label]`` of every labeled image, sorted by path; with ``annotators`` a
        third item, who gave the image's current label (``owner``: the owner's token or a
        command), and a fourth, ``decided`` when that label is the owner's decision of a
        disagreement (:mod:`fishermask.label.team`; else empty), read with the labels in one
        state of the database (an action given between two reads would be credited with the
        label read before it). ``set_aside``: the images skipped or unsure too, each with an
        empty label (and who set it aside), and a last item on every row: ``skipped``,
        ``unsure``, or empty on a label (:data:`SET_ASIDE_COLUMN`)."""
        if not annotators and not set_aside:
            return [[path, label] for _, path, label in self.labeled_rows()]
        with self.store.snapshot():
            current = self.store.current()
            who = {lid: a for _, a, lid, _, _ in self.store.current_by_annotator()}
            decisions = self.store.decisions()
        rows: list[tuple[int, str, str]] = self.labeled_rows(current=current)
        if set_aside:
            aside = {i for i, (_, kind, _) in current.items() if kind in SET_ASIDE}
            rows += [(r.id, r.path, "") for r in self.store.images() if r.id in aside]
            rows.sort(key=lambda t: t[1])
        out = []
        for image_id, path, label in rows:
            row = [path, label]
            if annotators:
                decided = "decided" if label and image_id in decisions else ""
                row += [team.name_of(who.get(current[image_id][0])), decided]
            if set_aside:
                kind = current[image_id][1]
                row.append(KIND_NAMES[kind] if kind in SET_ASIDE else "")
            out.append(row)
        return out

    def export_csv_text(self, *, annotators: bool = False, set_aside: bool = False) -> str:
        """The csv export (:meth:`csv_rows` under the header
        ``path,label[,annotator,decided][,set_aside]``)."""
        rows = self.csv_rows(annotators=annotators, set_aside=set_aside)
        return self._csv_text(rows, annotators=annotators, set_aside=set_aside)

    @staticmethod
    def _csv_text(rows: list[list[str]], *, annotators: bool, set_aside: bool = False) -> str:
        buf = io.StringIO()
        w = SpreadsheetCsv(buf)
        w.writerow(
            ["path", "label"]
            + ["annotator", "decided"] * annotators
            + [SET_ASIDE_COLUMN] * set_aside
        )
        w.writerows(rows)
        return buf.getvalue()

    def export(
        self,
        fmt: str,
        out: str | os.PathLike[str],
        *,
        image_url_prefix: str = "/data/local-files/?d=",
        annotators: bool = False,
        set_aside: bool = False,
        tally: dict[str, int] | None = None,
    ) -> int:
        """Write the labels as csv, imagefolder, labelstudio or npz; returns the item count.
        ``annotators`` (csv only): a column naming who gave each label; ``set_aside`` (csv
        only): the images skipped or unsure too (:meth:`csv_rows`), counted in ``tally``
        (``label``, ``skip``, ``unsure``) when given."""
        from fishermask.experiments.store import write_atomic

        out = Path(out)
        formats = ("csv", "imagefolder", "labelstudio", "npz")
        if fmt not in formats:
            raise ConfigError(f"Unknown export format {fmt!r}; supported: {', '.join(formats)}.")
        if annotators and fmt != "csv":
            raise ConfigError(
                f"--annotators adds a column to the csv export; --format {fmt} has none: use "
                "--format csv --annotators."
            )
        if set_aside and fmt != "csv":
            raise ConfigError(
                f"--set-aside adds the images skipped or unsure to the csv export; --format {fmt} "
                "holds labels only: use --format csv --set-aside."
            )
        stdout = str(out) == "-"  # the text formats go to standard output
        if stdout and fmt not in ("csv", "labelstudio"):
            raise ConfigError(
                f"--out -: standard output takes the text formats (csv, labelstudio); the {fmt} "
                "export is a "
                + ("folder" if fmt == "imagefolder" else "binary file")
                + ": give a path."
            )

        def write(data: bytes) -> None:
            if stdout:
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
            else:
                write_atomic(out, lambda f: f.write(data))

        if not stdout:
            self.check_out_place(out, images=fmt == "imagefolder")
            if fmt == "imagefolder":
                check_export_folder(out, "imagefolder")
                _check_out_parent(out)
            else:
                check_out_file(out)
        if fmt == "csv":
            found = self.csv_rows(annotators=annotators, set_aside=set_aside)
            if tally is not None:
                states = Counter(r[-1] if set_aside else "" for r in found)
                tally |= {
                    "label": states[""],
                    "skip": states["skipped"],
                    "unsure": states["unsure"],
                }
            text = self._csv_text(found, annotators=annotators, set_aside=set_aside)
            write(text.encode())
            return len(found)
        rows = self.labeled_rows(missing_ok=fmt != "imagefolder")
        if fmt == "labelstudio":
            tasks = self.labelstudio_tasks(image_url_prefix)
            write(json.dumps(tasks, indent=1).encode() + (b"\n" if stdout else b""))
            return len(tasks)
        if fmt == "npz":
            x, ids = self.images()
            id_pos = {i: p for p, i in enumerate(ids)}
            if any(i not in id_pos for i, _, _ in rows):
                # another process changed the images since they were decoded (a scan that
                # added some, since labeled) or since the rows were read (a forget-missing):
                # both read again, once
                self._decoded = None
                x, ids = self.images()
                id_pos = {i: p for p, i in enumerate(ids)}
                rows = self.labeled_rows(missing_ok=True)
            gone = [p for i, p, _ in rows if i not in id_pos]
            if gone:
                raise DataError(
                    f"{counted(len(gone), 'labeled image')}, e.g. {gone[0]}, changed in the "
                    "project while this export ran (another `fishermask label scan`); nothing was "
                    "written: run the export again."
                )
            sel = [id_pos[i] for i, _, _ in rows]
            arrays = {
                "x": x[sel].numpy() if sel else x[:0].numpy(),
                # the current classes only (a removed one has no label): y indexes them
                "y": np.array([self.current_classes.index(c) for _, _, c in rows], dtype=np.int64),
                "paths": np.array([p for _, p, _ in rows], dtype=str),
                "classes": np.array(self.current_classes, dtype=str),
            }
            write_atomic(out, lambda f: np.savez(f, **arrays))
            return len(rows)
        # imagefolder: built beside the target, then renamed into place
        with new_folder(out, replaces="imagefolder") as tmp:
            for c in self.current_classes:  # a removed class has no folder
                try:
                    (tmp / c).mkdir()
                except FileExistsError:  # a file system that ignores case: 'cat' is 'Cat'
                    other = next(
                        x for x in self.current_classes if x != c and x.casefold() == c.casefold()
                    )
                    raise ConfigError(
                        f"classes {other!r} and {c!r} would share one folder in {out.parent}, "
                        "whose file system does not tell upper from lower case; nothing was "
                        "exported: export to a case-sensitive file system, or rename one "
                        f"(`fishermask label config {self.dir} --rename-class {c}=NEW`)."
                    ) from None
            used: set[tuple[str, str]] = set()
            stored = {r.id: r.sha256 for r in self.store.images()}
            for image_id, path, label in rows:
                name = path.replace("/", "__")
                if (label, name) in used:  # e.g. a/b__c.jpg and a__b/c.jpg
                    stem, dot, ext = name.rpartition(".")
                    name = f"{stem}-{image_id}{dot}{ext}" if dot else f"{name}-{image_id}"
                used.add((label, name))
                data = (self.root / path).read_bytes()
                if hashlib.sha256(data).hexdigest() != stored[image_id]:
                    raise self._changed_export_error([path])
                (tmp / label / name).write_bytes(data)
                shutil.copystat(self.root / path, tmp / label / name)
            mark = {
                "format": "imagefolder",
                "project": str(self.dir.resolve()),
                "project_id": self.settings.get("project_id"),
                "labels": len(rows),
                "exported": utc_iso(),
                # what it wrote: a later export replaces these and nothing else
                "folders": list(self.current_classes),
                "files": sorted(f"{label}/{name}" for label, name in used),
            }
            (tmp / EXPORT_MARK).write_text(json.dumps(mark, indent=1) + "\n", "utf-8")
        return len(rows)

    def labelstudio_tasks(
        self, image_url_prefix: str = "/data/local-files/?d="
    ) -> list[dict[str, Any]]:
        """Label Studio tasks: every image, its label as an annotation, the model's guess as a
        prediction with its probability as ``score`` (Label Studio can sort tasks by it)."""
        from urllib.parse import quote

        latest = self.latest_model()
        probs = None
        version = ""
        ids: list[int] = []
        if latest is not None:  # the images are decoded (and torch loaded) only to predict
            from fishermask.training.trainer import predict

            x, ids = self.images()
            row, model, _, norm = latest
            probs, _ = predict(model, x, norm)
            probs = probs.cpu()
            version = f"fishermask round {row['id']} ({row['n_labels']} labels)"
        with self.store.snapshot():  # who gave each label, read with the labels
            current = self.store.current()
            who = {lid: a for _, a, lid, _, _ in self.store.current_by_annotator()}
            history = {r.id: r for r in self.store.history()}
            self.reload_classes()  # with the labels
        id_pos = {i: p for p, i in enumerate(ids)}
        tasks = []
        for r in self.store.images():
            p = id_pos.get(r.id)  # None: added since the images were loaded
            task: dict[str, Any] = {
                "id": r.id,
                "data": {"image": image_url_prefix + quote(r.path), "path": r.path},
            }
            cur = current.get(r.id)
            if cur is not None and cur[1] == "label":
                when = utc_iso(history[cur[0]].created)
                ann: dict[str, Any] = {
                    "result": [_ls_choice(self.classes[cur[2]])],
                    "was_cancelled": False,
                    "ground_truth": False,
                    "created_at": when,
                    "updated_at": when,
                }
                if who.get(cur[0]) is not None:  # an annotator's (the owner's: none named)
                    # not completed_by: Label Studio refuses the whole import when its email is
                    # not one of its users' (ValidationError "Unknown annotator's email"), and
                    # an annotator's name is not; a key of ours it does not read is left alone
                    ann[LS_ANNOTATOR_KEY] = who[cur[0]]
                task["annotations"] = [ann]
            else:
                task["annotations"] = []
            if probs is not None and p is not None:
                k = int(probs[p].argmax())
                score = round(float(probs[p, k]), 6)
                task["predictions"] = [
                    {
                        "model_version": version,
                        "score": score,
                        "result": [_ls_choice(self.classes[k]) | {"score": score}],
                    }
                ]
            tasks.append(task)
        return tasks

    def read_labelstudio(
        self,
        path: str | os.PathLike[str],
        prefix: str | None = None,
        left_out: list[str] | None = None,
        *,
        annotators: bool = False,
        places: list[str] | None = None,
        match_names: bool = False,
        name_only: list[str] | None = None,
    ) -> list[tuple[str, str]] | list[tuple[str, str, str | None]]:
        """``(image path, class)`` of every annotated task of a Label Studio JSON export; with
        ``annotators``, ``(image path, class, annotator)``: who gave the annotation taken, as
        :func:`ls_annotator` reads its ``completed_by`` (None: the owner).

        A task names its image by ``data.path`` (relative to the image folder, as this tool's
        export writes it) or by ``data.image``, whose path ends with an image's path relative
        to the folder: what comes before it (the folder's place in Label Studio's document
        root, e.g. ``images/``) must be the same for every task so matched, since the project
        is one folder. Tasks that would match through different prefixes (``train/cat/1.jpg``
        and ``test/cat/1.jpg`` for ``cat/1.jpg``) are refused unless ``prefix`` says which
        folder is this project's; tasks under other prefixes are then left out (their image
        references appended to ``left_out`` when given). So is a single prefix whose last folder
        is not named as the image folder (``train/`` for a project made from ``.../test``): it
        is most likely another folder's images with the same relative paths.

        A task whose path matches no image is matched by its file name alone when exactly one
        image has that name, but only with ``match_names``: camera names (``IMG_0001.jpg``)
        repeat across folders, so such a task may be another folder's image. Without it those
        tasks are refused, counted and named (the first three); with it they are appended to
        ``name_only`` when given (``task 4 ('.../IMG_0001.jpg' as 'dogs/IMG_0001.jpg')``).
        """
        from urllib.parse import parse_qs, unquote, urlparse

        try:
            tasks = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read Label Studio export {path}: {exc}.") from None
        if isinstance(tasks, dict):
            tasks = [tasks]
        if not isinstance(tasks, list):
            raise ConfigError(f"{path}: a Label Studio JSON export is a list of tasks.")
        by_path = self.store.image_ids_by_path()
        # a path or name whose accents are composed otherwise than the file's ('é', NFC, or
        # 'e' + accent, NFD, as macOS writes names) names it, as in `label add`: paths are
        # matched exactly first, then by their NFC forms; a file name alone by its NFC form
        # (both forms of one name are one name: two such files are ambiguous)
        composed = self._composed(by_path)
        by_nfc = [(unicodedata.normalize("NFC", p), p) for p in by_path]
        by_name: dict[str, list[str]] = {}
        for key, p in by_nfc:
            by_name.setdefault(key.rsplit("/", 1)[-1], []).append(p)

        def nfc(text: str) -> str:
            return unicodedata.normalize("NFC", text)

        path_of = {image_id: q for q, image_id in by_path.items()}

        def find(rel: str) -> str | None:  # the image a path relative to the folder names
            if rel in by_path:
                return rel
            image_id = composed.get(nfc(rel))
            return None if image_id is None else path_of[image_id]

        if prefix is not None:
            prefix = nfc(prefix.strip("/") + "/" if prefix.strip("/") else "")
        rows = []
        prefixes: list[str | None] = []  # per row: what precedes the matched path (None: no
        # folder to compare, i.e. data.path, a file name alone, or no match)
        example: dict[str, tuple[str, str]] = {}  # per prefix: a task's path and its match
        ambiguous: list[str] = []
        by_name_only: list[str] = []  # the tasks matched by their file name alone
        for i, task in enumerate(tasks):
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
                if isinstance(task, dict) and ("annotation_id" in task or "annotator" in task):
                    raise ConfigError(
                        f"{path}: task {i} has no `data` object: this looks like Label "
                        "Studio's JSON-MIN or CSV export; export the project as JSON instead."
                    )
                raise ConfigError(f"{path}: task {i} has no `data` object.")
            anns = [
                a
                for a in task.get("annotations") or []
                if isinstance(a, dict) and not a.get("was_cancelled")
            ]
            latest: list[str] = []  # the choices of the latest annotation that has any
            latest_by: str | None = None  # and who gave it
            for a in sorted(
                anns, key=lambda a: str(a.get("updated_at") or a.get("created_at") or "")
            ):
                chosen: list[str] = []  # over all the annotation's results
                for res in a.get("result") or []:
                    if isinstance(res, dict) and res.get("type") == "choices":
                        ch = (res.get("value") or {}).get("choices") or []
                        chosen += [str(c) for c in ch if str(c) not in chosen]
                if chosen:
                    latest, latest_by = chosen, ls_annotator(a)
            if len(latest) > 1:  # a label is one class: taking one would drop the others
                raise ConfigError(
                    f"{path}: task {task.get('id', i)} ({data_ref(task)!r}) has {len(latest)} "
                    f"choices ({', '.join(latest)}); a label is one class, so nothing was "
                    'written. Give each task one choice (a <Choices> with choice="single").'
                )
            if not latest:
                continue
            choice = latest[0]
            data = task["data"]
            ref = data.get("path")
            before: str | None = None
            found = find(ref) if isinstance(ref, str) else None
            if found is not None:
                ref = found
            else:
                image = str(data.get("image", ""))
                url = urlparse(image)
                d = parse_qs(url.query).get("d")
                ref = unquote(d[0]) if d else unquote(url.path)
                nref = nfc(ref)
                if prefix is not None:  # this folder's tasks only, matched exactly
                    rel = nref.lstrip("/")
                    if not rel.startswith(prefix):
                        if left_out is not None:
                            left_out.append(ref)
                        continue
                    found = find(rel[len(prefix) :])
                    match = [found] if found is not None else []
                else:
                    match = [p for p in by_path if ref == p or ref.endswith("/" + p)]
                    if not match and not nref.isascii():  # an ASCII path ends with no other
                        match = [p for k, p in by_nfc if nref == k or nref.endswith("/" + k)]
                if len(match) == 1:
                    # "/" composes with nothing: the NFC form of the path ends with its match's
                    before = nref[: len(nref) - len(nfc(match[0]))].lstrip("/")
                    example.setdefault(before, (ref, match[0]))
                if not match and prefix is None:
                    name = nref.rsplit("/", 1)[-1]
                    match = by_name.get(name, [])
                    if not match and len(name) > 9 and name[8] == "-":
                        match = by_name.get(name[9:], [])  # Label Studio upload prefix "1a2b3c4d-"
                    if len(match) == 1:
                        by_name_only.append(f"task {task.get('id', i)} ({ref!r} as {match[0]!r})")
                if len(match) > 1:
                    shown = listed(sorted(match), 3, more=ELIDED)
                    ambiguous.append(
                        f"task {task.get('id', i)} ({ref!r}) matches {len(match)} images: {shown}"
                    )
                    continue
                if not match and not ref and isinstance(data.get("path"), str):
                    ref = data["path"]  # no data.image: the message names data.path
                ref = match[0] if match else ref
            rows.append((ref, choice, latest_by))
            prefixes.append(before)
            if places is not None:
                places.append(f"task {task.get('id', i)}")
        folders = sorted({b for b in prefixes if b is not None})
        if len(folders) > 1:
            count = {f: prefixes.count(f) for f in folders}
            shown = listed(
                folders,
                4,
                show=lambda f: f"{f or '(none)'!r} ({counted(count[f], 'task')})",
                more=ELIDED,
            )
            raise ConfigError(
                f"{path}: the tasks name their images under {len(folders)} different folders "
                f"({shown}), but this project is one image "
                "folder: matching them by the end of their paths would label images of another "
                "folder; nothing was written. Say which folder is this project's with "
                f"`--prefix`, e.g. `--prefix {folders[0] or '/'}` (tasks under other folders are "
                "then left out)."
            )
        if ambiguous:
            raise ConfigError(
                f"{path}: {listed(ambiguous, 3, sep='; ', more=AND_MORE_APART)}; nothing was "
                "written. A file name "
                "alone does not say which image a task is: give each task its path relative to the "
                "image folder in data.path (the tasks of `fishermask label export --format "
                "labelstudio` carry it), or serve the image folder to Label Studio as local "
                "files so that data.image holds that path (docs/labeling.md, Label Studio)."
            )
        if by_name_only and not match_names:
            raise ConfigError(
                f"{path}: {counted(len(by_name_only), 'task')} "
                + ("matches" if len(by_name_only) == 1 else "match")
                + " an image by their file name alone "
                f"({listed(by_name_only, 3, sep='; ', more=AND_MORE_APART)}): a file name such "
                "as a camera's "
                "IMG_0001.jpg repeats across folders, so the task may be another folder's image "
                "whose label would land on this one; nothing was written. If these are this "
                "project's images, import with `--match-names`; else give each task its path "
                "relative to the image folder in data.path (docs/labeling.md, Label Studio)."
            )
        if name_only is not None:
            name_only.extend(by_name_only)
        if prefix is None and folders and folders[0]:
            # one folder before every matched path: most likely the image folder as Label
            # Studio names it, unless its name says it is another folder whose images have the
            # same relative paths (train/cat/1.jpg for a project made from test/)
            where = folders[0]
            last = where.rstrip("/").rsplit("/", 1)[-1]
            if last != nfc(self.root.name):
                ref, rel = example[where]
                raise ConfigError(
                    f"{path}: the tasks name their images under {where!r} "
                    f"({counted(prefixes.count(where), 'task')}, e.g. {ref!r} taken as {rel!r}), "
                    f"but this project's image folder is {self.root}, not {last!r}: they may be "
                    "another folder's images with the same paths, and importing them would label "
                    f"the wrong images; nothing was written. If {where!r} is this project's image "
                    f"folder under another name, import with `--prefix {where}`."
                )
        if annotators:
            return rows
        return [(ref, choice) for ref, choice, _ in rows]


def _normal(ref: str, root: Path | None = None) -> str | None:
    """A relative ``/`` path with ``.``, ``..`` and repeated ``/`` resolved as text
    (``red/../red/1.png`` is ``red/1.png``); None when it leads outside its folder. With
    ``root`` (the folder), a path that leaves it by name and comes back in is inside:
    ``../imgs/red/1.png`` of the folder ``imgs`` is ``red/1.png``."""
    rel = posixpath.normpath(ref)
    if rel != ".." and not rel.startswith("../"):
        return rel
    if root is None:
        return None
    base = posixpath.normpath(Path(os.path.abspath(root)).as_posix())
    full = posixpath.normpath(posixpath.join(base, ref))
    return full[len(base) + 1 :] if full.startswith(base.rstrip("/") + "/") else None


def _interrupted_init(path: Path) -> bool:
    """Whether ``path`` holds a project database that ``label init`` left without any image
    (killed during its scan: init refuses a folder without readable images otherwise)."""
    try:
        store = Store(path / DB_NAME)
    except Exception:  # not a database we can read: leave it alone
        return False
    try:
        return store.num_images() == 0 and store.last_label_id() == 0
    except Exception:
        return False
    finally:
        store.close()


def data_ref(task: dict[str, Any]) -> str:
    """How a Label Studio task names its image (``data.path``, else ``data.image``)."""
    data = task.get("data") or {}
    return str(data.get("path") or data.get("image") or "")


#: The key of a Label Studio annotation under which fishermask's export names the annotator.
LS_ANNOTATOR_KEY = "fishermask_annotator"


def ls_annotator(annotation: dict[str, Any]) -> str | None:
    """The annotator a Label Studio annotation names, None for the owner.

    fishermask's own export names an annotator's label under :data:`LS_ANNOTATOR_KEY` (the
    owner's: nothing). Otherwise Label Studio's ``completed_by``: a user id (an integer) or, in
    its JSON exports, the user as an object ``{"id", "email", "first_name", "last_name"}``.
    Taken: the name when it is an annotator name (letters, digits, ``_ . -``, at most 32), or
    the part of an e-mail address before ``@`` when that is one (``alice@lab.org`` is
    ``alice``). Anything else (a bare user id, no ``completed_by``, ``owner``) is the owner's.
    """
    email = annotation.get(LS_ANNOTATOR_KEY)
    if email is None:
        by = annotation.get("completed_by")
        email = by.get("email") if isinstance(by, dict) else None
    if not isinstance(email, str):
        return None
    name = email.strip()
    if "@" in name:
        name = name.split("@", 1)[0]
    if not team.is_name(name) or name.lower() == team.OWNER:
        return None
    return name


def _ls_choice(label: str) -> dict[str, Any]:
    return {
        "from_name": "choice",
        "to_name": "image",
        "type": "choices",
        "value": {"choices": [label]},
    }


__all__ = ["KINDS", "FishermaskError", "Project", "parse_classes", "wilson"]
