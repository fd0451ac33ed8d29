"""The run directory: atomic writes, per-trial round records, and the aggregated outputs.

Layout of ``--out DIR``::

    config.json            resolved configuration + library versions
    results.csv            one row per (strategy, seed, round)
    queries.jsonl          pool indices labeled per (strategy, seed, round), in the order chosen,
                           with each one's index in the data set's own train split, its file
                           (folder data sets), and the strategy's score of each (null: round 0,
                           the random initial set, and strategies without scores)
    query_info.jsonl       strategy extras per query (e.g. FisherMask's mask profile)
    confusion.jsonl        test-set confusion matrix per (strategy, seed, round): class names
                           and [true][predicted] counts
    learning_curves.png    accuracy vs labels, mean +- std over seeds
    summary.md             final accuracy and area under the learning curve
    trials/<strategy>__seed<k>/round_<r>.json   the committed record of each round
    trials/<strategy>__seed<k>/model_<r>.pt     model (+ auxiliary) state after the last round
    round0/seed<k>.pt      the round-0 record and model of seed k, shared by every trial of
                           that seed without an auxiliary module (written once, never replaced)

A round is committed by atomically renaming its record into place, after its
checkpoint; everything else is derived from the records and rewritten
atomically, so a kill at any moment leaves either the old or the new version.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from fishermask.errors import ConfigError, DataError
from fishermask.text import slug

# torch is imported where a checkpoint is saved or loaded: write_atomic also serves
# `fishermask label export`, which starts without torch (tests/label/test_no_torch.py)

RESULT_FIELDS = [
    "strategy",
    "seed",
    "round",
    "n_labeled",
    "accuracy",
    "balanced_accuracy",
    "query_seconds",
    "train_seconds",
    "train_epochs",
    "train_steps",
    "train_accuracy",
]
OPTIONAL_FIELDS = {"train_steps"}  # absent from runs made before it was recorded


def check_out_dir(out_dir: Path) -> None:
    """Raise ``ConfigError`` if ``out_dir`` cannot become a run directory; writes nothing.

    Called before the data set is loaded, so a read-only place or a file named as
    ``--out`` is reported at once, not after minutes of decoding.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file, not a directory; choose a directory.")
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"--out {out_dir} cannot be created: {existing} is a file; choose another --out."
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise ConfigError(
            f"--out {out_dir} cannot be written ({e.strerror or e} in {existing}); "
            "choose a writable directory."
        ) from None


def write_atomic(path: Path, write: Any, mode: str = "wb", *, replace: bool = True) -> bool:
    """Write ``path`` through ``write(file)`` all or nothing: a temporary file in the same
    folder, flushed to disk, then renamed over ``path`` (removed if ``write`` fails).

    With ``replace=False`` an existing ``path`` is kept, even one that another process
    creates meanwhile (the temporary file is hard-linked into place, which fails if the
    name exists); returns whether this call wrote ``path``. On a file system without hard
    links the temporary file is renamed into place if ``path`` does not exist yet, which a
    writer racing this one may replace with its own.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not replace and path.exists():
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in _NO_HARD_LINKS:
                raise
            if path.exists():
                return False
            os.replace(tmp, path)
            return True
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# what os.link raises where the file system has no hard links (FAT, some FUSE and SMB mounts)
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV}


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(Path(path), lambda f: f.write(text), "w")


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_torch_atomic(path: Path, obj: Any) -> None:
    import torch

    write_atomic(Path(path), lambda f: torch.save(obj, f), "wb")


def trial_dirname(strategy: str, seed: int) -> str:
    safe = slug(strategy, keep="_.-", sep="-")
    return f"{safe}__seed{seed}"


class TrialStore:
    """The committed rounds and the latest checkpoint of one (strategy, seed) trial."""

    def __init__(self, out_dir: Path, strategy: str, seed: int) -> None:
        self.dir = Path(out_dir) / "trials" / trial_dirname(strategy, seed)

    def records(self, n_rounds: int | None = None) -> list[dict[str, Any]]:
        """Committed round records to resume from, round 0 first.

        A gap ends the list, and so does the latest checkpoint: records after the last
        round whose model state is on disk are recomputed (deterministically) on resume.
        A finished trial (``n_rounds`` records) needs no model: its records alone are kept,
        so a run directory published without its checkpoints resumes with every finished
        trial done and the others started over (with the same results).
        """
        out = _read_rounds(self.dir)
        if n_rounds is not None and len(out) >= n_rounds:
            return out[:n_rounds]
        while out and not (self.dir / f"model_{len(out) - 1:03d}.pt").exists():
            out.pop()
        return out

    def commit(self, record: dict[str, Any], state: dict[str, Any]) -> None:
        """Write the checkpoint, then the record (the commit point), then drop old checkpoints."""
        r = record["round"]
        save_torch_atomic(self.dir / f"model_{r:03d}.pt", state)
        write_json_atomic(self.dir / f"round_{r:03d}.json", record)
        for old in self.dir.glob("model_*.pt"):
            if old.name != f"model_{r:03d}.pt":
                old.unlink(missing_ok=True)

    def checkpoint(self, round_: int) -> dict[str, Any]:
        import torch

        return torch.load(self.dir / f"model_{round_:03d}.pt", map_location="cpu")


class SharedRound0:
    """The round-0 record and model of one seed, shared by the trials of that seed that train
    no auxiliary module.

    Such trials train the same round-0 model (same initial set, initial weights and training
    draws), bit for bit on one machine; on another CPU model the kernels sum in another order
    and the model differs (measured: 53.35 % and 49.05 % for one seed on two VMs). A long run
    whose trials run on several machines would then compare strategies from different starts.
    The first such trial to commit round 0 writes ``round0/seed<k>.pt``; the others of that seed
    start from it instead of training their own.
    """

    def __init__(self, out_dir: Path, seed: int) -> None:
        self.seed = seed
        self.path = Path(out_dir) / "round0" / f"seed{seed}.pt"

    def load(self) -> dict[str, Any] | None:
        """``{"record": ..., "state": ..., "run": ...}``, or ``None`` while no trial of the seed
        wrote it. ``run`` is what the model was trained for (:func:`round0_inputs` of the
        writing trial's experiment); absent from files written before it was recorded."""
        import torch

        self._check_folder()
        if not self.path.exists():
            return None
        try:
            got = torch.load(self.path, map_location="cpu")
            if not isinstance(got, dict) or not {"record", "state"} <= set(got):
                raise ValueError("it holds no round-0 record and model")
            got["record"] = json.loads(got["record"])
            if not isinstance(got["record"], dict) or not _ROUND0_KEYS <= set(got["record"]):
                raise ValueError("its record is not a round-0 record")
            if not isinstance(got["state"], dict) or not isinstance(
                got["state"].get("model"), dict
            ):
                raise ValueError("it holds no model")
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same advice
            why = e.strerror if isinstance(e, OSError) and e.strerror else "not a round-0 file"
            raise DataError(
                f"The shared round-0 model {self.path} cannot be read ({why}); delete it and "
                f"rerun: the next trial of seed {self.seed} without an auxiliary module trains "
                "round 0 and writes it again."
            ) from None
        return got

    def save(self, record: dict[str, Any], state: dict[str, Any], run: Any = None) -> bool:
        """Write it unless it exists (another trial's stays); returns whether this call wrote it."""
        import torch

        self._check_folder()
        obj = {"record": json.dumps(record), "state": state, "run": run}  # record: round_000.json
        return write_atomic(self.path, lambda f: torch.save(obj, f), "wb", replace=False)

    def _check_folder(self) -> None:
        folder = self.path.parent
        if folder.exists() and not folder.is_dir():
            raise DataError(
                f"{folder} is not a directory: the run directory keeps the shared round-0 "
                "models there; move it away and rerun."
            )


# what a round-0 record read back from round0/seed<k>.pt must hold
_ROUND0_KEYS = {"strategy", "seed", "round", "queried", "labels"}


def _read_rounds(trial_dir: Path) -> list[dict[str, Any]]:
    """The round records of one trial directory, round 0 first; a gap ends the list."""
    out = []
    r = 0
    while (p := trial_dir / f"round_{r:03d}.json").exists():
        out.append(json.loads(p.read_text()))
        r += 1
    return out


def all_records(out_dir: Path) -> list[dict[str, Any]]:
    """Every committed round record under ``out_dir/trials``."""
    return [
        rec for d in sorted((Path(out_dir) / "trials").glob("*__seed*")) for rec in _read_rounds(d)
    ]


def aggregate(
    out_dir: Path, order: list[str] | None = None, classes: list[str] | None = None
) -> list[dict]:
    """Rewrite ``results.csv``, ``queries.jsonl`` and ``query_info.jsonl`` from the records."""
    out_dir = Path(out_dir)
    recs = all_records(out_dir)
    rank = {s: i for i, s in enumerate(order or [])}
    recs.sort(
        key=lambda r: (rank.get(r["strategy"], len(rank)), r["strategy"], r["seed"], r["round"])
    )
    n_cls = max((len(r["per_class_accuracy"]) for r in recs), default=0)
    names = classes or [str(i) for i in range(n_cls)]
    class_fields = class_columns([names[i] if i < len(names) else str(i) for i in range(n_cls)])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RESULT_FIELDS + class_fields)
    for r in recs:
        row = [r.get(k, "") if k in OPTIONAL_FIELDS else r[k] for k in RESULT_FIELDS]
        row += [_fmt(a) for a in r["per_class_accuracy"]] + [""] * (
            n_cls - len(r["per_class_accuracy"])
        )
        w.writerow([_fmt(v) for v in row])
    write_text_atomic(out_dir / "results.csv", buf.getvalue())
    queries = "".join(
        json.dumps(
            {
                "strategy": r["strategy"],
                "seed": r["seed"],
                "round": r["round"],
                "indices": r["queried"],
                **{k: r[k] for k in ("dataset_index", "files") if k in r},
                "scores": r.get("scores"),
            }
        )
        + "\n"
        for r in recs
    )
    write_text_atomic(out_dir / "queries.jsonl", queries)
    info = "".join(
        json.dumps({"strategy": r["strategy"], "seed": r["seed"], "round": r["round"], **r["info"]})
        + "\n"
        for r in recs
        if r.get("info")
    )
    if info:
        write_text_atomic(out_dir / "query_info.jsonl", info)
    confusion = "".join(
        json.dumps(
            {
                "strategy": r["strategy"],
                "seed": r["seed"],
                "round": r["round"],
                "n_labeled": r["n_labeled"],
                "classes": names[: len(r["confusion"])],
                "matrix": r["confusion"],
            }
        )
        + "\n"
        for r in recs
        if r.get("confusion")  # absent from rounds made before it was recorded
    )
    if confusion:
        write_text_atomic(out_dir / CONFUSION_FILE, confusion)
    else:  # no record has one (any more): no file that outlives them
        (out_dir / CONFUSION_FILE).unlink(missing_ok=True)
    return recs


#: Test-set confusion matrix of every (strategy, seed, round) whose record has one.
CONFUSION_FILE = "confusion.jsonl"


def read_confusion(out_dir: Path) -> list[dict[str, Any]]:
    """The lines of ``out_dir/confusion.jsonl`` (``[]`` without one: a run made before
    confusion matrices were recorded); a damaged file raises ``DataError``."""
    path = Path(out_dir) / CONFUSION_FILE
    if not path.exists():
        return []
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        try:
            rec = json.loads(line)
            n = len(rec["matrix"])
            if not (rec["strategy"] and isinstance(rec["round"], int)) or any(
                len(row) != n for row in rec["matrix"]
            ):
                raise ValueError("not a square matrix")
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(
                f"{path} line {i} cannot be read ({e}); the file is truncated or edited: rerun "
                f"`fishermask run` with --out {path.parent} to rewrite it from its records."
            ) from None
        out.append(rec)
    return out


def _slug(name: str) -> str:
    """Letters and digits of any script kept, every other run of characters one ``_``."""
    return slug(name, unicode=True).strip("_") or "class"


def class_columns(classes: list[str]) -> list[str]:
    """``acc_<class>`` column names, unique: a clash gets the class index appended.

    ``cat`` -> ``acc_cat``; ``日本`` -> ``acc_日本``; ``a b`` and ``a-b`` -> ``acc_a_b`` and
    ``acc_a_b_1`` (the second one's index).
    """
    out: list[str] = []
    for i, name in enumerate(classes):
        col = f"acc_{_slug(name)}"
        while col in out:
            col = f"{col}_{i}"
        out.append(col)
    return out


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if v != v else f"{v:.6g}"
    return v


#: Columns ``read_results`` needs; the others are read when present.
REQUIRED_RESULT_FIELDS = (
    "strategy",
    "seed",
    "round",
    "n_labeled",
    "accuracy",
    "query_seconds",
    "train_seconds",
)


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``results.csv`` with numbers parsed; a damaged file raises ``DataError``."""
    rows = []
    fix = f"rerun `fishermask run` with --out {Path(path).parent} to rewrite it from its records"
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [k for k in REQUIRED_RESULT_FIELDS if k not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path} lacks the column(s) {', '.join(missing)}; {fix}.")
        for row in reader:
            parsed: dict[str, Any] = {}
            try:
                for k, v in row.items():
                    if k is None or v is None:  # more or fewer cells than columns
                        raise ValueError("wrong number of cells")
                    if k == "strategy":
                        parsed[k] = v
                    elif k in OPTIONAL_FIELDS:
                        parsed[k] = int(v) if v else -1  # -1: not recorded
                    elif k in ("seed", "round", "n_labeled", "train_epochs"):
                        parsed[k] = int(v)
                    else:
                        parsed[k] = float(v) if v not in ("", None) else float("nan")
            except ValueError as e:
                raise DataError(
                    f"{path} line {reader.line_num} cannot be read ({e}); the file is truncated "
                    f"or edited: {fix}."
                ) from None
            rows.append(parsed)
    return rows
