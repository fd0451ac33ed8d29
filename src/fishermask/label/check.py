"""Finding wrong labels (``fishermask label check``): out-of-fold probabilities and the
confident-learning rule.

A model trained on a label has partly fitted it, wrong or not, so its probability of a wrong
label is higher than that of a model that never saw it. The check therefore trains K models
with the project's own recipe (model, width, epochs and steps, seeds derived from the project's
seed), model k on every label outside fold k, and keeps for each labeled image the class
probabilities of the one model that did not see it (*out-of-fold*). Folds are stratified by
class, and a byte-for-byte copy is in the fold of the image it copies (with the image it copies,
a model would be scored on bytes it was trained on).

The rule (Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 70, 2021, Sec. 3.1, the off-diagonal of the *confident joint*; cleanlab's
``find_label_issues`` with ``filter_by="confident_learning"``): with ``p[n, j]`` the
out-of-fold probability of class j for image n and ``y[n]`` its given label, the per-class
threshold is the mean self-confidence of the class,

    t_j = mean of p[n, j] over the images n with y[n] = j,

and the class image n confidently belongs to is the most probable of the classes at or above
their threshold (``p[n, j] >= t_j``; its given class included). An image labeled i is a likely
label issue when that class is another than i (the confident joint's off-diagonal), which is
then its suggested class; an image that reaches no threshold is no issue. Issues are ranked
by ``p[n, y[n]]``, lowest first. A class nobody labeled is dropped from the probabilities (its
models saw none of it) and so is never suggested.

Shapes: N labeled images, C classes, K folds.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fishermask.errors import ConfigError
from fishermask.label.review import drop_removed
from fishermask.text import counted, utc_clock, utc_iso

if TYPE_CHECKING:
    from fishermask.label.project import Project

Report = Callable[[str, int, int], None]  # (phase, done, total)
FOLDS = 5
MAX_FOLDS = 20
#: Below this share of labels predicted out of fold the flags mostly catch right labels (1 000
#: CIFAR-10 images with 92 flipped: the models predicted 37 %, 547 flagged, 13 % of them flips;
#: 24 coloured squares with 4 flipped: 83 %, 4 flagged, all flips): the command says so.
WEAK_CHECK = 0.8
#: The pseudo-round of the check's seeds (``new_model``/``train`` derive ``round * 8 + k``):
#: no real round reaches it, so the check's models never share a seed with a round's.
SEED_ROUND = 2**28


# -- the rule (pure) ---------------------------------------------------------------------------
def thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-class thresholds ``[C]``: the mean ``probs[n, j]`` over the images labeled j
    (``inf`` for a class without labels). ``probs``: ``[N, C]``; ``labels``: ``[N]``."""
    n_classes = probs.shape[1]
    t = np.full(n_classes, np.inf)
    for j in range(n_classes):
        mine = labels == j
        if mine.any():
            t[j] = float(probs[mine, j].mean())
    return t


def label_issues(
    probs: np.ndarray, labels: np.ndarray, never: Sequence[int] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """The confident-learning rule (module docstring): ``(flagged [N] bool, suggested [N]
    int, -1 where not flagged)``. ``probs``: out-of-fold ``[N, C]``; ``labels``: ``[N]``;
    ``never``: classes never suggested (removed since the check)."""
    t = thresholds(probs, labels)  # [C]
    t[list(never)] = np.inf
    above = probs >= t[None, :]  # [N, C]
    # the class each image confidently belongs to: the most probable of the classes at or
    # above their threshold, its given class included (the confident joint's row); an issue
    # where that is another class than the given one (off the joint's diagonal)
    guess = np.where(above, probs, -np.inf).argmax(axis=1)  # [N]
    flagged = above.any(axis=1) & (guess != labels)  # [N]
    suggested = np.where(flagged, guess, -1)  # [N]
    return flagged, suggested


def reference_label_issues(probs: np.ndarray, labels: np.ndarray) -> tuple[list[bool], list[int]]:
    """The rule written as a plain loop, for the tests to compare :func:`label_issues` with."""
    n, c = probs.shape
    t = []
    for j in range(c):
        mine = [probs[k, j] for k in range(n) if labels[k] == j]
        t.append(sum(mine) / len(mine) if mine else float("inf"))
    flagged, suggested = [], []
    for k in range(n):
        best, best_p = -1, -1.0  # the most probable class at or above its threshold
        for j in range(c):
            if probs[k, j] >= t[j] and probs[k, j] > best_p:
                best, best_p = j, float(probs[k, j])
        issue = best >= 0 and best != labels[k]
        flagged.append(issue)
        suggested.append(best if issue else -1)
    return flagged, suggested


# -- folds -------------------------------------------------------------------------------------
def check_folds(
    labeled: dict[int, int], copies: dict[int, int], k: int, seed: int
) -> dict[int, int]:
    """``{image id: fold}`` for the labeled images (``{image id: class}``), stratified by class:
    images are grouped with the images they copy (``copies``, from :meth:`Store.copies`: a
    group is one original and its copies, always in one fold), the groups of each class (the
    class of the group's first labeled image) are put in an order fixed by ``seed`` and dealt
    to the folds in turn, one class after another, so every fold gets about 1/k of each class
    and of the whole. Deterministic: the same labels, copies, ``k`` and ``seed`` give the same
    folds."""
    groups: dict[int, list[int]] = {}
    for i in sorted(labeled):
        groups.setdefault(copies.get(i, i), []).append(i)
    by_class: dict[int, list[int]] = {}
    for root, members in groups.items():
        by_class.setdefault(labeled[members[0]], []).append(root)
    out: dict[int, int] = {}
    turn = 0
    for cls in sorted(by_class):
        roots = sorted(
            by_class[cls],
            key=lambda r: hashlib.sha256(f"check:{seed}:{r}".encode()).hexdigest(),
        )
        for r in roots:
            for i in groups[r]:
                out[i] = turn % k
            turn += 1
    return out


def check_enough(
    labeled: dict[int, int],
    copies: dict[int, int],
    k: int,
    classes: Sequence[str],
    option: str | None = "--folds",
) -> None:
    """Refuse (:class:`ConfigError`, one line saying how many are needed) a check that cannot
    give every image a model that learned its class: ``k`` from 2 to :data:`MAX_FOLDS`, at
    least ``k`` labeled images (distinct files: copies count once), labels in at least 2
    classes, and at least 2 (distinct files) in every class that has labels. ``option``: how
    the asker gave ``k`` (``--folds``; ``folds`` of ``POST /api/check``), None when it was not
    given (the page's button: the default)."""
    if not 2 <= k <= MAX_FOLDS:
        raise ConfigError(f"{option or 'folds'} {k}: must be 2 to {MAX_FOLDS} (default {FOLDS}).")
    files: dict[int, set[int]] = {}
    for i, c in labeled.items():
        files.setdefault(c, set()).add(copies.get(i, i))
    n = len({copies.get(i, i) for i in labeled})
    if len(files) < 2:
        raise ConfigError(
            f"a label check needs labels in at least 2 classes (has {len(files)}); label more "
            "images first."
        )
    few = {classes[c]: len(s) for c, s in sorted(files.items()) if len(s) < 2}
    if few:
        names = ", ".join(f"{name!r} {m}" for name, m in few.items())
        raise ConfigError(
            f"a label check needs at least 2 labeled images in every class that has labels, so "
            f"that the model that does not see one has seen others of its class ({names}); "
            "label more of those classes first."
        )
    if n < k and option is None:
        raise ConfigError(
            f"a label check ({k} models) needs at least {k} labeled images (distinct files; has "
            f"{n}); label more images first."
        )
    if n < k:
        raise ConfigError(
            f"{option} {k} needs at least {k} labeled images (distinct files; has {n}); label "
            f"more images or use {option} {max(2, n)}."
        )


# -- running a check ---------------------------------------------------------------------------
def run_check(
    project: Project,
    folds: int = FOLDS,
    report: Report | None = None,
    *,
    check_id: int | None = None,
) -> int:
    """Train ``folds`` models (module docstring) and store each labeled image's out-of-fold
    probabilities as a new check; returns its id. Refused (one line) below the minimum of
    :func:`check_enough`, while a round is training (:class:`~fishermask.label.store.RoundBusy`)
    or another check runs (:class:`~fishermask.label.store.CheckRunning`); a round asked for
    while this check runs is refused likewise (:meth:`Store.start_round`).

    ``check_id``: run the check already recorded as running under that id (``label serve``
    records it, then hands it to its worker process: :mod:`fishermask.label.worker`) with the
    folds, labels and settings of its row; every failure closes that row (failed)."""
    import torch

    from fishermask.label.predict import probabilities
    from fishermask.label.project import fit_normalizer

    store = project.store
    copies = store.copies()
    handed = check_id is not None
    if check_id is None:
        # refuse too few labels before anything is recorded (checked again on the snapshot)
        labeled = {i: c for i, (_, k, c) in store.current().items() if k == "label"}
        check_enough(labeled, copies, folds, project.classes)
        project.check_intact()
        project.load_imports()
        check_id, last, settings = store.start_check(folds, os.getpid())
    else:
        row = store.check_row(check_id)
        if row is None or row["status"] != "running":
            raise ConfigError(f"label check {check_id} is not running: nothing to do.")
        folds, last, settings = int(row["folds"]), int(row["last_label_id"]), row["settings"]

    def progress(phase: str, done: int, total: int) -> None:
        """Records the progress for every check, so that a page shows that of one run from
        the command line as well (it showed 'starting' until the end), and tells ``report``."""
        store.check_progress(check_id, phase, done, total)
        if report is not None:
            report(phase, done, total)

    try:
        if handed:  # checked by the server before it recorded the check; again here, closing it
            project.check_intact()
            project.load_imports()
        project.settings = settings  # the recipe of the moment the check started
        # read after `last`: every class a label up to it names (classes are only appended)
        project.reload_classes()
        progress("loading images", 0, 1)
        x, ids = project.images()  # [N, Ch, H, W] uint8
        id_pos = {i: p for p, i in enumerate(ids)}
        current = {
            i: (lid, c)
            for i, (lid, k, c) in store.current().items()
            if k == "label" and lid <= last and i in id_pos
        }
        labeled = {i: c for i, (_, c) in current.items()}
        # (labels undone since the server checked: said as for the page's button)
        check_enough(labeled, copies, folds, project.classes, None if handed else "--folds")
        fold = check_folds(labeled, copies, folds, int(settings["seed"]))
        order = sorted(labeled)
        pos = torch.tensor([id_pos[i] for i in order], dtype=torch.int64)
        y = torch.tensor([labeled[i] for i in order], dtype=torch.int64)
        f = torch.tensor([fold[i] for i in order], dtype=torch.int64)
        norm = fit_normalizer(x)
        out = np.zeros((len(order), len(project.classes)), dtype=np.float64)  # [N, C]
        epochs = project.expected_epochs(int((f != 0).sum()))
        for k in range(folds):
            test = f == k
            phase = (
                f"fold {k + 1}/{folds}: training on {int((~test).sum())} labels, scoring "
                f"the {int(test.sum())} it leaves out"
            )
            progress(phase, k * epochs, folds * epochs)

            def on_epoch(
                epoch: int, limit: int, acc: float, k: int = k, phase: str = phase
            ) -> None:
                progress(phase, k * epochs + min(epoch, epochs), folds * epochs)

            model, _ = project._fit(x[pos[~test]], y[~test], norm, SEED_ROUND, k, on_epoch)
            model.eval()
            held = torch.nonzero(test).flatten()
            out[held.numpy()] = probabilities(model, norm, x, pos[held].tolist()).double().numpy()
        rows = [
            (i, current[i][0], labeled[i], fold[i], out[n].tolist()) for n, i in enumerate(order)
        ]
        store.finish_check(check_id, status="done", rows=rows)
    except BaseException as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        store.finish_check(check_id, status=status, message=msg)
        raise
    return check_id


# -- reading a check ---------------------------------------------------------------------------
@dataclass
class Check:
    """A stored check: ``info`` (its row), and per image id its label row id, label, fold,
    out-of-fold probabilities ``[C]``, whether the rule flags it and the suggested class."""

    info: dict[str, Any]
    label_id: dict[int, int]
    label: dict[int, int]
    fold: dict[int, int]
    probs: dict[int, np.ndarray]
    flagged: dict[int, bool]
    suggested: dict[int, int]
    removed: list[int] = field(default_factory=list)  # class ids removed when it was read

    @property
    def when(self) -> str:
        """The check's time, ``HH:MM UTC`` (with the date when not today): UTC, as every time
        the labeling tool shows (:func:`fishermask.text.utc_clock`)."""
        return utc_clock(self.info["started"])

    @functools.cached_property
    def agreement(self) -> float:
        """The share of the scored labels that their out-of-fold model predicts (argmax): a
        low one means weak models, whose probabilities flag many right labels too."""
        same = [int(np.argmax(p)) == self.label[i] for i, p in self.probs.items()]
        return sum(same) / max(1, len(same))

    def current(self, image_id: int, label_id: int) -> bool:
        """Whether the image's label is still the one the check scored (same label row)."""
        return self.label_id.get(image_id) == label_id


#: The latest check read per project database (``label serve`` reads it for every page of the
#: Labeled view): ``{database path: Check}``, reused while the latest check is the same.
_READ: dict[str, Check] = {}


def latest_check(project: Project, check_id: int | None = None) -> Check | None:
    """The latest finished check of the project (``check_id``: that check, if it finished),
    with the rule applied, or None. A class removed since the check (``label config
    --remove-class``), or one without a label when it ran, is dropped from its probabilities
    (the others renormalised), so it is never suggested nor a guess."""
    if check_id is None:
        info = project.store.latest_check()
    else:
        info = project.store.check_row(check_id)
        info = info if info is not None and info["status"] == "done" else None
    if info is None:
        return None
    key = str(project.store.path)
    kept = _READ.get(key)
    removed = sorted(project.store.removed_classes())
    if kept is not None and (kept.info["id"], kept.info["started"], kept.removed) == (
        info["id"],
        info["started"],
        removed,
    ):
        return kept
    rows = project.store.check_probs(info["id"])
    if not rows:
        return None
    ids = [r["image_id"] for r in rows]
    probs = np.array([r["probs"] for r in rows], dtype=np.float64)  # [N, C]
    labels = np.array([r["label"] for r in rows], dtype=np.int64)  # [N]
    # a class removed since, or one nobody had labeled (its models saw no image of it, so
    # whatever they give it is no evidence): dropped, the others renormalised
    unlabeled = sorted(set(range(probs.shape[1])) - set(labels.tolist()))
    gone = sorted({c for c in removed if c < probs.shape[1]} | set(unlabeled))
    probs = drop_removed(probs, gone)
    flagged, suggested = label_issues(probs, labels, gone)
    _READ[key] = Check(
        info=info,
        label_id={r["image_id"]: r["label_id"] for r in rows},
        label={r["image_id"]: r["label"] for r in rows},
        fold={r["image_id"]: r["fold"] for r in rows},
        probs=dict(zip(ids, probs, strict=True)),
        flagged=dict(zip(ids, flagged.tolist(), strict=True)),
        suggested=dict(zip(ids, suggested.tolist(), strict=True)),
        removed=removed,
    )
    return _READ[key]


def issue_rows(project: Project, check: Check) -> tuple[list[dict[str, Any]], int]:
    """The check's likely label issues whose label is still the one it scored, ranked by the
    out-of-fold probability of the given label, lowest first: ``{"path", "label",
    "suggested", "label_prob", "suggested_prob", "by", "when"}`` each; and M, the labels the
    check scored that are still current."""
    from fishermask.label import team

    rows = [
        r for r in project.store.current_label_rows() if check.current(r["image_id"], r["label_id"])
    ]
    classes = project.reload_classes()  # read after the labels: it names every class they name
    out = []
    for r in rows:
        i = r["image_id"]
        if not check.flagged[i]:
            continue
        p, s = check.probs[i], check.suggested[i]
        out.append(
            {
                "path": r["path"],
                "label": classes[r["class_id"]],
                "suggested": classes[s],
                "label_prob": round(float(p[r["class_id"]]), 4),
                "suggested_prob": round(float(p[s]), 4),
                "by": team.name_of(r["annotator"]),
                "when": utc_iso(r["created"]),
                "_p": float(p[r["class_id"]]),
            }
        )
    out.sort(key=lambda d: (d["_p"], d["path"]))
    for d in out:
        del d["_p"]
    return out, len(rows)


def current_flagged(project: Project, check: Check) -> tuple[int, int]:
    """``(flagged, current)``: how many of the check's labels are still the ones it scored,
    and how many of those it flags (the counts of :func:`issue_rows`, from the store's cached
    current actions: ``label serve`` says them on every page's status poll, and reading every
    label row there held the store, and every save, for a large project)."""
    current = [
        i
        for i, (lid, kind, _) in project.store.current().items()
        if kind == "label" and check.current(i, lid)
    ]
    return sum(check.flagged[i] for i in current), len(current)


def flagged_line(n_flagged: int, current: int) -> str:
    """``3 of 24 labels flagged as possibly wrong (12.5 %)``: the check's result, as ``label
    check`` and the page say it (``current``: its labels unchanged since)."""
    share = f"{100 * n_flagged / current:.1f}" if current else "0.0"
    return f"{n_flagged} of {counted(current, 'label')} flagged as possibly wrong ({share} %)"


def weak_line(agreement: float) -> str | None:
    """The warning that the check's models are too weak for its flags (below
    :data:`WEAK_CHECK` of the labels predicted out of fold), or None."""
    if agreement >= WEAK_CHECK:
        return None
    return (
        f"out of fold, the check's models predict only {100 * agreement:.1f} % of the labels "
        "they scored: too weak for the flags to tell right labels from wrong ones (many right "
        "ones are flagged)"
    )


def check_summary(project: Project) -> dict[str, Any] | None:
    """The latest check in a few numbers for ``label status``: its id, time, folds, the labels
    it scored, those still current (unchanged since), the flagged among them and the share
    its models predicted (:attr:`Check.agreement`); None before any check."""
    check = latest_check(project)
    if check is None:
        return None
    rows, current = issue_rows(project, check)
    return {
        "id": check.info["id"],
        "when": utc_iso(check.info["started"]),
        "folds": check.info["folds"],
        "scored": len(check.probs),
        "current": current,
        "flagged": len(rows),
        "agreement": round(check.agreement, 4),
    }
