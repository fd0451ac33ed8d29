"""Reviewing the labels given: the labeled images, most likely mistakes first or newest
first, filtered by class and by who gave the label (the labeling page's "Labeled" view,
``GET /api/labeled``, ``label status --list labeled``).

*Likely mistakes first* ranks each labeled image by the probability that the project's latest
committed model (the one ``label predict`` uses) gives to the image's current label, lowest
first: an image whose label the model finds improbable is the first to look at (the ranking
of label-error finding, e.g. Northcutt et al., "Confident Learning", JAIR 2021, which uses
held-out probabilities; here the model has usually been trained on most of these labels, so
it has partly fitted a wrong one and ranks it less far up than a held-out model would). A
label given after that model was trained is marked ``newer_than_model``. Without a model, or
when the images cannot be loaded, the list is newest first and ``note`` says why in one line.

After a ``label check`` (:mod:`fishermask.label.check`) the ranking uses, for every image whose
label is still the one the check scored (the same label row), the check's *out-of-fold*
probability (from the one model of the check that did not train on that label), and the latest
model's probability for the labels given or changed since; ``note`` says how many of each, and
each item says which (``prob_from``: ``check`` or ``model``) and whether the check's rule flags
it as a likely label issue (``flagged``, with the ``suggested`` class).

A fix is an ordinary label (``POST /api/labels``, or ``label add``): a new row of the label
history, under the same rules as any label (the token's annotator, undo of one's own only).

Shapes: N images, C classes.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fishermask.errors import ConfigError, DataError
from fishermask.label import team

if TYPE_CHECKING:
    from fishermask.label.check import Check
    from fishermask.label.predict import CommittedModel
    from fishermask.label.project import Project

#: Orders of the labeled images: ``mistakes`` (the model's probability of the label, lowest
#: first; newest first without a model) and ``newest`` (the newest label first).
SORTS = ("mistakes", "newest")
PER_PAGE = 48
MAX_PER_PAGE = 200


class NoModel(ConfigError):
    """No round has trained a model yet."""


class LabelProbabilities:
    """The committed model's class probabilities ``[C]`` per image, kept while the model (its
    checkpoint) and the image's content (its SHA-256) stay the same, so paging through the
    labeled images runs the model once per image and a relabel needs no new pass."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checkpoint: str | None = None
        self._model: tuple[CommittedModel, Any, Any] | None = None
        self._probs: dict[int, tuple[str, np.ndarray]] = {}  # image id -> (sha256, [C])

    def get(
        self, project: Project, image_ids: Sequence[int]
    ) -> tuple[CommittedModel, dict[int, np.ndarray]]:
        """The committed model and the probabilities ``[C]`` of the images of ``image_ids``
        that are in the decoded images. Raises :class:`NoModel` without a trained model, and
        :class:`ConfigError` or :class:`DataError` when the model or the images cannot be read
        (one line each)."""
        with self._lock:
            latest = project.store.last_good_round(with_model=True)
            if latest is None:
                raise NoModel("no trained model yet")
            # torch comes with the model: without one the list needs none
            from fishermask.label.predict import committed_classifier, probabilities

            checkpoint = latest["checkpoint"]
            if self._model is None or checkpoint != self._checkpoint:
                self._model, self._probs = None, {}
                self._model = committed_classifier(project)
                self._checkpoint = checkpoint
            info, model, norm = self._model
            x, ids = project.images()  # [N, Ch, H, W] uint8, kept by the project
            id_pos = {i: p for p, i in enumerate(ids)}
            sha = {r.id: r.sha256 for r in project.store.images()}
            todo = [
                i
                for i in dict.fromkeys(image_ids)
                if i in id_pos and (i not in self._probs or self._probs[i][0] != sha.get(i))
            ]
            if todo:
                # [n, C'], C' < C for a model trained before classes were added (no output
                # for them: left unpadded, so labeled_page does not rank their labels)
                probs = probabilities(model, norm, x, [id_pos[i] for i in todo]).numpy()
                for i, p in zip(todo, probs, strict=True):
                    self._probs[i] = (sha[i], p)
            return info, {i: self._probs[i][1] for i in image_ids if i in self._probs}


def drop_removed(probs: np.ndarray, removed: Collection[int]) -> np.ndarray:
    """``probs`` ``[..., C]`` with the classes of ``removed`` at probability 0 and the others
    renormalised (a model trained before ``label config --remove-class`` still has their
    outputs; a label check drops the classes nobody had labeled too)."""
    gone = sorted(c for c in removed if c < probs.shape[-1])
    if not gone:
        return probs
    out = np.array(probs, dtype=np.float64)
    out[..., gone] = 0.0
    return out / np.maximum(out.sum(axis=-1, keepdims=True), 1e-12)


def check_query(
    classes: Sequence[str],
    *,
    label: str | None,
    by: str | None,
    sort: str,
    page: str | int,
    per_page: str | int,
    annotators: Sequence[str] = (),
) -> tuple[int, int]:
    """Validate the filters of :func:`labeled_page` (one line each, naming the value and the
    fix); returns ``(page, per_page)`` as integers. ``annotators``: the names ``by`` may take
    besides ``owner``."""
    if sort not in SORTS:
        raise ConfigError(f"sort={sort!r}: use one of {', '.join(SORTS)}.")
    if label is not None and label not in classes:
        raise ConfigError(
            f"label={label!r} is not one of the project's classes: {', '.join(classes)}."
        )
    names = [team.OWNER, *sorted(set(annotators) - {team.OWNER})]
    if by is not None and by not in names:
        raise ConfigError(f"by={by!r} names no annotator; use one of {', '.join(names)}.")
    out = []
    for name, value, top in (("page", page, None), ("per_page", per_page, MAX_PER_PAGE)):
        text = str(value).strip()
        if not text.isdigit() or int(text) < 1 or (top is not None and int(text) > top):
            limit = f"1 to {top}" if top is not None else "1 or more"
            raise ConfigError(f"{name}={value!r}: must be a whole number, {limit}.")
        out.append(int(text))
    return out[0], out[1]


def labeled_page(
    project: Project,
    probs: LabelProbabilities,
    *,
    label: str | None = None,
    by: str | None = None,
    sort: str = "mistakes",
    page: int = 1,
    per_page: int | None = PER_PAGE,
    flagged: bool = False,
    disagreements: str | None = None,
    team_view: bool = False,
) -> dict[str, Any]:
    """One page of the labeled images (filters checked by :func:`check_query`):

    ``{"total", "page", "per_page", "pages", "sort" (the order used), "note" (one line: how
    they are ranked, or why not by the model), "model" ({"round", "n_labels"} or None),
    "annotators" (who gave current labels), "items"}``; each item ``{"image_id", "path",
    "label", "label_id", "by", "source", "created", "label_prob", "guess": {"label", "prob"},
    "newer_than_model", "prob_from" ("check": the latest label check's out-of-fold
    probability; "model": the latest model's), "flagged" (the check's rule finds the label
    likely wrong; None when the check did not score this label), "suggested"}`` (``label_prob``,
    ``guess`` and ``newer_than_model`` None without a model; ``label_prob`` None, and the item
    after the ranked ones, for a label of a class added after the model was trained, which has
    no output for it; ``check``: the latest check, or None). ``label``: only images of
    that class; ``by``: only labels given by that annotator (``owner``: the owner's);
    ``flagged``: only the labels the latest check flags (still the ones it scored; none
    before a check, and ``note`` says so); ``per_page`` None: every one on one page.
    ``disagreements``: only the images whose annotators' labels differ (``open``: not decided
    by the owner; ``all``: decided too; :mod:`fishermask.label.team`). ``team_view`` (the
    owner's): each item also has ``disagreement``, ``{"status" (open, decided), "labels":
    {annotator: class}}`` or None (who said what, for the owner to decide). Each item's
    ``kind`` is ``label``, or with ``disagreements`` also ``skip`` or ``unsure`` (a
    disagreement whose current action is one, ``label`` None): the same images as
    :meth:`Project.disagreements` lists."""
    # by label row id: oldest first; with ``disagreements``, every image that
    # :meth:`Project.disagreements` lists (`label status --list disagreements`), also one
    # whose current action is a skip or unsure (given before those were refused on another's
    # label): the item's ``kind`` says so and its ``label`` is None
    kinds = ("label",) if disagreements is None else ("label", "skip", "unsure")
    rows = project.store.current_label_rows(kinds)
    differ = (
        {d["image_id"]: d for d in project.disagreements()}
        if team_view or disagreements is not None
        else {}
    )
    if disagreements is not None:
        rows = [
            r
            for r in rows
            if r["image_id"] in differ
            and (disagreements == "all" or differ[r["image_id"]]["status"] == "open")
        ]
    classes = project.reload_classes()  # read after the labels: it holds every class they name
    given = sorted({team.name_of(r["annotator"]) for r in rows})
    if label is not None:
        cid = classes.index(label)
        rows = [r for r in rows if r["class_id"] == cid]
    if by is not None:
        who = None if by == team.OWNER else by
        rows = [r for r in rows if r["annotator"] == who]
    rows.reverse()  # newest first
    from fishermask.label.check import latest_check

    check = latest_check(project)
    checked = {
        r["image_id"]
        for r in rows
        if check is not None and check.current(r["image_id"], r["label_id"])
    }
    if flagged:  # (every one of them scored by the check)
        rows = [
            r
            for r in rows
            if check is not None and r["image_id"] in checked and check.flagged[r["image_id"]]
        ]
        checked = {r["image_id"] for r in rows}
    model = None
    p: dict[int, np.ndarray] = {}
    used = "newest"
    if sort == "newest":
        note = "newest label first"
    else:
        why = None
        try:
            model, p = probs.get(
                project, [r["image_id"] for r in rows if r["image_id"] not in checked]
            )
        except NoModel:
            why = (
                "no trained model yet, so newest first: the first `label train` or 'next "
                "batch' trains one, which ranks the likely mistakes"
            )
        except (ConfigError, DataError) as exc:
            why = f"newest first: the model cannot rank the labels now: {exc}"
        if project.removed:  # a class removed since the model was trained: never named
            p = {i: drop_removed(v, project.removed) for i, v in p.items()}
        if check is not None and checked:  # (the check's drop the removed classes already)
            p = dict(p) | {i: check.probs[i] for i in checked}
        if why is not None and not checked:
            note = why
        else:
            used = "mistakes"
            note = _note(model, check, len(checked), len(rows), why)
            added = [
                c
                for i, c in enumerate(classes)
                if model is not None and i >= model.num_classes and i not in project.removed
            ]
            if added:
                # a label of a class the model has no output for is not a likely mistake: it
                # was never learned; those come last, newest first, without a probability
                note += (
                    f"; labels of {', '.join(added)} (added after this "
                    "model was trained) are not ranked: they come last until the next retrain"
                )
            # stable: equal probabilities (and images without one, last) stay newest first
            rows.sort(key=lambda r: _prob(p, r) if _rankable(p, r) else 2.0)
    if disagreements is not None:
        note = (
            "only the images whose annotators' labels differ"
            + (", not yet decided" if disagreements == "open" else "")
            + f"; {note}"
        )
    if flagged:
        note = (
            f"only the labels the label check of {check.when} flags; {note}"
            if check is not None
            else "no label check yet, so nothing is flagged: 'check labels' (or `fishermask "
            "label check PROJECT`) makes one"
        )
    total = len(rows)
    per_page = per_page or max(1, total)
    start = (page - 1) * per_page
    last = int(model.trained_round["last_label_id"]) if model is not None else 0
    items = []
    for r in rows[start : start + per_page]:
        pr = p.get(r["image_id"])
        i_check = r["image_id"] if check is not None and r["image_id"] in checked else None
        best = int(np.argmax(pr)) if pr is not None else None
        labeled = r["class_id"] is not None
        known = pr is not None and labeled and r["class_id"] < len(pr)
        items.append(
            {
                "image_id": r["image_id"],
                "path": r["path"],
                "kind": r["kind"],
                "label": classes[r["class_id"]] if labeled else None,
                "label_id": r["label_id"],
                "by": team.name_of(r["annotator"]),
                "source": r["source"],
                "created": r["created"],
                "label_prob": round(float(pr[r["class_id"]]), 4) if known else None,
                "guess": None
                if best is None
                else {"label": classes[best], "prob": round(float(pr[best]), 4)},
                "newer_than_model": None if model is None else r["label_id"] > last,
                "prob_from": None
                if pr is None
                else ("check" if r["image_id"] in checked and used == "mistakes" else "model"),
                "flagged": None if i_check is None else check.flagged[i_check],
                "suggested": None
                if i_check is None or not check.flagged[i_check]
                else classes[check.suggested[i_check]],
            }
        )
        if team_view:
            d = differ.get(r["image_id"])
            items[-1]["disagreement"] = (
                None if d is None else {"status": d["status"], "labels": d["labels"]}
            )
    return {
        "total": total,
        "page": page,
        "per_page": per_page,
        "pages": max(1, -(-total // per_page)),
        "sort": used,
        "note": note,
        "model": None if model is None else {"round": model.round_id, "n_labels": model.n_labels},
        "check": None
        if check is None
        else {
            "id": check.info["id"],
            "started": check.info["started"],
            "folds": check.info["folds"],
            "current": len(checked),
        },
        "annotators": given,
        "items": items,
    }


def _rankable(p: dict[int, np.ndarray], row: dict[str, Any]) -> bool:
    """The model has a probability for the row's image and an output for its label."""
    return (
        row["image_id"] in p
        and row["class_id"] is not None
        and row["class_id"] < len(p[row["image_id"]])
    )


def _note(
    model: CommittedModel | None, check: Check | None, n_checked: int, n: int, why: str | None
) -> str:
    """The one line saying where the probabilities that rank the labels come from."""
    by_model = (
        f"the model of round {model.round_id} (trained on {model.n_labels} labels)"
        if model is not None
        else None
    )
    if check is None or not n_checked:
        return (
            f"likely mistakes first: {by_model} gives each image's label this probability, "
            "lowest first"
        )
    oof = (
        f"out-of-fold probabilities from the label check of {check.when} ({check.info['folds']} "
        "models, each without the labels it scores)"
    )
    if n_checked == n:
        return f"likely mistakes first: {oof} for all {n} labels, lowest first"
    rest = n - n_checked
    since = f"{'the one' if rest == 1 else f'the {rest}'} labeled or changed since"
    if by_model is None:
        return (
            f"likely mistakes first: {oof} for {n_checked} of {n} labels, lowest first; "
            f"{since} come last ({why})"
        )
    return (
        f"likely mistakes first: {oof} for {n_checked} of {n} labels; {by_model}'s for {since}; "
        "lowest first"
    )


def _prob(p: dict[int, np.ndarray], row: dict[str, Any]) -> float:
    """The model's probability of the row's label."""
    return float(p[row["image_id"]][row["class_id"]])
