"""``fishermask label``: label your own images (project, headless commands, web page)."""

from __future__ import annotations

import json
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from fishermask.cli_help import APP_SETTINGS
from fishermask.errors import ConfigError, FishermaskError
from fishermask.label.check import FOLDS
from fishermask.label.store import RoundBusy
from fishermask.text import AND_MORE_APART, counted, did_you_mean, listed, utc_iso

label_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Label your own images: the model shows the most useful ones first.",
    pretty_exceptions_enable=False,
    **APP_SETTINGS,
)
console = Console()
err = Console(stderr=True)

ProjectArg = Annotated[Path, typer.Argument(help="The project folder.")]


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _check_format(format: str | None) -> None:
    """Refuse a ``--format`` of a listing other than csv or json (None: not given)."""
    if format is not None and format not in ("csv", "json"):
        _fail(did_you_mean(f"--format {format!r}: use csv or json.", format, ("csv", "json")))


def _say(message: str) -> None:
    err.print(message, highlight=False, soft_wrap=True)


def _open(project: Path) -> Any:
    from fishermask.label.project import Project

    return Project(project)


def _busy(round_id: int) -> None:
    _fail(
        f"a retrain is already running (round {round_id}, from `label serve` or another "
        "command); wait for it to finish."
    )


def _interrupted(p: Any, command: str) -> None:
    """Ctrl-C in a round of ``label train``/``label next``: say what it left (the round is
    marked interrupted, or, when the batch was already committed, only its accuracy estimate
    was cut short), exit 130. It used to end without a word."""
    if p is None:
        _fail("interrupted before anything was started.", 130)
    try:
        last = p.store.rounds()[-1]
    except Exception:  # noqa: BLE001 - the message must not hide the exit
        last = None
    if last is not None and last["status"] == "done":
        _fail(
            f"interrupted: round {last['id']}'s batch is queued, its accuracy estimate was cut "
            "short (recorded as not estimated); every label is kept.",
            130,
        )
    which = f"round {last['id']}" if last is not None else "the round"
    _fail(
        f"interrupted: {which} was not committed (marked interrupted); every label is kept and "
        f"the batch queued before is unchanged; run `fishermask label {command} {p.dir}` again.",
        130,
    )


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--image-size {text!r}: use HxW, e.g. 32x32.") from None
    return h, w


_BUDGET_HELP = (
    "How many labels you plan to give (shown against the labels on the page): refused below "
    "the labels already given or above the number of images."
)


_IMPORT_HELP = (
    "A .py file or module name imported first (repeatable or comma list): your own model "
    "(fishermask.models.register_model) or strategy (@register), then usable with --model / "
    "--strategy. Stored in the project; every command, the server and the round's worker "
    "import it."
)


def _class_names(text: str) -> str | list[str]:
    """``--classes``: the comma list as given, or the names in ``@FILE`` (one per line, blank
    lines and ``#`` lines left out; a comma in a line is refused, as in the list)."""
    if not text.startswith("@"):
        return text
    path = Path(text[1:]).expanduser()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        _fail(
            f"--classes {text}: cannot read {path} ({exc.strerror or exc}); give the class names, one per line, in a text file."
        )
    try:
        lines = raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        _fail(
            f"--classes {text}: {path} is not UTF-8 text; save it as UTF-8, one class name per line."
        )
    names = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    bad = next((n for n in names if "," in n), None)
    if bad is not None:
        _fail(
            f"--classes {text}: {bad!r} holds a comma; give one class name per line, without commas."
        )
    if not names:
        _fail(f"--classes {text}: {path} names no class; give one class name per line.")
    return names


@label_app.command(
    short_help="Create a project from a folder of images and queue a first, diverse batch.",
)
def init(
    project: ProjectArg,
    images: Annotated[
        Path, typer.Option(metavar="DIR", help="Folder of images (read recursively).")
    ],
    classes: Annotated[
        str,
        typer.Option(
            metavar="NAME,NAME,...|@FILE",
            help="Class names, comma separated: cat,dog,bird (each once, also ignoring case: "
            "not Cat and cat); or @FILE: a text file of one name per line (blank lines and "
            "lines starting with # left out).",
        ),
    ],
    labels: Annotated[
        Path | None,
        typer.Option(
            help="CSV `path,label` of labels you already have (a set_aside column, as `label "
            "export --format csv --set-aside` writes it, sets images skipped or unsure)."
        ),
    ] = None,
    labels_from_folders: Annotated[
        bool,
        typer.Option(
            "--labels-from-folders",
            help="Label each image in a top-level folder named as a class (cat/a.jpg, "
            "cat/2021/b.jpg) with that class; the others stay unlabeled, said with the "
            "folders not named as a class. Byte-for-byte copies in two classes' folders are "
            "not labeled, and listed.",
        ),
    ] = False,
    image_size: Annotated[str, typer.Option(metavar="HxW", help="Model input size HxW.")] = "32x32",
    fit: Annotated[
        str,
        typer.Option(
            metavar="pad|crop|stretch",
            help="How an image of another aspect is fitted to HxW: pad (keep the aspect, fill "
            "the rest with the image's mean colour), crop (keep the aspect, cut the ends of "
            "the longer side off) or stretch (resize to HxW, distorting it). Fixed for the "
            "project.",
        ),
    ] = "pad",
    model: Annotated[
        str,
        typer.Option(
            metavar="NAME", help="cnn, resnet18, mlp, linear, or one of your own (--import)."
        ),
    ] = "cnn",
    width: Annotated[float, typer.Option(help="Width multiplier of the model.")] = 1.0,
    strategy: Annotated[
        str,
        typer.Option(
            metavar="NAME[:KEY=VALUE,...]", help="Query strategy, with options as name:key=value."
        ),
    ] = "fishermask",
    batch: Annotated[int, typer.Option(help="Images per batch.")] = 50,
    budget: Annotated[int | None, typer.Option(help=_BUDGET_HELP)] = None,
    min_per_class: Annotated[
        int, typer.Option(help="Cold start (diverse batches) until every class has this many.")
    ] = 3,
    max_epochs: Annotated[int, typer.Option(help="Epoch cap per training.")] = 50,
    max_steps: Annotated[
        int, typer.Option(help="Optimizer-step cap per training (0: none).")
    ] = 300,
    query_pool: Annotated[
        int,
        typer.Option(
            help="Unseen images the strategy scores per batch, drawn at random (0: all); "
            "bounds the time of 'next batch'."
        ),
    ] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    cache_dir: Annotated[Path | None, typer.Option(help="Where decoded images are cached.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    imports: Annotated[
        list[str] | None, typer.Option("--import", metavar="MODULE|FILE.py", help=_IMPORT_HELP)
    ] = None,
) -> None:
    """Create a project: scan the images, import labels, queue a first (diverse) batch."""
    from fishermask.label.imports import parse_entries
    from fishermask.label.project import Project

    p = None
    try:
        p = Project.init(
            project,
            images,
            _class_names(classes),
            image_size=_size(image_size),
            fit=fit,
            model=model,
            width=width,
            strategy=strategy,
            batch=batch,
            budget=budget,
            min_per_class=min_per_class,
            seed=seed,
            max_epochs=max_epochs,
            max_steps=max_steps,
            query_pool=query_pool,
            cache_dir=cache_dir,
            say=_say,
            progress=progress,
            labels=labels,
            imports=parse_entries(imports),
            labels_from_folders=labels_from_folders,
        )
        row = p.run_round(train_model=False)
        c = p.counts()
    except KeyboardInterrupt:
        if p is None:  # Project.init removes what it made
            _fail(
                f"interrupted: no project was made in {project}; run the same command again.", 130
            )
        _fail(
            f"interrupted while choosing the first batch: the project {project} is made "
            f"({counted(p.store.num_images(), 'image')}); `fishermask label next {project}` chooses it "
            f"(`fishermask label serve {project}` does too, as it starts).",
            130,
        )
    except FishermaskError as e:
        _fail(str(e))
    grey = " (greyscale: every one is grey, so the project is 1 channel)" * (p.channels == 1)
    console.print(
        f"project {project}: {counted(c['images'], 'image')}{grey}, {len(p.classes)} classes, "
        f"{counted(c['labeled'], 'label')}; first batch of {len(p.store.queue())} queued ({row['mode']}).",
        highlight=False,
        soft_wrap=True,
    )
    if note := p.copies_note():
        _say(note)
    if not labels_from_folders:
        _say_class_folders(p, project)
    per_class = list(c["per_class"].values())
    if min(per_class) >= p.settings["min_per_class"] and sum(k > 0 for k in per_class) >= 2:
        # labels given with --labels are enough for a model: without one, the first batch
        # was only diverse; `label train` makes the batch the strategy's choice on it
        console.print(
            f"next: fishermask label train {project} (a model on the {counted(c['labeled'], 'label')} "
            "given, and a batch chosen with it), then fishermask label serve "
            f"{project}",
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(f"next: fishermask label serve {project}", highlight=False, soft_wrap=True)


def _say_class_folders(p: Any, project: Path) -> None:
    """After `label init`: the images without a label that lie in top-level folders named as
    classes (a folder sorted already, the ImageFolder layout), with the command that labels
    them by their folder; nothing when there are none."""
    names = set(p.current_classes)
    current = p.store.current()
    paths = [
        r.path
        for r in p.store.images()
        if r.id not in current and "/" in r.path and r.path.split("/", 1)[0] in names
    ]
    if not paths:
        return
    folders = sorted({f"{path.split('/', 1)[0]}/" for path in paths})
    shown = ", ".join(folders[:5]) + (f" and {len(folders) - 5} more" if len(folders) > 5 else "")
    _say(
        f"note: {counted(len(paths), 'image')} {'lies' if len(paths) == 1 else 'lie'} in "
        f"folders named as classes ({shown}): if the folders are their labels, `fishermask "
        f"label add {project} --from-folders` gives them (or `label init --labels-from-folders`)"
    )


@label_app.command(
    short_help="Add images that appeared in the folder; follow moved ones; list changed and missing ones.",
)
def scan(
    project: ProjectArg,
    accept_changed: Annotated[
        bool,
        typer.Option(
            help="Take the new content of images that changed since they were scanned; "
            "their labels are cleared (history kept), so they are labeled again."
        ),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            help="Hash every image (by default only those whose size or modification time changed)."
        ),
    ] = False,
    forget_missing: Annotated[
        bool,
        typer.Option(
            help="Remove the images that went missing from the project for good (their labels "
            "go with them; kept for the record in the forgotten_images table); refused while "
            "a round is running."
        ),
    ] = False,
    progress: Annotated[bool, typer.Option()] = True,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="List every file not added, also those an earlier scan listed (unchanged "
            "since; by default they are one line with their count), and every image moved, one "
            "line each (by default more than three moved from one folder to another are one).",
        ),
    ] = False,
) -> None:
    """Add images that appeared in the image folder since the last scan (labels untouched); follow images moved or renamed inside the folder (found by their content: they keep their labels); report images that changed or went missing since they were scanned."""
    try:
        p = _open(project)
        if forget_missing:
            p.recover()  # a round whose process died is not running
        if not forget_missing:  # --forget-missing refuses this case on its own
            _refuse_lost_folder(p)
        if p.root_note is not None:
            _say(f"note: {p.root_note}")
        check = p.check_files(verify=verify)
        # a missing image whose content is now a new file of the folder was moved or renamed:
        # it keeps its label (before --forget-missing, which would drop it)
        moved = p.follow_moves(check.missing)
        paths = set(p.store.image_ids_by_path())  # whether a folder moved whole
        gone_ids = {r.id for r, _ in moved}
        check.missing = [r for r in check.missing if r.id not in gone_ids]
        forgotten: list[dict[str, Any]] = []
        if forget_missing and check.missing:
            forgotten = p.forget_missing(check.missing)
            check.missing = []  # forgotten, or back in the folder since the check
        accepted: list[tuple[str, str | None]] = []
        unreadable_now: list[tuple[str, str]] = []
        changed = check.changed
        if accept_changed and changed:
            accepted, unreadable_now = p.accept_changed(changed)
            taken = {path for path, _ in accepted}
            changed = [r for r in changed if r.path not in taken]
        from fishermask.label.store import SCAN_REFUSED

        before = p.store.get_meta(SCAN_REFUSED) or {}  # the files the last scan did not add
        added, unreadable = p.scan(progress=progress)
    except FishermaskError as e:
        _fail(str(e))
    from fishermask.label.images import refused_lines, refused_stats

    # a file not added at the last scan, unchanged since, was listed then: one line for them
    # all (every scan listed the same files again), unless --verbose
    now = refused_stats(p.root, (rel for rel, _ in unreadable))
    known = [] if verbose else [x for x in unreadable if before.get(x[0]) == now.get(x[0], 0)]
    new = [x for x in unreadable if x not in known]
    for line in refused_lines(new, "not added"):
        _say(line)
    if known:
        _say(
            f"not added {counted(len(known), 'file')}{' more' if new else ''} that the last scan did not "
            f"add either (unchanged since; listed then): `fishermask label scan {project} "
            "--verbose` lists them again."
        )
    labels = p.store.current_labels()
    followed = [(r.path, path, r.id in labels and p.classes[labels[r.id]]) for r, path in moved]
    for line in _moved_lines(followed, paths, verbose):
        _say(line)
    for path, cls in accepted:
        _say(
            f"changed: {path}: new content taken; "
            + (
                f"its label {cls!r} was cleared (label it again, or add it back with "
                "`fishermask label add`)"
                if cls is not None
                else "it had no label"
            )
        )
    for rel, why in unreadable_now:
        _say(
            f"changed: {rel}: its new content cannot be read ({why}); restore the original, "
            f"or, if it is lost, delete the file and forget the image with `fishermask label "
            f"scan {project} --forget-missing` (its label goes with it)"
        )
    cannot = {rel for rel, _ in unreadable_now}
    for r in changed:
        if r.path in cannot:
            continue
        had = f" (labeled {p.classes[labels[r.id]]!r})" if r.id in labels else ""
        _say(
            f"changed: {r.path}{had} differs from the image that was scanned; restore the "
            f"original, or take the new content with `fishermask label scan {project} "
            "--accept-changed`" + (" (its label is cleared)" if had else "")
        )
    if changed:
        _say(
            f"{counted(len(changed), 'changed image')}: until each is restored or accepted, label "
            "train, label next and the page's next batch refuse, the page does not show them, "
            "and label export refuses while one of them is labeled."
        )
    shown = 10
    if forget_missing:
        _say_forgotten(forgotten, shown)
    missing = sorted(check.missing, key=lambda r: (r.id not in labels, r.path))  # labeled first
    for r in missing[:shown]:
        _say(f"missing: {r.path} (scanned earlier; no longer a file in the image folder)")
    if len(missing) > shown:
        _say(f"missing: ... and {len(missing) - shown} more")
    if missing:
        n_lab = sum(r.id in labels for r in missing)
        _say(
            f"{counted(len(check.missing), 'missing image')}, {n_lab} of them labeled: their labels are "
            "kept; until they are restored or forgotten, label train, label next, the page's "
            "next batch and the labelstudio and npz exports refuse, the imagefolder export "
            "refuses while one of them is labeled, and the csv export still lists their "
            "labels. If they are gone for good: `fishermask label scan "
            f"{project} --forget-missing` (their labels go with them)."
        )
    console.print(
        f"{counted(added, 'new image')} ({p.store.num_images()} in all); {len(unreadable)} not added, "
        f"{len(check.missing)} missing, {len(changed)} changed"
        + (f", {len(moved)} moved" if moved else "")
        + (f", {len(accepted)} changed images taken" if accepted else "")
        + (f", {len(forgotten)} forgotten" if forgotten else "")
        + ".",
        highlight=False,
        soft_wrap=True,
    )
    if added and (note := p.copies_note()):
        _say(note)
    if colour := p.colour_added:
        is_ = "is" if len(colour) == 1 else "are"
        _say(
            f"{len(colour)} of the {added} new images {is_} in colour ({colour[0]}"
            f"{', ...' if len(colour) > 1 else ''}), but this project is greyscale (its images "
            "were all grey when it was made, and its channels are fixed): they are read as "
            "grey. To keep colour, export the labels (`fishermask label export "
            f"{project} --format csv --out labels.csv`) and make a new project of the folder "
            "with `label init ... --labels labels.csv`."
        )


def _refuse_lost_folder(p: Any) -> None:
    """One line, not a "missing" line per image, when the image folder itself is gone
    (deleted, moved or not mounted) or an empty mount point where every image is missing."""
    root = p.root
    n = p.store.num_images()
    if root.is_dir():
        if n == 0 or any(True for _ in root.iterdir()):
            return
        what = f"the image folder {root} is empty and every image of the project ({n}) is missing"
    else:
        what = f"the image folder {root} is missing"
    _fail(
        f"{what}: is it moved, renamed or not mounted? Mount or restore it at that path and "
        "scan again, or, if it now lies elsewhere, point the project at it with `fishermask "
        f"label config {p.dir} --images NEW`; nothing was scanned, the labels are kept."
    )


def _say_forgotten(forgotten: list[dict[str, Any]], shown: int) -> None:
    """The lines of ``label scan --forget-missing``: each image forgotten (labeled first, the
    first ``shown``), then what went with them."""
    if not forgotten:
        _say("nothing to forget: no image of the project is missing.")
        return
    what = {"skip": "skipped", "unsure": "marked unsure", None: "unlabeled"}
    order = sorted(forgotten, key=lambda g: (g["kind"] != "label", g["path"]))
    for g in order[:shown]:
        state = (
            f"labeled {g['label']!r}: its label goes with it"
            if g["kind"] == "label"
            else what.get(g["kind"], str(g["kind"]))
        )
        _say(f"forgot: {g['path']} ({state})")
    if len(order) > shown:
        _say(f"forgot: ... and {len(order) - shown} more")
    n_lab = sum(g["kind"] == "label" for g in forgotten)
    _say(
        f"{counted(len(forgotten), 'missing image')} forgotten for good, {n_lab} of them labeled"
        + (
            ": their labels left the project with them (kept for the record in the "
            "forgotten_images table of project.sqlite; the latest model, trained with them, "
            "is replaced at the next retrain)"
            if n_lab
            else ""
        )
        + "; label train, label next, the page's next batch and the exports work again (a "
        "file that comes back is added by `label scan` as a new, unlabeled image)."
    )


def _moved_lines(
    moved: list[tuple[str, str, str | bool]], paths: Collection[str], verbose: bool = False
) -> list[str]:
    """``label scan``'s lines for the images it followed (``(old, new, label or False)``;
    ``paths``: every image's path once they moved): one per image, but one per folder renamed
    or moved whole when more than three of its images moved with it (``Ship/`` renamed
    ``ship/`` was one line per image), and one per folder that more than three images of
    another (or of the top of the image folder) moved to, with the first of their names
    (each was a line of its own); ``verbose``: one per image."""
    groups: dict[tuple[str, str], list[tuple[str, str, str | bool]]] = {}
    for old, new, label in moved:
        a, b = old.split("/"), new.split("/")
        k = 0  # the path components both end with (the file name, at least, in a folder)
        while k < min(len(a), len(b)) - 1 and a[-1 - k] == b[-1 - k]:
            k += 1
        if not k and a[-1] == b[-1]:  # a file of the top moved into a folder, or back
            k = 1
        key = ("/".join(a[: len(a) - k]), "/".join(b[: len(b) - k])) if k else (old, new)
        groups.setdefault(key, []).append((old, new, label))
    lines = []
    for (src, dst), items in groups.items():
        if not verbose and len(items) > 3 and (src, dst) != (items[0][0], items[0][1]):
            n_lab = sum(bool(label) for _, _, label in items)
            labeled = (
                f"{n_lab} of them labeled: their labels follow them" if n_lab else "none labeled"
            )
            if src and dst and not any(p.startswith(f"{src}/") for p in paths):  # whole
                lines.append(
                    f"moved: {src}/ -> {dst}/ ({counted(len(items), 'image')}, the same "
                    f"content; {labeled})"
                )
                continue
            names = sorted(old[len(src) + 1 if src else 0 :] for old, _, _ in items)
            lines.append(
                f"moved: {counted(len(items), 'image')} from "
                f"{f'{src}/' if src else 'the top of the image folder'} to "
                f"{f'{dst}/' if dst else 'the top of the image folder'} (the same content; "
                f"{labeled}): {listed(names, 3)}"
            )
            continue
        for old, new, label in items:
            lines.append(
                f"moved: {old} -> {new} (the same content"
                + (f"; labeled {label!r}, its label follows it)" if label else ")")
            )
    return lines


@label_app.command("next", short_help="Choose the next batch with the current model and print it.")
def next_batch(
    project: ProjectArg,
    n: Annotated[
        int | None, typer.Option("--n", help="Batch size (default: the project's).")
    ] = None,
    format: Annotated[
        str, typer.Option("--format", metavar="csv|json", help="csv or json.")
    ] = "csv",
    out: Annotated[
        Path | None, typer.Option(help="Write to this file instead of stdout (-: stdout).")
    ] = None,
) -> None:
    """Choose the next batch with the project's strategy on the current model, and print it.

    The new batch replaces the one queued before: the labeling page shows it from its next load (labels already given are kept)."""
    import io

    from fishermask.text import SpreadsheetCsv

    if out is not None and str(out) == "-":
        out = None  # standard output, as without --out
    _check_format(format)
    if n is not None and n < 1:
        _fail(f"--n {n}: must be >= 1.")
    p = None
    try:
        if out is not None:  # before the batch is chosen (and replaces the queued one)
            from fishermask.label.project import check_out_file

            check_out_file(out)
        p = _open(project)
        if out is not None:
            p.check_out_place(out)
        p.recover()
        p.check_intact()  # before a round starts (and fails on them)
        p.load_imports()  # likewise: a --import file that is gone is one line, no round
        p.check_model()  # and a damaged checkpoint of the model it queries with
        was = [it for it in p.batch() if it["state"] is None]
        row = p.run_round(train_model=False, n=n)
    except KeyboardInterrupt:
        _interrupted(p, "next")
    except RoundBusy as busy:
        _busy(busy.args[0])
    except FishermaskError as e:
        _fail(str(e))
    items = p.batch()
    _say(
        f"{counted(len(items), 'image')} ({row['mode']}); this is now the labeling page's batch"
        + (
            f": it replaced the one queued before ({len(was)} of its images unlabeled)"
            if was
            else ""
        )
    )
    if hint := p.new_files_hint():
        _say(hint)
    if format == "json":
        text = json.dumps(
            [
                {
                    "path": it["path"],
                    "rank": it["rank"],
                    "score": it["score"],
                    "guess": it["guesses"][0]["label"] if it["guesses"] else None,
                    "guess_prob": it["guesses"][0]["prob"] if it["guesses"] else None,
                }
                for it in items
            ],
            indent=1,
        )
    else:
        buf = io.StringIO()
        w = SpreadsheetCsv(buf)
        w.writerow(["path", "rank", "score", "guess", "guess_prob"])
        for it in items:
            g = it["guesses"][0] if it["guesses"] else {}
            w.writerow(
                [
                    it["path"],
                    it["rank"],
                    it["score"] if it["score"] is not None else "",
                    g.get("label", ""),
                    g.get("prob", ""),
                ]
            )
        text = buf.getvalue().rstrip("\n")
    if out is None:
        sys.stdout.write(text + "\n")
    else:
        from fishermask.experiments.store import write_atomic

        write_atomic(out, lambda f: f.write((text + "\n").encode()))
        _say(f"wrote {out}")


@label_app.command(
    short_help="Add labels (or fixes) from a `path,label` CSV, or from class-named folders.",
)
def add(
    project: ProjectArg,
    labels: Annotated[
        Path | None,
        typer.Argument(
            help="CSV with columns path,label (and set_aside: skipped or unsure on a row with "
            "an empty label, as `label export --format csv --set-aside` writes it).",
            show_default=False,
        ),
    ] = None,
    from_folders: Annotated[
        bool,
        typer.Option(
            "--from-folders",
            help="Instead of a CSV: label each image without a label, skip or unsure that "
            "lies in a top-level folder named as a class with that class (images added by "
            "`label scan`); labels given are never changed, and those that differ from their "
            "folder are counted. Byte-for-byte copies in two classes' folders are not labeled, "
            "and listed.",
        ),
    ] = False,
    decide: Annotated[
        bool,
        typer.Option(
            "--decide",
            help="Each row is the owner's decision of a disagreement between annotators: "
            "recorded as the owner's label (also when the image has that class already), the "
            "image's label from then on, and the disagreement listed as decided (docs/labeling.md, "
            "Resolving a disagreement).",
        ),
    ] = False,
) -> None:
    """Add labels from a CSV file (columns `path,label`; all rows are checked before writing), or with --from-folders from the images' class folders."""
    if (labels is None) == (not from_folders):
        _fail(
            "give a CSV of labels (`label add PROJECT labels.csv`) or --from-folders, one of them."
        )
    if decide and from_folders:
        _fail(
            "--decide applies to a CSV of decisions (`label add PROJECT decisions.csv "
            "--decide`), not to --from-folders (a folder decides no disagreement)."
        )
    try:
        p = _open(project)
        if from_folders:
            said = p.add_folder_labels()
        elif decide:
            assert labels is not None
            lines: list[str] = []
            rows = p.read_csv_labels(labels, places=lines, decide=True)
            undisputed, disputed = _undisputed(p, rows)
            written, same = p.add_label_rows(
                rows, source="decision", what=str(labels), decide=True, places=lines
            )
            said = _decided_said(p, written, same, undisputed, disputed)
        else:
            assert labels is not None
            from fishermask.label.project import tally_said

            tally: dict[str, int] = {}
            written, same = p.add_csv_labels(labels, tally=tally)
            aside = tally["rows_set_aside"] > 0
            said = f"added {tally_said(tally)}{_already(same, aside)}."
    except FishermaskError as e:
        _fail(str(e))
    console.print(said, highlight=False, soft_wrap=True)


def _already(same: int, aside: bool = False) -> str:
    """What a command that writes labels says of the rows it did not need to write: the image
    had that label already (nothing, not "(0 already so)", when there were none); ``aside``:
    rows that set an image aside are among them (``already so``)."""
    if not same:
        return ""
    return f" ({counted(same, 'image')} already {'so' if aside else 'had that label'})"


def _undisputed(p: Any, rows: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The paths, sorted, of the images of ``rows`` (decisions) on which no annotators'
    labels differ now, and of those on which they do (a path that names no image is left to
    the rows' own check)."""
    by_path = p.store.image_ids_by_path()
    disputed = {d["image_id"] for d in p.disagreements()}
    paths = {v: k for k, v in by_path.items()}
    ids = {i for ref, _ in rows if (i := p.resolve_path(ref, by_path)) is not None}
    return (
        sorted(paths[i] for i in ids if i not in disputed),
        sorted(paths[i] for i in ids if i in disputed),
    )


def _decided_said(
    p: Any, written: int, same: int, undisputed: list[str], disputed: list[str]
) -> str:
    now = p.disagreements()
    open_ = sum(d["status"] == "open" for d in now)
    left = f"{open_} disagreement{'s' * (open_ != 1)} still open"
    rows = set(undisputed) | set(disputed)
    decided = {d["path"] for d in now if d["status"] == "decided"} & rows
    shown = (
        f", shown as decided in `fishermask label status {p.dir} --list disagreements`"
        if decided
        else ""
    )
    if not written:  # every row was the owner's decision already: nothing is recorded anyway
        was = (
            f"{same} {'was' if same == 1 else 'were'} the owner's decision already, "
            if same
            else ""
        )
        return f"decided 0 images: {was}nothing was written{shown}; {left}."
    note = ""
    if undisputed:
        anyway = (
            "recorded as the owner's decision anyway (the image's label from now on; check the "
            "path if you meant another image)"
        )
        if written + same == 1:
            note += f"; {undisputed[0]} had no disagreement between annotators: {anyway}"
        else:
            n = len(undisputed)
            note += f"; {n} of them had no disagreement between annotators ({listed(undisputed, 5)}): {anyway}"
    more = f"{same} more {'was' if same == 1 else 'were'} the owner's decision already"
    already = f" ({more})" if same else ""
    return (
        f"decided {written} image{'s' * (written != 1)}{already}: the owner's "
        f"label{shown}{note}; {left}."
    )


@label_app.command(short_help="The owner decides a disagreement between annotators.")
def decide(
    project: ProjectArg,
    image: Annotated[
        str,
        typer.Argument(
            help="The image: its path relative to the image folder (as `label status --list "
            "disagreements` names it), or absolute inside it.",
            show_default=False,
        ),
    ],
    label: Annotated[str, typer.Argument(help="The class it is.", show_default=False)],
) -> None:
    """Decide a disagreement between annotators: IMAGE is LABEL, recorded as the owner's decision (also when it has that class already); it is the image's label from then on, and the disagreement is listed as decided until someone labels the image again. Many at once: `label add PROJECT decisions.csv --decide`."""
    try:
        p = _open(project)
        undisputed, disputed = _undisputed(p, [(image, label)])
        written, same = p.add_label_rows(
            [(image, label)], source="decision", what="label decide", decide=True, single=True
        )
        said = _decided_said(p, written, same, undisputed, disputed)
    except FishermaskError as e:
        _fail(str(e))
    console.print(said, highlight=False, soft_wrap=True)


@label_app.command(short_help="Every label, skip and unsure given on one image, by anyone.")
def history(
    project: ProjectArg,
    image: Annotated[
        str,
        typer.Argument(
            help="The image: its path relative to the image folder, or absolute inside it.",
            show_default=False,
        ),
    ],
    format: Annotated[
        str, typer.Option("--format", metavar="csv|json", help="csv or json.")
    ] = "csv",
) -> None:
    """Every label, skip and unsure given on IMAGE, oldest first, by anyone: label_id, kind, label, by, source, when, undone_by (who undid it), current (the image's current action); the label_id is what `label undo` (or POST /api/undo) takes."""
    if format not in ("csv", "json"):
        _fail(f"--format {format!r}: use csv or json.")
    try:
        p = _open(project)
        by_path = p.store.image_ids_by_path()
        image_id = p.resolve_path(image, by_path)
        if image_id is None:  # worded as `label decide` words it
            raise ConfigError(f"{p.not_an_image(image, by_path)}.")
        items = p.label_history(image_id)
        path = p.store.image(image_id).path
    except FishermaskError as e:
        _fail(str(e))
    if not items:
        _say_none(f"{path} has no label, skip or unsure yet.", format)
        return
    rows = [
        {
            "label_id": it["label_id"],
            "kind": it["kind"],
            "label": it["label"],
            "by": it["by"],
            "source": it["source"],
            "when": utc_iso(it["created"]),
            **(
                {"undone": it["undone"], "undone_by": it["undone_by"], "current": it["current"]}
                if format == "json"
                else {"undone_by": it["undone_by"], "current": "yes" if it["current"] else None}
            ),
        }
        for it in items
    ]
    _write_rows(rows, format)
    _say(
        f"to withdraw one of them: `fishermask label undo {p.dir} LABEL_ID` (anyone's; the "
        "image falls back to its action before)."
    )


@label_app.command(short_help="Undo one action by its id (the owner's command).")
def undo(
    project: ProjectArg,
    label_id: Annotated[
        str,  # read here: typer's own refusal of a non-integer named neither the id nor its fix
        typer.Argument(
            help="The id of the label, skip or unsure (`label history PROJECT PATH` lists them).",
            show_default=False,
        ),
    ],
) -> None:
    """Undo one action by its id, anyone's (the owner's command; the history keeps both): the image falls back to its action before. `label history PROJECT PATH` lists an image's ids."""
    from fishermask.label.project import KIND_NAMES

    if not (label_id.isascii() and label_id.isdigit()):
        _fail(
            f"LABEL_ID {label_id!r} is not a label id: undo takes the number of one label, skip "
            f"or unsure (its label_id, e.g. `fishermask label undo {project} 12`); "
            f"`fishermask label history {project} PATH` lists an image's."
        )
    row_id = int(label_id)
    try:
        p = _open(project)
        row = p.store.label_row(row_id)
        if row is None or row.kind == "undo":
            raise ConfigError(
                f"no label action with id {row_id} to undo; `fishermask label history "
                f"{p.dir} PATH` lists an image's."
            )
        (before,) = [h for h in p.label_history(row.image_id) if h["label_id"] == row_id]
        p.store.undo(row_id)  # an action undone already: its undo row, nothing written
        path = p.store.image(row.image_id).path
        since = p.label_history(row.image_id)
        (entry,) = [h for h in since if h["label_id"] == row_id]
        now = next((h for h in since if h["current"]), None)
    except FishermaskError as e:
        _fail(str(e))
    what = entry["label"] if entry["kind"] == "label" else KIND_NAMES[entry["kind"]]
    after = (
        f"{path} is now {now['label'] if now['kind'] == 'label' else KIND_NAMES[now['kind']]}"
        f" (by {now['by']})"
        if now is not None
        else f"{path} has no label now"
    )
    said = (
        f"label {row_id} of {path} ({what} by {entry['by']}) was undone already, by "
        f"{before['undone_by']}: nothing changed; {after}."
        if before["undone"]
        else f"undone: label {row_id} of {path} ({what} by {entry['by']}); {after}."
    )
    console.print(
        said,
        highlight=False,
        soft_wrap=True,
    )


@label_app.command("import", short_help="Import the labels of a Label Studio JSON export.")
def import_(
    project: ProjectArg,
    labelstudio: Annotated[Path, typer.Option(help="A Label Studio JSON export.")],
    prefix: Annotated[
        str | None,
        typer.Option(
            help="Where this project's image folder is in the tasks' image paths (e.g. "
            "`images/test/` for /data/local-files/?d=images/test/cat/1.jpg); only tasks under "
            "it are imported. Needed when the export names images of several folders, or "
            "of one folder not named as the image folder (it may be another folder's)."
        ),
    ] = None,
    match_names: Annotated[
        bool,
        typer.Option(
            "--match-names",
            help="Take a task whose path matches no image by its file name, when exactly one "
            "image has that name (Label Studio's uploads). Refused without it: camera names "
            "such as IMG_0001.jpg repeat across folders.",
        ),
    ] = False,
) -> None:
    """Import the choices of a Label Studio JSON export (tasks with annotations); each label is recorded as given by the annotator its annotation names (`fishermask_annotator`, else `completed_by`'s e-mail; docs/labeling.md, Label Studio), else by the owner."""
    try:
        p = _open(project)
        left_out: list[str] = []
        places: list[str] = []
        name_only: list[str] = []
        rows = p.read_labelstudio(
            labelstudio,
            prefix=prefix,
            left_out=left_out,
            annotators=True,
            places=places,
            match_names=match_names,
            name_only=name_only,
        )
        written, same = p.add_label_rows(
            rows, source="import", what=str(labelstudio), places=places
        )
    except FishermaskError as e:
        _fail(str(e))
    outside = (
        f"; {counted(len(left_out), 'labeled task')} outside --prefix left out" if left_out else ""
    )
    names = sorted({r[2] for r in rows if r[2] is not None})
    named = f"; annotators named by the tasks: {', '.join(names)}" if names else ""
    by_name = ""
    if name_only:
        by_name = (
            f"; {counted(len(name_only), 'task')} matched by file name only (--match-names): "
            f"{listed(name_only, 3, sep='; ', more=AND_MORE_APART)}"
        )
    console.print(
        f"imported {counted(written, 'label')}{_already(same)}{outside}{by_name}{named}.",
        highlight=False,
        soft_wrap=True,
    )


@label_app.command(
    "train",
    short_help="Retrain on every label, queue the next batch, estimate the accuracy.",
)
def train_cmd(
    project: ProjectArg, progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True
) -> None:
    """Retrain on every label, report held-out accuracy (95 % interval), queue the next batch."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    p = None
    try:
        p = _open(project)
        p.recover()
        if (running := p.store.running_round()) is not None:
            _busy(running["id"])
        p.check_intact()  # before a round starts (and fails on them)
        p.load_imports()  # likewise: a --import file that is gone is one line, no round
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not progress,
        ) as bar:
            task = bar.add_task("starting", total=1)
            # not a terminal (a log, a pipe, nohup): the bar draws nothing, so each phase is a
            # line when it starts; a minute of silence looked like a hang
            lines = progress and not err.is_terminal
            last = ""

            def report(phase: str, done: int, total: int) -> None:
                nonlocal last
                bar.update(task, description=phase, completed=done, total=max(total, 1))
                if lines and phase != last:
                    last = phase
                    _say(f"{phase} ...")

            row = p.run_round(train_model=True, report=report)
    except KeyboardInterrupt:
        _interrupted(p, "train")
    except RoundBusy as busy:
        _busy(busy.args[0])
    except FishermaskError as e:
        _fail(str(e))
    m = row["metrics"]
    c = p.counts()
    if not m:
        console.print(
            "not trained: needs labels in at least 2 classes.", highlight=False, soft_wrap=True
        )
    elif m.get("accuracy") is None:
        console.print(
            f"trained on {counted(m['n_labels'], 'label')}; accuracy {m['method']}.",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(
            f"trained on {counted(m['n_labels'], 'label')}; accuracy {100 * m['accuracy']:.1f} % "
            f"(95 % interval {100 * m['low']:.1f}–{100 * m['high']:.1f} %, {m['method']}, "
            f"{counted(m['n_eval'], 'prediction')})",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        "labels per class: " + ", ".join(f"{k} {v}" for k, v in c["per_class"].items()),
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"next batch: {counted(len(p.store.queue()), 'image')} ({row['mode']})",
        highlight=False,
        soft_wrap=True,
    )
    if hint := p.new_files_hint():
        _say(hint)


@label_app.command("check", short_help="Find likely wrong labels with out-of-fold models.")
def check_cmd(
    project: ProjectArg,
    folds: Annotated[
        int, typer.Option("--folds", help="Models trained, each without one fold of the labels.")
    ] = FOLDS,
    format: Annotated[
        str, typer.Option("--format", metavar="csv|json", help="csv or json.")
    ] = "csv",
    out: Annotated[
        Path | None, typer.Option(help="Write to this file instead of stdout (-: stdout).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    latest: Annotated[
        bool,
        typer.Option(
            "--latest",
            help="Train nothing: list the latest check's likely issues again (labels changed since it left out).",
        ),
    ] = False,
) -> None:
    """Find likely wrong labels: train --folds models, each without one fold of the labels, score every labeled image with the model that did not see it, and list the labels that the confident-learning rule flags (path, label, suggested, label_prob, suggested_prob, by, when), lowest probability of the label first. Stored in the project: the Labeled view then ranks by these probabilities."""
    from fishermask.label.check import issue_rows, latest_check

    if out is not None and str(out) == "-":
        out = None  # standard output, as without --out
    _check_format(format)
    p = None
    try:
        if out is not None:
            from fishermask.label.project import check_out_file

            check_out_file(out)
        p = _open(project)
        if out is not None:
            p.check_out_place(out)
        p.recover()
        if latest:
            check = latest_check(p)
            if check is None:
                _fail(f"no label check yet: run `fishermask label check {p.dir}` first.")
            rows, m = issue_rows(p, check)
        else:
            check, rows, m = _run_check(p, folds, progress)
    except KeyboardInterrupt:
        _fail("interrupted: the check was stopped, nothing of it is kept.", 130)
    except RoundBusy as busy:
        _busy(busy.args[0])
    except FishermaskError as e:
        _fail(str(e))
    _write_issues(p, check, rows, m, format, out)


def _run_check(p: Any, folds: int, progress: bool) -> tuple[Any, list[dict[str, Any]], int]:
    """``label check`` without --latest: the check, with a bar or one line per phase."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from fishermask.label.check import issue_rows, latest_check, run_check

    if (running := p.store.running_round()) is not None:
        _busy(running["id"])
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not progress,
    ) as bar:
        task = bar.add_task("starting", total=1)
        lines = progress and not err.is_terminal  # a log or a pipe: one line per phase
        last = ""

        def report(phase: str, done: int, total: int) -> None:
            nonlocal last
            bar.update(task, description=phase, completed=done, total=max(total, 1))
            if lines and phase != last:
                last = phase
                _say(f"{phase} ...")

        check_id = run_check(p, folds, report)
    check = latest_check(p, check_id)  # this one (a later check may have finished since)
    assert check is not None
    rows, m = issue_rows(p, check)
    return check, rows, m


def _write_issues(
    p: Any, check: Any, rows: list[dict[str, Any]], m: int, format: str, out: Path | None
) -> None:
    """The issues of ``label check`` as csv or json (stdout or ``out``), the count on stderr."""
    if format == "json":
        text = json.dumps(rows, indent=1) + "\n"
    else:
        import io

        from fishermask.text import SpreadsheetCsv

        buf = io.StringIO()
        w = SpreadsheetCsv(buf)
        cols = ["path", "label", "suggested", "label_prob", "suggested_prob", "by", "when"]
        w.writerow(cols)
        for r in rows:
            w.writerow([r[c] for c in cols])
        text = buf.getvalue()
    if out is None:
        sys.stdout.write(text)
    else:
        from fishermask.experiments.store import write_atomic

        write_atomic(out, lambda f: f.write(text.encode()))
        _say(f"wrote {out}")
    from fishermask.label.check import flagged_line, weak_line

    _say(
        f"{flagged_line(len(rows), m)}; fix the wrong ones in the Labeled view or with "
        f"`label add` (check of {check.when}, {check.info['folds']} folds)."
    )
    if (weak := weak_line(check.agreement)) is not None:
        _say(f"{weak}; read the list from the top, where the labels they find least probable are.")
    else:
        _say(
            f"out of fold, the check's models predict {100 * check.agreement:.1f} % of the "
            "labels they scored; the list starts with the labels they find least probable."
        )


@label_app.command(
    short_help="Write the labels (CSV, class folders, Label Studio, npz) or the model.",
)
def export(
    project: ProjectArg,
    format: Annotated[
        str,
        typer.Option(
            "--format", metavar="FORMAT", help="csv, imagefolder, labelstudio, npz or model."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Output file (folder for imagefolder and model; -: stdout for csv, labelstudio)."
        ),
    ],
    image_url_prefix: Annotated[
        str, typer.Option(help="Label Studio: prefix of each task's data.image before the path.")
    ] = "/data/local-files/?d=",
    annotators: Annotated[
        bool,
        typer.Option(
            "--annotators",
            help="csv: a third column, annotator: who gave each image's current label (owner: the owner's page or a command).",
        ),
    ] = False,
    set_aside: Annotated[
        bool,
        typer.Option(
            "--set-aside",
            help="csv: the images skipped or unsure too, each with an empty label and its state "
            "(skipped, unsure) in a last column, set_aside; `label add` and `label init "
            "--labels` set them aside again.",
        ),
    ] = False,
) -> None:
    """Export the labels (and, for Label Studio, the model's predictions with scores), or the latest model (--format model: a folder for fishermask.label.load_model)."""
    formats = ("csv", "imagefolder", "labelstudio", "npz", "model")
    if format not in formats:
        _fail(f"Unknown export format {format!r}; supported: {', '.join(formats)}.")
    if format == "model":
        if str(out) == "-":
            _fail(
                "--out -: standard output takes the text formats (csv, labelstudio); the "
                "model export is a folder: give a path."
            )
        _export_model(project, out)
        return
    try:
        p = _open(project)
        tally: dict[str, int] = {}
        n = p.export(
            format,
            out,
            image_url_prefix=image_url_prefix,
            annotators=annotators,
            set_aside=set_aside,
            tally=tally,
        )
    except FishermaskError as e:
        _fail(str(e))
    what = counted(n, "task" if format == "labelstudio" else "label")
    if set_aside:
        what = ", ".join(
            [counted(tally["label"], "label")]
            + [f"{tally[k]} {w}" for k, w in (("skip", "skipped"), ("unsure", "unsure"))]
        )
    if str(out) == "-":  # the data went to stdout: the count goes to stderr
        _say(f"wrote {what} to standard output")
        return
    console.print(f"wrote {out} ({what})", highlight=False, soft_wrap=True)


def _export_model(project: Path, out: Path) -> None:
    from fishermask.label.predict import export_model

    try:
        info = export_model(_open(project), out)
    except FishermaskError as e:
        _fail(str(e))
    h, w = info["image_size"]
    console.print(
        f"wrote {out}: the model of round {info['round']} ({info['architecture']}, "
        f"{len(info['classes'])} classes, {info['channels']}x{h}x{w}, trained on "
        f"{info['n_labels']} labels); load it with fishermask.label.load_model({str(out)!r})",
        highlight=False,
        soft_wrap=True,
    )
    if info["held_out_why"]:
        _say(f"no held-out accuracy in {out / 'model.json'}: {info['held_out_why']}.")
    if info["classes_added_since"]:
        from fishermask.label.predict import added_since_line

        _say(added_since_line(info["classes_added_since"], project))


@label_app.command(short_help="Serve the labeling page and its JSON API, for you or a team.")
def serve(
    project: ProjectArg,
    host: Annotated[
        str, typer.Option(help="Interface to bind (default: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(envvar="FISHERMASK_LABEL_TOKEN", help="Access token (default: a random one)."),
    ] = None,
    annotators: Annotated[
        str | None,
        typer.Option(
            "--annotators",
            metavar="NAME,NAME,...",
            help="A labeling team, e.g. alice,bob: one URL each, with a token of their own (stable across restarts when --token is given); every label records who gave it, and an annotator can undo only their own. An annotator may start the next round or a revisit once every image of the batch is done (the owner any time).",
        ),
    ] = None,
    owner_only_queue: Annotated[
        bool,
        typer.Option(
            "--owner-only-queue",
            help="With --annotators: only the owner starts the next round or a revisit (annotators never, even with the batch done).",
        ),
    ] = False,
    preview_cache_mb: Annotated[
        int,
        typer.Option(
            "--preview-cache-mb",
            help="The most the thumbnails and batch-view copies cached in PROJECT/thumbs/ take on disk, in MiB; the least recently used are removed beyond it (and, at the start, those of images no longer in the project).",
        ),
    ] = 2048,
) -> None:
    """Serve the labeling page and its JSON API; prints the URL with its access token (the owner's), then one per annotator. One server per project: a second is refused, naming the first."""
    from fishermask.label.server import run_server
    from fishermask.label.team import parse_annotators

    stopped: list[str] = []

    def say(line: str) -> None:
        if line.startswith("stopped"):
            stopped.append(line)
        _say(line)

    try:
        names = [] if annotators is None else parse_annotators(annotators)
        run_server(
            project,
            host=host,
            port=port,
            token=token,
            annotators=names,
            owner_only_queue=owner_only_queue,
            preview_cache_mb=preview_cache_mb,
            say=say,
        )
    except KeyboardInterrupt:
        if not stopped:  # before it served (its imports): said as any command's Ctrl-C is
            raise
        raise typer.Exit(130) from None  # run_server said what it stopped and what was saved
    except FishermaskError as e:
        _fail(str(e))


@label_app.command(
    short_help="Counts and accuracy, or lists: set aside, disagreements, labeled, copies, rounds.",
)
def status(
    project: ProjectArg,
    list_: Annotated[
        str | None,
        typer.Option(
            "--list",
            metavar="KIND",
            help="Instead, list the images currently skipped or unsure: skipped, unsure or "
            "skipped,unsure (path relative to the image folder, state, when, the latest "
            "model's guess), oldest first; or disagreements: the images whose annotators' "
            "own current labels differ (path, current label, each annotator's label); or "
            "labeled: the labeled images (path, label, by, when, the latest model's "
            "probability of the label and its guess), likely mistakes first (the lowest "
            "probability of the label), newest first without a model; or copies: the images "
            "whose file is a byte-for-byte copy of an earlier one (path, copy_of, and both "
            "labels); or rounds: the held-out accuracy of every round that trained a model "
            "(round, finished, labels, accuracy, low, high, held_out, method), oldest first: "
            "whether more labels still pay.",
        ),
    ] = None,
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="With --list: csv (default) or json. Without: text (a short summary, the "
            "default on a terminal) or json (every count; the default when the output is not a "
            "terminal, e.g. a pipe or a file).",
        ),
    ] = None,
) -> None:
    """Counts (skipped and unsure: the images whose latest action is so; per annotator; the disagreements between annotators; changed and missing image files), the latest round and its accuracy: a short summary on a terminal, JSON otherwise or with --format json; or, with --list, the images skipped or unsure, the disagreements, or the labeled images (likely mistakes first)."""
    if list_ is None and format not in (None, "text", "json"):
        _fail(f"--format {format}: use text or json (or csv with --list).")
    if list_ is not None:
        _check_format(format)
    try:
        from fishermask.label.project import parse_set_aside

        words = [] if list_ is None else list_.split(",")
        alone = ("disagreements", "labeled", "copies", "rounds")
        bad = [w for w in words if w not in ("skipped", "skip", "unsure", *alone)]
        if bad:
            _fail(
                did_you_mean(
                    f"--list {bad[0]!r}: use skipped, unsure (or skipped,unsure), disagreements, "
                    "labeled, copies or rounds.",
                    bad[0],
                    ("skipped", "unsure", *alone),
                )
            )
        single = next((w for w in alone if w in words), None)
        if single is not None and list_ != single:
            _fail(f"--list {list_}: list {single} on their own (--list {single}).")
        kinds = None if list_ is None or single else parse_set_aside(list_.split(","), "--list")
        p = _open(project)
        p.recover()
        if single == "disagreements":
            _print_disagreements(p, format or "csv")
            return
        if single == "labeled":
            _print_labeled(p, format or "csv")
            return
        if single == "rounds":
            rows = [
                h
                | {
                    "finished": utc_iso(h["finished"]),
                    **{k: _rounded(h[k]) for k in ("accuracy", "low", "high")},
                }
                for h in p.accuracy_history()
            ]
            if rows:
                _write_rows(rows, format or "csv")
            else:
                _say_none(
                    "no round has trained a model yet: 'next batch' on the page or `fishermask "
                    f"label train {p.dir}` trains one.",
                    format,
                )
            return
        if single == "copies":
            rows = p.copy_rows()
            if rows:
                _write_rows(rows, format or "csv")
            else:
                _say_none("no copies: no two image files have the same bytes.", format)
            return
        if kinds is None:
            st = p.status()
            st["new_files"] = p.new_files()
            st["copies"] = len(p.store.copies())
            from fishermask.label.check import check_summary

            st["check"] = check_summary(p)
            files = p.check_files()
            st["changed"], st["missing"] = len(files.changed), len(files.missing)
            if format == "json" or (format is None and not sys.stdout.isatty()):
                console.print_json(json.dumps(st))
            else:
                _print_summary(p, st)
            if hint := p.new_files_hint():
                _say(hint)
            return
        _print_set_aside(p, kinds, format or "csv")
    except FishermaskError as e:
        _fail(str(e))


def _print_summary(p: Any, st: dict[str, Any]) -> None:
    """``label status`` on a terminal: a few lines of the counts (``--format json`` has all)."""
    classes = ", ".join(f"{c} {n}" for c, n in st["per_class"].items())
    budget = f" of a budget of {st['budget']}" if st.get("budget") else ""
    lines = [
        f"{p.dir}: {counted(st['images'], 'image')}; {st['labeled']} labeled{budget} ({classes}); "
        f"{st['skipped']} skipped, {st['unsure']} unsure",
    ]
    rounds = p.store.rounds()
    if st["queue_round"] is not None:
        lines.append(f"batch: {counted(st['batch_left'], 'image')} not done yet ({st['mode']})")
    history = st["history"]
    trained = len(p.accuracy_history(rounds))
    if history:
        h = history[-1]
        lines.append(
            f"rounds: {len(rounds)} ({trained} trained a model); latest accuracy "
            f"{100 * h['accuracy']:.1f} % (95 % interval {100 * h['low']:.1f}–"
            f"{100 * h['high']:.1f} %) with {counted(h['labels'], 'label')}"
        )
    else:
        lines.append(f"rounds: {len(rounds)} ({trained} trained a model); no accuracy estimate yet")
    if st["training"]:
        lines.append("a round is training now")
    if len(st["annotators"]) > 1 or st["disagreements"] or st["decided"]:
        lines.append(
            f"disagreements: {st['disagreements']} open, {st['decided']} decided "
            f"(`fishermask label status {p.dir} --list disagreements`)"
        )
    if (chk := st.get("check")) is not None:
        from fishermask.label.check import flagged_line, weak_line
        from fishermask.text import parse_utc_iso, utc_clock

        weak = weak_line(chk["agreement"]) is not None
        when = utc_clock(parse_utc_iso(chk["when"]))  # the JSON's time, shown in UTC
        since = chk["scored"] - chk["current"]
        lines.append(
            f"label check of {when} ({chk['folds']} models): "
            + flagged_line(chk["flagged"], chk["current"])
            + (f", {counted(since, 'label')} changed since" if since else "")
            + f"; its models predicted {100 * chk['agreement']:.1f} % of the labels out of fold"
            + (" (too weak for the flags to tell right labels from wrong ones)" if weak else "")
            + f"; `fishermask label check {p.dir} --latest` lists them"
        )
    lines.append(
        f"files: {st['changed']} changed, {st['missing']} missing since the scan, "
        f"{st['new_files']} new not scanned, {counted(st['copies'], 'copy', 'copies')}"
        + (
            f" (`fishermask label scan {p.dir}` lists them)"
            if st["changed"] or st["missing"]
            else ""
        )
    )
    lines.append(f"every count: `fishermask label status {p.dir} --format json`")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True, markup=False)


def _rounded(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def _say_none(message: str, format: str | None) -> None:
    """An empty ``label status --list``: one line on stderr, and ``[]`` on stdout for json."""
    _say(message)
    if format == "json":
        sys.stdout.write("[]\n")


def _write_rows(rows: list[dict[str, Any]], format: str) -> None:
    """The rows of ``label status --list`` on stdout: json, or csv with the first row's keys
    as the header (None as an empty cell)."""
    import io

    from fishermask.text import SpreadsheetCsv

    if format == "json":
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    buf = io.StringIO()
    w = SpreadsheetCsv(buf)
    w.writerow(list(rows[0]))
    for r in rows:
        w.writerow(["" if v is None else v for v in r.values()])
    sys.stdout.write(buf.getvalue())


def _print_disagreements(p: Any, format: str) -> None:
    """``label status --list disagreements``: csv (path, current, status (open, decided), one
    column per annotator involved, empty where they gave no label) or json (``labels``:
    annotator -> class)."""
    items = p.disagreements()
    if not items:
        _say_none(
            "no disagreements: no image has different labels from different annotators.", format
        )
        return
    if format == "json":
        keys = ("path", "current", "status", "labels")
        _write_rows([{k: it[k] for k in keys} for it in items], format)
        return
    names = sorted({n for it in items for n in it["labels"]})
    _write_rows(
        [
            {"path": it["path"], "current": it["current"], "status": it["status"]}
            | {n: it["labels"].get(n) for n in names}
            for it in items
        ],
        format,
    )


def _print_labeled(p: Any, format: str) -> None:
    """``label status --list labeled``: the labeled images, likely mistakes first when there is
    a model (as the page's "Labeled" view), on stdout; how they are ordered, and how to fix
    one, on stderr. The csv starts with ``path,label``, so ``label add`` takes it back with
    its label column edited (unchanged rows are not written again)."""

    from fishermask.label.review import LabelProbabilities, labeled_page

    res = labeled_page(p, LabelProbabilities(), per_page=None)
    if not res["items"]:
        _say_none("no image is labeled yet.", format)
        return
    _say(f"{res['note']}.")
    rows = []
    for it in res["items"]:
        g = it["guess"] or {}
        rows.append(
            {
                "path": it["path"],
                "label": it["label"],
                "by": it["by"],
                "when": utc_iso(it["created"]),
                "label_prob": it["label_prob"],
                "guess": g.get("label"),
                "guess_prob": g.get("prob"),
                "prob_from": it["prob_from"],
                "flagged": it["flagged"]
                if format == "json" or it["flagged"] is None
                else ("yes" if it["flagged"] else "no"),
                "suggested": it["suggested"],
            }
        )
    _write_rows(rows, format)
    _say(
        f"to fix labels, give a path,label CSV (this one with its label column edited) to "
        f"`fishermask label add {p.dir} FILE`: each change is a new label, the old one kept "
        "in the history."
    )


def _print_set_aside(p: Any, kinds: list[str], format: str) -> None:
    """``label status --list``: the set-aside images as csv or json on stdout; when there are
    none, one line on stderr (and ``[]`` for json)."""

    from fishermask.label.project import KIND_NAMES

    items = p.set_aside(kinds)
    names = " or ".join(KIND_NAMES[k] for k in kinds)
    if not items:
        _say_none(f"no image is currently {names}.", format)
        return
    guesses, why = p.guesses([it["image_id"] for it in items])
    if why:
        _say(f"no model guesses: {why}")
    rows = []
    for it in items:
        g = (guesses.get(it["image_id"]) or [{}])[0]
        rows.append(
            {
                "path": it["path"],
                "state": KIND_NAMES[it["kind"]],
                "when": utc_iso(it["created"]),
                "guess": g.get("label"),
                "guess_prob": g.get("prob"),
            }
        )
    _write_rows(rows, format)


@label_app.command(short_help="Queue the images skipped or unsure as the batch.")
def revisit(
    project: ProjectArg,
    skipped: Annotated[bool, typer.Option("--skipped", help="The images skipped.")] = False,
    unsure: Annotated[bool, typer.Option("--unsure", help="The images marked unsure.")] = False,
    n: Annotated[
        int | None, typer.Option("--n", help="At most this many, the oldest first (default all).")
    ] = None,
) -> None:
    """Queue the images currently skipped or unsure (both without --skipped/--unsure) as the labeling page's batch, to label them with the usual keys. It replaces the batch queued before (whose unlabeled images are unseen again: the strategy may choose them later); the next batch is chosen by the strategy as usual."""
    from fishermask.label.project import KIND_NAMES, SET_ASIDE

    if n is not None and n < 1:
        _fail(f"--n {n}: must be >= 1.")
    kinds = [k for k in SET_ASIDE if {"skip": skipped, "unsure": unsure}[k]] or list(SET_ASIDE)
    names = " or ".join(KIND_NAMES[k] for k in kinds)
    try:
        p = _open(project)
        p.recover()
        # the images of the batch shown that had no action at all (not those set aside)
        was = [it for it in p.batch() if it["state"] is None and it["earlier"] is None]
        round_id, items = p.revisit(kinds, n=n)
    except RoundBusy as busy:
        _busy(busy.args[0])
    except FishermaskError as e:
        _fail(str(e))
    if round_id is None:
        console.print(
            f"nothing to revisit: no image is currently {names}; the batch is unchanged.",
            highlight=False,
            soft_wrap=True,
        )
        return
    count = ", ".join(f"{sum(it['kind'] == k for it in items)} {KIND_NAMES[k]}" for k in kinds)
    console.print(
        f"queued {len(items)} image{'s' * (len(items) != 1)} ({count}), oldest first; this "
        "is now the labeling page's batch"
        + (
            f": it replaced the one queued before ({len(was)} of its images unseen; the "
            "strategy may choose them later)"
            if was
            else ""
        )
        + ". After them the next batch is chosen by the strategy as usual.",
        highlight=False,
        soft_wrap=True,
    )


#: Settings ``label config`` shows but cannot change, and what to do instead.
_FIXED = {
    "image_size": "the decoded images and every saved model are at this size",
    "fit": "the decoded images and every saved model were made with this fit",
    "classes": "every label and saved model refers to the classes by position; add one with "
    "--add-class NAME, rename one with --rename-class OLD=NEW, remove one nobody's label "
    "carries with --remove-class NAME (relabel its images with `label add` first)",
}


def _settings_lines(p: Any) -> list[str]:
    from fishermask.label.imports import names

    s = p.settings
    strat = s["strategy"] + "".join(
        f"{':' if i == 0 else ','}{k}={v}" for i, (k, v) in enumerate(s["strategy_options"].items())
    )
    h, w = s["image_size"]
    return [
        f"strategy: {strat}",
        f"batch: {s['batch']}",
        f"query-pool: {s.get('query_pool')}",
        f"budget: {s.get('budget') if s.get('budget') is not None else 'none'}",
        f"min-per-class: {s['min_per_class']}",
        f"max-epochs: {s['max_epochs']}",
        f"max-steps: {s['max_steps']}",
        f"model: {s['model']}",
        f"width: {s['width']}",
        f"import: {names(s.get('imports'))}",
        f"image-size: {h}x{w} (fixed)",
        f"fit: {p.fit} (fixed)",
        f"classes: {','.join(p.current_classes)} (--add-class, --rename-class, --remove-class)",
        *(
            [f"removed classes: {','.join(p.classes[i] for i in sorted(p.removed))}"]
            if p.removed
            else []
        ),
        f"images: {s['image_root']} (--images NEW when the folder moved)",
        *([f"images found at: {p.root} ({p.root_note})"] if p.root_note else []),
        f"decoded images: {p.cache_dir / ('.fishermask-label-' + s['project_id'])}-segment-*"
        " (a cache outside the project folder, not deleted with it; safe to delete: decoded "
        "again when needed; --cache-dir of `label init`, else $FISHERMASK_CACHE, else "
        "~/.cache/fishermask)",
    ]


@label_app.command(
    short_help="Print or change the settings; add, rename or remove classes; follow a moved "
    "image folder."
)
def config(
    project: ProjectArg,
    strategy: Annotated[
        str | None, typer.Option(help="Query strategy, with options as name:key=value.")
    ] = None,
    batch: Annotated[int | None, typer.Option(help="Images per batch.")] = None,
    query_pool: Annotated[
        int | None,
        typer.Option(help="Unseen images the strategy scores per batch (0: all)."),
    ] = None,
    budget: Annotated[int | None, typer.Option(help=_BUDGET_HELP)] = None,
    min_per_class: Annotated[
        int | None, typer.Option(help="Cold start until every class has this many labels.")
    ] = None,
    max_epochs: Annotated[int | None, typer.Option(help="Epoch cap per training.")] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Optimizer-step cap per training (0: none).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="cnn, resnet18, mlp, linear, or one of your own (--import).")
    ] = None,
    width: Annotated[float | None, typer.Option(help="Width multiplier of the model.")] = None,
    image_size: Annotated[
        str | None, typer.Option(help="Cannot change (refused with what to do instead).")
    ] = None,
    fit: Annotated[
        str | None, typer.Option(help="Cannot change (refused with what to do instead).")
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option(help="Cannot be replaced (use --add-class / --rename-class)."),
    ] = None,
    add_class: Annotated[
        list[str] | None,
        typer.Option(
            "--add-class",
            metavar="CLASS",
            help="Append a class (repeatable, or a comma list); existing labels keep theirs.",
        ),
    ] = None,
    rename_class: Annotated[
        list[str] | None,
        typer.Option(
            "--rename-class",
            metavar="OLD=NEW",
            help="Rename a class, OLD=NEW (repeatable); its labels follow the new name.",
        ),
    ] = None,
    remove_class: Annotated[
        list[str] | None,
        typer.Option(
            "--remove-class",
            metavar="CLASS",
            help="Remove a class that no image's label carries any more (repeatable, or a "
            "comma list): after merging it into another with `label add`.",
        ),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(
            metavar="NEW",
            help="The image folder moved (another disk, a renamed parent, a copy): point the "
            "project at it, after checking that every image of the project is there at its "
            "path with its size and SHA-256 (each file read once); labels, history and "
            "models are kept. Given alone; refused while a round or label check runs or "
            "label serve serves the project.",
        ),
    ] = None,
    accept_missing: Annotated[
        bool,
        typer.Option(
            "--accept-missing",
            help="With --images: use the folder even though some images are missing there or "
            "differ (label scan then lists them, to restore, accept or forget); a folder "
            "holding none of them is refused anyway.",
        ),
    ] = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="With --images: take an image whose file in the new folder has the recorded "
            "size and modification time as the same file, unread, as label scan does, and "
            "hash only the others (a copy that kept the times, cp -a or rsync -a: seconds "
            "instead of reading every file). Weaker than the default: a file edited in place "
            "keeping its size and time passes.",
        ),
    ] = False,
    progress: Annotated[bool, typer.Option(help="A progress bar while --images checks.")] = True,
    imports: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            metavar="MODULE|FILE.py",
            help="Replace the project's --import entries (--import '': none).",
        ),
    ] = None,
) -> None:
    """Show the project's settings, or change them (from the next round on; history kept); --images points the project at its moved image folder."""
    if images is not None:
        others = [image_size, fit, classes, add_class, rename_class, remove_class, imports]
        if any(v is not None and v != [] for v in others) or any(
            v is not None
            for v in (
                strategy,
                batch,
                query_pool,
                budget,
                min_per_class,
                max_epochs,
                max_steps,
                model,
                width,
            )
        ):
            _fail(
                f"--images {images}: give it alone (`fishermask label config {project} --images "
                f"{images}`), then change the other settings in a second `label config`."
            )
        _repoint(project, images, accept_missing, quick, progress)
        return
    for flag, given in (("--accept-missing", accept_missing), ("--quick", quick)):
        if given:
            _fail(
                f"{flag} goes with --images NEW (the image folder's new place); nothing was "
                "changed."
            )
    fixed = {"image_size": image_size, "fit": fit, "classes": classes}
    for key, value in fixed.items():
        if value is not None:
            flag = "--" + key.replace("_", "-")
            if key == "classes":
                _fail(f"{flag} cannot change: {_FIXED[key]}.")
            _fail(
                f"{flag} cannot change: {_FIXED[key]}. Instead export the labels "
                f"(fishermask label export {project} --format csv --out labels.csv) and create "
                f"a new project with `fishermask label init NEW ... {flag} ... "
                "--labels labels.csv`."
            )
    changes = {
        "strategy": strategy,
        "batch": batch,
        "query_pool": query_pool,
        "budget": budget,
        "min_per_class": min_per_class,
        "max_epochs": max_epochs,
        "max_steps": max_steps,
        "model": model,
        "width": width,
    }
    from fishermask.label.imports import parse_entries

    changes["imports"] = None if imports is None else parse_entries(imports)
    try:
        p = _open(project)
        p.recover()
        if (
            all(v is None for v in changes.values())
            and not add_class
            and not rename_class
            and not remove_class
        ):
            for line in _settings_lines(p):
                console.print(line, highlight=False, soft_wrap=True)
            n = len(p.store.settings_history())
            if n:
                _say(f"{counted(n, 'change')} since init (table settings_history).")
            return
        diff = p.configure(
            **changes,
            add_classes=add_class or (),
            rename_classes=rename_class or (),
            remove_classes=remove_class or (),
            say=_say,
        )
    except FishermaskError as e:
        _fail(str(e))
    if not diff:
        console.print("nothing changed.", highlight=False, soft_wrap=True)
        return
    for key, (old, new) in diff.items():
        if key == "imports":
            from fishermask.label.imports import names

            key, old, new = "import", names(old), names(new)
        if key == "classes":
            _print_class_change(p, old, new)
            continue
        if key == "removed_classes":
            _print_class_removal(p, [c for c in new if c not in old])
            continue
        console.print(f"{key.replace('_', '-')}: {old} -> {new}", highlight=False, soft_wrap=True)
    if set(diff) - {"classes", "removed_classes"}:  # the classes apply at once
        console.print(
            "the new settings take effect from the next round (label next / label train / "
            "'next batch' on the page).",
            highlight=False,
            soft_wrap=True,
        )


def _repoint(
    project: Path, images: Path, accept_missing: bool, quick: bool, progress: bool
) -> None:
    """``label config --images NEW``: check the new folder, point the project at it, say
    what was kept and what ``label scan`` will list."""
    from fishermask.label.relocate import repoint

    p, was = None, None
    try:
        p = _open(project)
        p.recover()  # a round whose process died is not running
        was = p.settings["image_root"]
        done = repoint(p, images, accept_missing=accept_missing, quick=quick, progress=progress)
    except FishermaskError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        now = p.store.get_meta("image_root") if p is not None else None
        if p is not None and now != was:  # Ctrl-C after the commit, counting cache entries
            _fail(
                f"interrupted after the new folder was recorded (images: {was} -> {now}); the "
                "project uses it from now on.",
                130,
            )
        _fail("interrupted while checking the new folder; nothing was changed.", 130)
    console.print(f"images: {done.old} -> {done.new}", highlight=False, soft_wrap=True)
    n = p.store.num_images()
    how = (
        f"--quick: {done.timed} by size and modification time, {done.checked - done.timed} by "
        "size and SHA-256"
        if quick
        else "size and SHA-256"
    )
    _say(
        f"checked {done.checked} of the {counted(n, 'image')} ({how}): the same "
        f"{'files' if quick else 'content'} at the same paths; labels, history, held-out folds, models and thumbnails "
        "are kept"
        + (
            f", and the decoded images of {done.cache_kept} of {done.cache_segments} scans "
            "were kept (not decoded again)"
            if done.cache_kept
            else ""
        )
        + "."
    )
    if done.missing or done.changed:
        parts = [f"{len(done.missing)} missing"] if done.missing else []
        parts += [f"{len(done.changed)} changed"] if done.changed else []
        _say(
            f"taken with --accept-missing: {' and '.join(parts)} in the new folder; "
            f"`fishermask label scan {project}` lists them (restore them, or forget the missing "
            "ones with --forget-missing and take the changed ones with --accept-changed)."
        )


def _print_class_change(p: Any, old: list[str], new: list[str]) -> None:
    """What ``label config --add-class/--rename-class`` changed, and what it means for the
    latest model and the next batches."""
    for a, b in zip(old, new, strict=False):
        if a != b:
            console.print(
                f"class renamed: {a} -> {b} (its labels follow)", highlight=False, soft_wrap=True
            )
    added = new[len(old) :]
    if not added:
        return
    console.print(f"classes added: {', '.join(added)}", highlight=False, soft_wrap=True)
    if p.store.last_good_round(with_model=True) is not None:
        _say(
            "the latest model was trained without them: until the next retrain (label train / "
            "'next batch') it gives them probability 0 and never guesses them."
        )
    _say(p.batches_after_add(added))


def _print_class_removal(p: Any, removed: list[str]) -> None:
    """What ``label config --remove-class`` changed."""
    console.print(
        f"classes removed: {', '.join(removed)} (now: {', '.join(p.current_classes)})",
        highlight=False,
        soft_wrap=True,
    )
    if p.store.last_good_round(with_model=True) is not None:
        _say(
            "the latest model keeps an output for them, at probability 0: it never guesses or "
            "predicts them; the next retrain learns the remaining classes only."
        )


@label_app.command(
    "predict",
    short_help="The latest model's predictions, on the project's images or a new folder.",
)
def predict_cmd(
    project: ProjectArg,
    images: Annotated[
        str,
        typer.Option(
            "--images",
            help="all, unlabeled (no label: skipped and unsure included) or labeled.",
        ),
    ] = "all",
    folder: Annotated[
        Path | None,
        typer.Option(
            help="Predict the images of this folder instead (new images, not in the "
            "project: read as `label scan` reads the image folder); paths relative to it.",
            show_default=False,
        ),
    ] = None,
    min_prob: Annotated[
        float,
        typer.Option(
            help="Keep only predictions whose probability is at least this (0..1); the "
            "held-out line says how accurate such predictions were."
        ),
    ] = 0.0,
    top: Annotated[int, typer.Option(help="Classes given per image, most probable first.")] = 1,
    format: Annotated[
        str, typer.Option("--format", metavar="csv|json", help="csv or json.")
    ] = "csv",
    out: Annotated[
        Path | None, typer.Option(help="Write to this file instead of stdout (-: stdout).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """The latest model's predictions on the project's images, or with --folder on a folder of new images (path, class, probability, the given label), and how accurate held-out predictions at or above --min-prob were."""
    from fishermask.label.predict import (
        check_options,
        held_out_line,
        predict_folder,
        predict_project,
    )

    if out is not None and str(out) == "-":
        out = None  # standard output, as without --out
    _check_format(format)
    try:
        check_options(images, min_prob, top)
        if out is not None:
            from fishermask.label.project import check_out_file

            check_out_file(out)
        p = _open(project)
        if out is not None:
            p.check_out_place(out)
        unread: list[tuple[str, str]] = []
        if folder is None:
            res = predict_project(p, which=images, min_prob=min_prob, top=top, progress=progress)
        elif images != "all":
            raise ConfigError(
                f"--images {images} picks among the project's images; --folder predicts every "
                "image of another folder: give one of them."
            )
        else:
            res = predict_folder(
                p, folder, min_prob=min_prob, top=top, progress=progress, unread=unread
            )
    except FishermaskError as e:
        _fail(str(e))
    from fishermask.label.images import refused_lines

    for line in refused_lines(unread, "not read"):
        _say(line)
    m = res.model
    if format == "json":
        text = json.dumps(res.as_json(), indent=1) + "\n"
    else:
        text = res.csv_text()
    if out is None:
        sys.stdout.write(text)
    else:
        from fishermask.experiments.store import write_atomic

        write_atomic(out, lambda f: f.write(text.encode()))
    if not m.chose_batch:
        chose = f"the current batch (round {m.queue_round}) is a revisit, not chosen with it"
    elif m.queue_round == m.round_id:
        chose = "the current batch was chosen with it"
    else:
        chose = f"the current batch (round {m.queue_round}) was chosen with it"
    kept = f", {len(res.rows)} with prob >= {min_prob:g}" if min_prob > 0 else ""
    where = f"; written to {out}" if out is not None else ""
    if folder is not None:
        _say(
            f"model of round {m.round_id} (trained on {counted(m.n_labels, 'label')}): "
            f"{counted(res.considered, 'image')} of {folder} ({len(unread)} not read){kept}{where}."
        )
    else:
        _say(
            f"model of round {m.round_id} (trained on {counted(m.n_labels, 'label')}; {chose}): "
            f"{res.considered} {'' if images == 'all' else images + ' '}images{kept}{where}."
        )
    _say(held_out_line(res.held_out))
    if res.added_since:
        from fishermask.label.predict import added_since_line

        _say(added_since_line(res.added_since, project))
