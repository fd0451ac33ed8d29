"""Using a labeling project's model: its predictions on the project's images, how accurate
they were on held-out labels, and the model exported as a folder with its loader.

* :func:`predict_project` applies the project's latest committed model (the one the current
  batch was chosen with) to its images, from the decoded image cache and through
  :func:`fishermask.training.trainer.predict`, the code every round queries with: the
  predictions are those the round would make (``fishermask label predict``,
  ``GET /api/predictions``).
* :func:`held_out_summary`: of the held-out predictions stored when the model's round
  estimated its accuracy (each by a model trained without that image's label), how many had
  a probability at or above ``P`` and how many of those were right (95 % Wilson interval).
  Nothing is reported where nothing was measured.
* :func:`export_model` writes ``model.pt`` (the weights) and ``model.json`` (architecture,
  width, classes, image size, channels, normalisation, round, held-out accuracy, and the
  ``--import`` entries with the SHA-256 of each file for a model of your own, the SHA-256 of
  ``model.pt`` and of model.json's own content, both checked on load);
  :class:`LabelModel` (``fishermask.label.load_model(DIR)``) loads it without the project
  (importing those entries when the architecture is not registered in the process) and
  decodes images as the project does (:func:`fishermask.label.images.decode`).

Shapes: N images, C classes, K top classes kept per image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fishermask.errors import ConfigError, DataError
from fishermask.label import images as imgs
from fishermask.label import imports as label_imports
from fishermask.models import available_models, build_model
from fishermask.text import utc_iso
from fishermask.training import Normalizer
from fishermask.training.trainer import predict

if TYPE_CHECKING:
    from fishermask.label.project import Project
    from fishermask.models.base import Classifier

#: ``--images``: which of the project's images get a prediction.
WHICH = ("all", "unlabeled", "labeled")
#: Images per forward pass (the decoded images are in memory already; this bounds the
#: activations).
BATCH = 512
#: Probabilities are written with this many decimals, and ``--min-prob`` compares the
#: written value, so a filter on the output file keeps the same rows.
DECIMALS = 6
MODEL_FORMAT = "fishermask-label-model"
#: The newest model.json this version reads. An export whose images are fitted other than by
#: ``stretch`` (``fit``: pad or crop) is version 2, so an older fishermask, which would
#: stretch the images it predicts on, refuses it; a stretch export stays version 1.
MODEL_FORMAT_VERSION = 2
#: model.json's own checksum: the SHA-256 of its content without this field (canonical JSON)
DESCRIPTION_KEY = "description_sha256"


#: model.json's ``decoding`` words for the resize step of each fit.
FIT_WORDS = {
    "stretch": "resized (bilinear) to {h}x{w}",
    "pad": "resized (bilinear) keeping its aspect to fit in {h}x{w}, centred, the rest filled "
    "with the image's mean colour per channel",
    "crop": "the largest centred box of {h}:{w} aspect resized (bilinear) to {h}x{w}",
}


def description_sha256(info: dict[str, Any]) -> str:
    """SHA-256 of ``model.json``'s content without :data:`DESCRIPTION_KEY`: canonical JSON
    (sorted keys, no spaces), so only a change of a value (or a key) changes it, not the
    file's layout; it covers ``weights_sha256`` and so the pairing with ``model.pt``."""
    import hashlib

    body = {k: v for k, v in info.items() if k != DESCRIPTION_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def check_options(
    which: str, min_prob: float, top: int, num_classes: int | None = None, *, api: bool = False
) -> None:
    """Validate ``--images``, ``--min-prob`` and ``--top`` (one line each, with the fix);
    ``api``: named as the query parameters of ``GET /api/predictions``."""
    names = ("images=", "min_prob=", "top=") if api else ("--images ", "--min-prob ", "--top ")
    images, prob, k = names
    if which not in WHICH:
        if not api and ("/" in which or os.sep in which or Path(which).is_dir()):
            # `label init --images DIR` takes a folder: the natural guess for new images
            raise ConfigError(
                f"{images}{which!r}: use one of {', '.join(WHICH)} (the project's images); to "
                f"predict a folder of new images, give it as --folder {which!r}."
            )
        raise ConfigError(f"{images}{which!r}: use one of {', '.join(WHICH)}.")
    if not (0.0 <= min_prob <= 1.0):  # NaN fails too
        raise ConfigError(f"{prob}{min_prob:g}: a probability, between 0 and 1 (e.g. 0.9).")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"{k}{top!r}: must be an integer >= 1.")
    if num_classes is not None and top > num_classes:
        raise ConfigError(f"{k}{top}: the project has {num_classes} classes; use 1..{num_classes}.")


# -- the project's model ---------------------------------------------------------------------
@dataclass(frozen=True)
class CommittedModel:
    """The project's latest committed model and where it comes from."""

    trained_round: dict[str, Any]  # the round that trained it (its accuracy estimate)
    queue_round: int  # the latest finished round, whose batch is the current one
    state: dict[str, Any]  # the checkpoint (``Project.save_checkpoint``)
    chose_batch: bool = True  # the current batch was chosen with this model (not a revisit)

    @property
    def round_id(self) -> int:
        return int(self.trained_round["id"])

    @property
    def n_labels(self) -> int:
        return int(self.trained_round["n_labels"])

    @property
    def num_classes(self) -> int:
        """The model's outputs: the project's first classes (a class added by ``label config
        --add-class`` after it was trained has none)."""
        return len(self.state["classes"])


def added_since_line(names: Sequence[str], project_dir: Path | str) -> str:
    """The one line for a model trained before the classes ``names`` were added."""
    return (
        f"the model predates class(es) {', '.join(names)} (added with `label config "
        "--add-class` since it was trained): it gives them probability 0 and never predicts "
        f"them; `fishermask label train {project_dir}` trains one that knows them."
    )


def committed_model(project: Project) -> CommittedModel:
    """The checkpoint of the latest finished round (a round that did not retrain carries the
    model it queried with), and the round that trained it. Refused (:class:`ConfigError`)
    when no round has trained a model yet."""
    latest = project.store.last_good_round(with_model=True)
    if latest is None:
        raise ConfigError(
            f"{project.dir} has no trained model yet: label images of at least 2 classes, then "
            f"train one with `fishermask label train {project.dir}` (or 'next batch' on the "
            "labeling page)."
        )
    ckpt = latest["checkpoint"]
    trained = next(
        r for r in project.store.rounds() if r["status"] == "done" and r["checkpoint"] == ckpt
    )
    state = read_checkpoint(project.dir, ckpt)
    # the current batch: the latest finished round's, which carries this model unless it
    # queued images set aside (a revisit, chosen by no model)
    queue = project.store.last_good_round() or latest
    return CommittedModel(trained, int(queue["id"]), state, queue["checkpoint"] == ckpt)


#: What a checkpoint of ``Project.save_checkpoint`` holds (a file without them is not one).
CHECKPOINT_KEYS = ("model", "normalizer", "classes", "model_name", "width", "image_shape")


def unreadable_model(project_dir: Path, rel: str, why: str) -> str:
    """The one line for a project's checkpoint that cannot be used: the file, why, the fix."""
    return (
        f"cannot read the latest model {Path(project_dir) / rel} ({why}); train a new one with "
        f"`fishermask label train {project_dir}`."
    )


def read_checkpoint(project_dir: Path, rel: str) -> dict[str, Any]:
    """The checkpoint ``rel`` of the project in ``project_dir`` (``Project.save_checkpoint``),
    read with ``torch.load(..., weights_only=True)``. Every caller that uses the project's
    model reads it here (``label predict``, ``label revisit``, ``label next``, ``label status
    --list``, the page), so a damaged, overwritten, cut short or missing file is the same
    one line everywhere (:func:`unreadable_model`, a :class:`DataError`), not a traceback."""
    path = Path(project_dir) / rel
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the safe unpickler raises many kinds on bad bytes
        raise DataError(unreadable_model(project_dir, rel, _load_error(exc))) from None
    missing = [k for k in CHECKPOINT_KEYS if k not in state] if isinstance(state, dict) else None
    if missing is None or missing:
        raise DataError(
            unreadable_model(project_dir, rel, "a PyTorch file, but not a labeling checkpoint")
        )
    return state


def _load_error(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in a few words: other bytes than a
    checkpoint make its unpickler raise a page of advice about ``weights_only`` (or a bare
    KeyError), which does not apply to a damaged file."""
    text = str(exc)
    if isinstance(exc, OSError) and text:  # missing, unreadable: the system's own words
        return text.splitlines()[0]
    if isinstance(exc, EOFError) or "central directory" in text:
        return "cut short: not a complete PyTorch checkpoint"
    return "not a PyTorch checkpoint: damaged or overwritten"


def build_classifier(
    name: str,
    num_classes: int,
    shape: Sequence[int],
    width: float,
    weights: dict[str, torch.Tensor],
) -> Classifier:
    """The architecture a checkpoint names, with its weights, in eval mode (the global random
    generator is left as it was: initialisation draws from it)."""
    if name == "linear":  # no width: older versions recorded any width and trained width 1
        width = 1.0
    with torch.random.fork_rng(devices=[]):
        model = build_model(name, num_classes, (int(shape[0]), int(shape[1]), int(shape[2])), width)
    model.load_state_dict(weights)
    model.eval()
    return model


def _classifier(state: dict[str, Any]) -> tuple[Classifier, Normalizer]:
    model = build_classifier(
        state["model_name"],
        len(state["classes"]),
        state["image_shape"],
        float(state["width"]),
        state["model"],
    )
    norm = Normalizer(tuple(state["normalizer"]["mean"]), tuple(state["normalizer"]["std"]))
    return model, norm


def committed_classifier(project: Project) -> tuple[CommittedModel, Classifier, Normalizer]:
    """The project's latest committed model (:func:`committed_model`) built and loaded, with
    its normalisation; a model of the project's own (``--import``) is imported first, as the
    round that trained it had it when the project's imports changed since."""
    model_info = committed_model(project)
    project.load_imports()
    if model_info.state["model_name"] not in available_models():  # registered by the imports
        # of the round that trained it (the project's may have changed since)
        label_imports.load(model_info.trained_round["settings"].get("imports"), str(project.dir))
    model, norm = _classifier(model_info.state)
    return model_info, model, norm


def probabilities(
    model: Classifier,
    norm: Normalizer,
    x: torch.Tensor,
    positions: Sequence[int],
    *,
    advance: Callable[[int], None] | None = None,
    batch: int = BATCH,
    num_classes: int | None = None,
) -> torch.Tensor:
    """Softmax probabilities ``[len(positions), C]`` of the images ``x[positions]`` (uint8
    ``[N, Ch, H, W]``), ``batch`` images per forward pass. ``num_classes``: the project's C,
    when the model has fewer outputs (trained before classes were added; those columns are
    0); default the model's."""
    c = model.num_classes if num_classes is None else max(num_classes, model.num_classes)
    out = torch.zeros(len(positions), c, dtype=torch.float32)
    for i in range(0, len(positions), batch):
        part = torch.as_tensor(positions[i : i + batch], dtype=torch.int64)
        probs, _ = predict(model, x[part], norm, batch_size=batch)
        out[i : i + len(part), : model.num_classes] = probs.cpu()
        if advance is not None:
            advance(len(part))
    return out


# -- held-out accuracy -----------------------------------------------------------------------
def held_out_summary(project: Project, trained_round: dict[str, Any], min_prob: float) -> dict:
    """How accurate the held-out predictions with a probability at or above ``min_prob`` were,
    for the round that trained the model: ``{"available": True, "round", "method",
    "min_prob", "n_held_out", "n_at_or_above", "correct", "accuracy", "low", "high"}``
    (accuracy and interval None when no held-out prediction reaches ``min_prob``), or
    ``{"available": False, "round", "why"}`` when that round has no stored held-out
    predictions (not estimated, still estimating, or estimated by an older fishermask)."""
    from fishermask.label.project import wilson

    rid = int(trained_round["id"])
    m = trained_round["metrics"]
    if m.get("estimating"):
        why = (
            f"round {rid}'s held-out estimate is still running; run this again when "
            f"`fishermask label status {project.dir}` shows its accuracy"
        )
        return {"available": False, "round": rid, "why": why}
    if m.get("accuracy") is None:
        method = m.get("method") or "not estimated"
        return {"available": False, "round": rid, "why": f"round {rid}'s accuracy was {method}"}
    rows = project.store.held_out(rid)
    if not rows:
        why = (
            f"round {rid} was estimated by an older fishermask, which did not store its "
            f"held-out predictions; the next `fishermask label train {project.dir}` stores them"
        )
        return {"available": False, "round": rid, "why": why}
    kept = [(y, p) for _, y, p, q in rows if round(q, DECIMALS) >= min_prob]
    correct = sum(y == p for y, p in kept)
    low, high = wilson(correct, len(kept)) if kept else (None, None)
    return {
        "available": True,
        "round": rid,
        "method": m.get("method"),
        "min_prob": min_prob,
        "n_held_out": len(rows),
        "n_at_or_above": len(kept),
        "correct": correct,
        "accuracy": correct / len(kept) if kept else None,
        "low": low,
        "high": high,
    }


def held_out_line(h: dict[str, Any]) -> str:
    """The held-out figure in one line (for stderr)."""
    if not h["available"]:
        return f"held-out: no figure for this model: {h['why']}."
    where = f"round {h['round']}, {h['method']}"
    if h["min_prob"] == 0:
        return (
            f"held-out: {100 * h['accuracy']:.1f} % [{100 * h['low']:.1f}, "
            f"{100 * h['high']:.1f}] of {h['n_held_out']} held-out images correct ({where}); "
            "with --min-prob P it says how accurate predictions at or above P were."
        )
    if not h["n_at_or_above"]:
        return (
            f"held-out: none of the {h['n_held_out']} held-out images has prob >= "
            f"{h['min_prob']:g}, so nothing was measured at this threshold ({where})."
        )
    return (
        f"held-out: {h['n_at_or_above']} of {h['n_held_out']} images have prob >= "
        f"{h['min_prob']:g}; {100 * h['accuracy']:.1f} % [{100 * h['low']:.1f}, "
        f"{100 * h['high']:.1f}] of them correct ({where})."
    )


# -- predictions on the project's images -----------------------------------------------------
@dataclass
class Predictions:
    """What :func:`predict_project` found."""

    model: CommittedModel
    which: str
    min_prob: float
    top: int
    classes: list[str]
    considered: int  # images of ``which`` (before ``min_prob``)
    added_since: list[str] = field(default_factory=list)  # classes the model has no output for
    rows: list[dict[str, Any]] = field(default_factory=list)  # by path
    held_out: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "model": {
                "round": self.model.round_id,
                "n_labels": self.model.n_labels,
                "queue_round": self.model.queue_round,
                "chose_batch": self.model.chose_batch,
                "architecture": self.model.state["model_name"],
                # classes added after it was trained: probability 0, never predicted
                "classes_added_since": self.added_since,
            },
            "images": self.which,
            "min_prob": self.min_prob,
            "top": self.top,
            "considered": self.considered,
            "held_out": self.held_out,
            "predictions": self.rows,
        }

    def csv_text(self) -> str:
        import io

        from fishermask.text import SpreadsheetCsv

        buf = io.StringIO()
        w = SpreadsheetCsv(buf)
        extra = [f"{k}_{i}" for i in range(2, self.top + 1) for k in ("prediction", "prob")]
        w.writerow(["path", "prediction", "prob", "label", *extra])
        for r in self.rows:
            more = [v for t in r["top"][1:] for v in (t["class"], t["prob"])]
            w.writerow([r["path"], r["prediction"], r["prob"], r["label"] or "", *more])
        return buf.getvalue()


def predict_project(
    project: Project,
    *,
    which: str = "all",
    min_prob: float = 0.0,
    top: int = 1,
    progress: bool = False,
) -> Predictions:
    """The latest committed model's predictions on the project's images (``which``: all,
    unlabeled — no current label, skipped and unsure included — or labeled), sorted by path;
    only those whose top probability is at least ``min_prob``. Each row: ``path`` (relative
    to the image folder), ``prediction``, ``prob``, ``top`` (the ``top`` most probable classes
    with their probabilities) and ``label`` (the image's current label, or None).

    Refused (:class:`ConfigError` / :class:`DataError`, one line) without a trained model, and
    while an image is missing or changed since it was scanned (:meth:`Project.check_intact`).
    """
    from fishermask.data.progress import progress_bar

    project.reload_classes()
    check_options(which, min_prob, top, len(project.current_classes))
    model_info, model, norm = committed_classifier(project)
    project.check_intact()
    x, ids = project.images()
    id_pos = {i: p for p, i in enumerate(ids)}
    labels = project.store.current_labels()
    rows = [
        r
        for r in sorted(project.store.images(), key=lambda r: r.path)
        if r.id in id_pos and (which == "all" or (which == "labeled") == (r.id in labels))
    ]
    positions = [id_pos[r.id] for r in rows]
    with progress_bar("predicting", len(rows), progress and len(rows) > 0) as advance:
        probs = probabilities(
            model, norm, x, positions, advance=advance, num_classes=len(project.classes)
        )  # [N, C]
    out = Predictions(
        model=model_info,
        which=which,
        min_prob=min_prob,
        top=top,
        classes=list(project.current_classes),
        considered=len(rows),
        added_since=added_since(project, model_info),
    )
    given = {r.path: labels.get(r.id) for r in rows}
    out.rows = _rows(project, [r.path for r in rows], probs, given, min_prob, top)
    out.held_out = held_out_summary(project, model_info.trained_round, min_prob)
    return out


def added_since(project: Project, model_info: CommittedModel) -> list[str]:
    """The current classes added after the model was trained (it has no output for them)."""
    return [
        c
        for i, c in enumerate(project.classes)
        if i >= model_info.num_classes and i not in project.removed
    ]


def _rows(
    project: Project,
    paths: Sequence[str],
    probs: torch.Tensor,
    given: dict[str, int | None],
    min_prob: float,
    top: int,
) -> list[dict[str, Any]]:
    """One prediction row per path (``probs`` ``[N, C]`` in the project's class ids; a
    removed class dropped and the rest renormalised), those whose top probability is below
    ``min_prob`` left out; ``given``: each path's current label id, if any."""
    removed = sorted(project.removed)
    if removed:  # a class removed since (label config --remove-class): dropped, renormalised
        probs = probs.clone()
        probs[:, removed] = 0.0
        probs /= probs.sum(dim=1, keepdim=True).clamp_min(1e-12)
    out: list[dict[str, Any]] = []
    if not len(paths):
        return out
    # the removed classes' columns sort last (below an added class's 0): top K (at most the
    # current classes) never names one
    ranked = probs.index_fill(1, torch.tensor(removed, dtype=torch.int64), -1.0)
    values, classes = ranked.topk(top, dim=1)  # [N, K]
    for path, pv, cv in zip(paths, values.tolist(), classes.tolist(), strict=True):
        best = [
            {"class": project.classes[c], "prob": round(p, DECIMALS)}
            for p, c in zip(pv, cv, strict=True)
        ]
        if best[0]["prob"] < min_prob:
            continue
        label = given.get(path)
        out.append(
            {
                "path": path,
                "prediction": best[0]["class"],
                "prob": best[0]["prob"],
                "top": best,
                "label": project.classes[label] if label is not None else None,
            }
        )
    return out


def predict_folder(
    project: Project,
    folder: str | os.PathLike[str],
    *,
    min_prob: float = 0.0,
    top: int = 1,
    progress: bool = False,
    unread: list[tuple[str, str]] | None = None,
) -> Predictions:
    """The latest committed model's predictions on the images of another ``folder`` (``label
    predict --folder``), found and decoded as ``label scan`` finds and decodes the project's
    (:func:`fishermask.label.images.candidate_files`, :func:`~fishermask.label.images.read_one`),
    so a file gets the probabilities its copy in the project gets. Rows as
    :func:`predict_project`'s, ``path`` relative to ``folder`` and ``label`` None; the files not
    read (path, why) are appended to ``unread``. Decoded and predicted :data:`BATCH` files at a
    time, so a large folder is not held in memory."""
    from fishermask.data.progress import progress_bar

    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"--folder {folder}: not a folder; give the folder of images to predict.")
    project.reload_classes()
    check_options("all", min_prob, top, len(project.current_classes))
    model_info, model, norm = committed_classifier(project)
    files, refused = imgs.candidate_files(root, once=": predicted once, as {keep}", to="predict it")
    skipped = list(refused)
    paths: list[str] = []
    parts: list[torch.Tensor] = []
    with progress_bar("predicting", len(files), progress and len(files) > 0) as advance:
        for i in range(0, len(files), BATCH):
            ok, found = [], []
            for rel in files[i : i + BATCH]:
                try:
                    found.append(
                        imgs.read_one(root, rel, project.image_size, project.channels, project.fit)
                    )
                    ok.append(rel)
                except DataError as exc:
                    skipped.append((rel, str(exc)))
            if ok:
                x = torch.from_numpy(np.stack([f.pixels for f in found]))
                parts.append(
                    probabilities(
                        model, norm, x, list(range(len(ok))), num_classes=len(project.classes)
                    )
                )
                paths += ok
            advance(len(files[i : i + BATCH]))
    probs = torch.cat(parts) if parts else torch.zeros(0, len(project.classes))
    if unread is not None:
        unread.extend(sorted(skipped))
    out = Predictions(
        model=model_info,
        which="folder",
        min_prob=min_prob,
        top=top,
        classes=list(project.current_classes),
        considered=len(paths),
        added_since=added_since(project, model_info),
    )
    out.rows = _rows(project, paths, probs, {}, min_prob, top)
    out.held_out = held_out_summary(project, model_info.trained_round, min_prob)
    return out


# -- the model as a folder -------------------------------------------------------------------
def export_model(project: Project, out: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the latest committed model to the folder ``out`` (new, empty, or an earlier
    model export, which it replaces): ``model.pt``
    (``{"model": state dict}``, loadable with ``torch.load(..., weights_only=True)``) and
    ``model.json`` (what :class:`LabelModel` needs to rebuild and feed it). Built beside the
    target, flushed to disk and renamed into place. Returns the contents of ``model.json``."""
    from fishermask import __version__
    from fishermask.label.project import _check_out_parent, check_export_folder

    out = Path(out)
    project.check_out_place(out)
    check_export_folder(out, "model")  # new, empty, or an earlier model export (replaced)
    _check_out_parent(out)
    cm = committed_model(project)
    state = cm.state
    m = cm.trained_round["metrics"]
    estimate = (
        {k: m.get(k) for k in ("accuracy", "low", "high", "n_eval", "method")}
        if m.get("accuracy") is not None
        else None
    )
    if estimate is not None:
        why = None
    elif m.get("estimating"):
        why = (
            f"round {cm.round_id}'s accuracy was still being estimated when this was exported; "
            "export again when `fishermask label status` shows it"
        )
    else:
        why = m.get("method") or "not estimated"
    channels, h, w = (int(v) for v in state["image_shape"])
    fit = str(state.get("fit", imgs.LEGACY_FIT))  # a checkpoint written before fits: stretch
    project.reload_classes()
    n_out = len(state["classes"])
    # a class removed since it was trained (label config --remove-class): its output is cut
    # from the final layer, so the exported model has the current classes' outputs only and
    # never names it (the project's own model keeps the output, at probability 0)
    keep = [i for i in range(n_out) if i not in project.removed]
    weights = state["model"]
    if len(keep) < n_out:
        idx = torch.tensor(keep)
        weights = dict(weights)
        for k in ("classifier.weight", "classifier.bias"):
            if k in weights:
                weights[k] = weights[k].index_select(0, idx)
    info = {
        "format": MODEL_FORMAT,
        "format_version": 1 if fit == "stretch" else 2,
        "architecture": state["model_name"],
        "width": float(state["width"]),
        # the project's names now (a class renamed since the training is named as it is now;
        # classes keep their ids): the model's outputs are the project's first classes
        "classes": [project.classes[i] for i in keep],
        # classes of the project the model has no output for (added after it was trained)
        "classes_added_since": [
            c for i, c in enumerate(project.classes) if i >= n_out and i not in project.removed
        ],
        "image_size": [h, w],
        "fit": fit,
        "channels": channels,
        "normalizer": {
            "mean": list(state["normalizer"]["mean"]),
            "std": list(state["normalizer"]["std"]),
            "units": "pixel / 255, per channel: (x / 255 - mean) / std",
        },
        "decoding": (
            "EXIF orientation applied; 16/32-bit grey scaled to 0..255, float images in [0, 1] "
            "scaled; transparency composited on white; converted to "
            + ("L (grey)" if channels == 1 else "RGB")
            + f"; {FIT_WORDS[fit].format(h=h, w=w)}; a JPEG file is decoded at a reduced "
            "scale first when it is large (PIL draft)"
        ),
        "round": cm.round_id,
        "n_labels": cm.n_labels,
        "held_out_accuracy": estimate,
        "held_out_why": why,  # why held_out_accuracy is null (else null)
        "project": str(project.dir.resolve()),
        "project_id": project.settings.get("project_id"),
        # the --import entries of the round that trained it, with the SHA-256 of each file it
        # imported: the loader imports them when the architecture is not registered
        "imports": [
            {
                **spec,
                "sha256": (cm.trained_round["settings"].get("import_sha256") or {}).get(
                    spec.get("path") or ""
                ),
            }
            for spec in cm.trained_round["settings"].get("imports") or []
        ],
        "fishermask_version": __version__,
        "exported": utc_iso(),
    }
    from fishermask.label.project import new_folder

    # all of it or nothing, also after a crash
    with new_folder(out, durable=True, replaces="model") as tmp:
        with open(tmp / "model.pt", "wb") as f:
            torch.save({"model": weights}, f)
            _to_disk(f)
        info["weights_sha256"] = imgs.file_sha256(tmp / "model.pt")
        info[DESCRIPTION_KEY] = description_sha256(info)
        with open(tmp / "model.json", "w") as f:
            f.write(json.dumps(info, indent=1) + "\n")
            _to_disk(f)
    return info


def _to_disk(f: Any) -> None:
    f.flush()
    os.fsync(f.fileno())


class LabelModel:
    """A model exported by ``fishermask label export --format model``, usable without the
    project (:func:`fishermask.label.load_model`).

    ``predict_proba(images)`` returns the class probabilities ``[N, C]`` (``classes`` gives
    the order) and ``predict(images)`` the most probable class names. ``images`` is one image
    or a sequence of them, each a file path, the bytes of an image file (decoded as the file
    would be), a PIL image or a uint8 array ``H x W`` (grey) or
    ``H x W x Ch`` (Ch 1, 3 or 4, channels last as PIL and NumPy write them); a 4-D uint8
    array is a batch ``N x H x W x Ch``. Each is decoded as the project decodes its images
    (EXIF orientation, mode conversion, bilinear resize to ``image_size`` as ``fit`` says) and
    normalised with the project's statistics. A file path gets exactly the project's decoding; a PIL
    image opened by the caller misses one step of it: a large JPEG file is decoded by the
    project at a reduced scale before the resize, which changes the pixels slightly.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        meta = self.folder / "model.json"
        try:
            info = json.loads(meta.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"{self.folder} is not an exported model (cannot read {meta}: {exc}); write one "
                "with `fishermask label export PROJECT --format model --out DIR`."
            ) from None
        if not isinstance(info, dict) or info.get("format") != MODEL_FORMAT:
            raise ConfigError(f"{meta} is not a {MODEL_FORMAT} description.")
        if int(info.get("format_version", 0)) > MODEL_FORMAT_VERSION:
            raise ConfigError(
                f"{meta} was written by a newer fishermask (format version "
                f"{info['format_version']}); upgrade fishermask to load it."
            )
        # an edited model.json (classes reordered, another normaliser) would load silently
        # and name the predictions wrongly; absent in exports of older fishermask versions
        recorded = info.get(DESCRIPTION_KEY)
        if recorded is not None and recorded != description_sha256(info):
            raise ConfigError(
                f"{meta} was changed after the export (its content no longer matches its "
                f"{DESCRIPTION_KEY}; e.g. classes reordered would name the predictions wrongly)"
                ": use the model.json and model.pt of one export unchanged, or export again "
                "(`fishermask label export PROJECT --format model --out DIR`)."
            )
        self.info: dict[str, Any] = info
        self.classes: list[str] = list(info["classes"])
        self.image_size: tuple[int, int] = (int(info["image_size"][0]), int(info["image_size"][1]))
        self.channels: int = int(info["channels"])
        # how images are fitted to image_size; absent in exports before fits: stretch
        self.fit: str = imgs.check_fit(str(info.get("fit", imgs.LEGACY_FIT)), f"{meta}: fit")
        pt = self.folder / "model.pt"
        # a model.pt of another export (or a checkpoint) with the same shapes would load and
        # predict silently under this model.json's classes and normaliser
        want = info.get("weights_sha256")  # absent in exports of older fishermask versions
        if want is not None and pt.is_file() and imgs.file_sha256(pt) != want:
            raise ConfigError(
                f"{pt} is not the file this model.json was exported with (its SHA-256 differs):"
                " copy model.json and model.pt of one export together."
            )
        try:
            weights = torch.load(pt, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - bad bytes raise many kinds (see above)
            raise ConfigError(f"cannot read {pt} ({_load_error(exc)}).") from None
        self._import_architecture(info, meta)
        try:
            self.model = build_classifier(
                info["architecture"],
                len(self.classes),
                (self.channels, *self.image_size),
                float(info["width"]),
                weights["model"],
            )
        except (KeyError, TypeError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"the weights in {pt} do not fit the architecture {meta} describes ({first}); "
                "copy model.json and model.pt of one export together."
            ) from None
        norm = info["normalizer"]
        self.normalizer = Normalizer(tuple(norm["mean"]), tuple(norm["std"]))

    @staticmethod
    def _import_architecture(info: dict[str, Any], meta: Path) -> None:
        """A model of your own (``label init --import``): import the files or modules
        model.json records unless this process has registered the architecture already."""
        name = info.get("architecture")
        specs = info.get("imports") or []
        if name in available_models() or not specs:
            return
        gone = [s["path"] for s in specs if s.get("path") and not Path(s["path"]).is_file()]
        if gone:
            raise ConfigError(
                f"{meta}: its model {name!r} is registered by {gone[0]}, which is gone: put "
                "that file back, or import the module that registers the model (register_model"
                f"({name!r}, ...)) before fishermask.label.load_model."
            )
        label_imports.load(specs)
        if name not in available_models():
            raise ConfigError(
                f"{meta}: its model {name!r} is not registered by "
                f"{label_imports.names(specs)}; import the module that registers it "
                "(register_model) before fishermask.label.load_model."
            )

    def __repr__(self) -> str:
        h, w = self.image_size
        return (
            f"LabelModel({self.info['architecture']}, {len(self.classes)} classes, "
            f"{self.channels}x{h}x{w}, round {self.info.get('round')})"
        )

    def pixels(self, image: Any) -> np.ndarray:
        """One image as the model takes it: ``[Ch, H, W]`` uint8."""
        from PIL import Image, UnidentifiedImageError

        from fishermask.data.images import BOMBS, bombs_refused, too_large

        if isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)):
            try:
                if isinstance(image, (str, os.PathLike)):
                    data = Path(image).read_bytes()
                else:  # the bytes of an image file
                    data, image = bytes(image), f"image bytes ({len(image)} bytes)"
                arr, _, _ = imgs.decode(data, self.image_size, self.channels, self.fit)
            except OSError as exc:
                if isinstance(exc, UnidentifiedImageError):
                    raise DataError(f"{image}: not a readable image.") from None
                raise DataError(f"{image}: {exc.strerror or exc}.") from None
            except BOMBS as exc:
                raise DataError(f"{image}: {too_large(exc)}.") from None
            except (ValueError, SyntaxError) as exc:
                raise DataError(f"{image}: {exc}.") from None
            return arr
        if isinstance(image, Image.Image):
            with bombs_refused():
                image.load()
            return imgs.prepare(image, self.image_size, self.channels, self.fit)
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8:
                raise ConfigError(
                    f"an image array must be uint8 (0..255), not {image.dtype}; convert it, "
                    "e.g. (a * 255).round().astype(np.uint8) for floats in [0, 1]."
                )
            if image.ndim == 3 and image.shape[2] == 1:
                image = image[:, :, 0]
            if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4)):
                img = Image.fromarray(np.ascontiguousarray(image))  # L, RGB or RGBA
            else:
                raise ConfigError(
                    f"an image array of shape {image.shape}: use H x W (grey) or H x W x Ch "
                    "with Ch 1, 3 or 4 (channels last), or N x H x W x Ch for a batch."
                )
            return imgs.prepare(img, self.image_size, self.channels, self.fit)
        raise ConfigError(
            f"cannot predict on a {type(image).__name__}: give a file path, the bytes of an "
            "image file, a PIL image or a uint8 array (or a list of them)."
        )

    def _items(self, images: Any) -> list[Any]:
        from PIL import Image

        if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)):
            return [images]
        if isinstance(images, np.ndarray):
            return list(images) if images.ndim == 4 else [images]
        if isinstance(images, Iterable):
            return list(images)
        return [images]

    def predict_proba(self, images: Any, *, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``[N, C]`` (float32) of ``images`` (see the class docstring)."""
        items = self._items(images)
        out = np.empty((len(items), len(self.classes)), dtype=np.float32)
        for i in range(0, len(items), batch_size):
            part = items[i : i + batch_size]
            x = torch.from_numpy(np.stack([self.pixels(im) for im in part]))
            probs, _ = predict(self.model, x, self.normalizer, batch_size=batch_size)
            out[i : i + len(part)] = probs.cpu().numpy()
        return out

    def predict(self, images: Any, *, batch_size: int = 256) -> list[str]:
        """The most probable class name of each image."""
        probs = self.predict_proba(images, batch_size=batch_size)
        return [self.classes[int(k)] for k in probs.argmax(1)]


def load_model(folder: str | os.PathLike[str]) -> LabelModel:
    """Load a model written by ``fishermask label export PROJECT --format model --out DIR``."""
    return LabelModel(folder)
