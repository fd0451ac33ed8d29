"""`fishermask label ...` from the command line: every subcommand, and one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from fishermask.cli import app
from fishermask.text import spreadsheet_unsafe
from tests.label.conftest import CLASSES

runner = CliRunner()
TINY_ARGS = [
    "--image-size",
    "8x8",
    "--width",
    "0.25",
    "--batch",
    "6",
    "--min-per-class",
    "2",
    "--max-epochs",
    "3",
    "--max-steps",
    "6",
    "--no-progress",
]


def _run(*args):
    return runner.invoke(app, ["label", *map(str, args)])


def test_headless_workflow(tmp_path, folder):
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    assert "24 images, 3 classes" in r.output and "a varied mix of images" in r.output

    r = _run("next", proj, "--n", "4")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "path,rank,score,guess,guess_prob" and len(lines) == 5

    labels = tmp_path / "labels.csv"
    labels.write_text(
        "path,label\n" + "".join(f"{c}/{i:03d}.png,{c}\n" for c in CLASSES for i in range(7))
    )
    r = _run("add", proj, labels)
    assert r.exit_code == 0 and r.output.strip() == "added 21 labels.", (
        r.output
    )  # not (0 already so)
    r = _run("add", proj, labels)  # again: nothing new, said in words
    assert r.output.strip() == "added 0 labels (21 images already had that label).", r.output

    r = _run("train", proj, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "95 % interval" in r.output and "5-fold cross-validation" in r.output
    assert "labels per class: red 7, green 7, blue 7" in r.output

    out = tmp_path / "next.json"
    r = _run("next", proj, "--n", "2", "--format", "json", "--out", out)
    assert r.exit_code == 0, r.output
    items = json.loads(out.read_text())
    assert len(items) == 2 and all(it["guess"] in CLASSES for it in items)

    ls = tmp_path / "ls.json"
    assert _run("export", proj, "--format", "labelstudio", "--out", ls).exit_code == 0
    r = _run("export", proj, "--format", "csv", "--out", tmp_path / "l.csv")
    assert r.exit_code == 0 and (tmp_path / "l.csv").read_text().count("\n") == 22
    proj2 = tmp_path / "proj2"
    assert (
        _run(
            "init", proj2, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS
        ).exit_code
        == 0
    )
    r = _run("import", proj2, "--labelstudio", ls)
    assert r.exit_code == 0 and "imported 21 labels" in r.output
    r = _run("scan", proj2)
    assert r.exit_code == 0 and "0 new images" in r.output
    r = _run("status", proj2)
    assert json.loads(r.stdout)["labeled"] == 21


def test_errors_are_one_line_exit_2(tmp_path, folder):
    r = _run("init", tmp_path / "p", "--images", folder, "--classes", "a", *TINY_ARGS)
    assert r.exit_code == 2 and "at least 2 classes" in r.output and "Traceback" not in r.output
    r = _run("next", tmp_path / "nothing")
    assert r.exit_code == 2 and "not a labeling project" in r.output
    r = _run(
        "init",
        tmp_path / "p",
        "--images",
        folder,
        "--classes",
        "a,b",
        "--image-size",
        "big",
        *TINY_ARGS[2:],
    )
    assert r.exit_code == 2 and "HxW" in r.output
    assert (
        _run("init", tmp_path / "p", "--images", folder, "--classes", "a,b", *TINY_ARGS).exit_code
        == 0
    )
    r = _run(
        "init",
        tmp_path / "q",
        "--images",
        folder,
        "--classes",
        "a,b",
        "--query-pool",
        "3",
        *TINY_ARGS,
    )
    assert r.exit_code == 2 and "--query-pool 3 is smaller than the batch (6)" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "q").exists()
    r = _run("export", tmp_path / "p", "--format", "xml", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "Unknown export format" in r.output
    r = _run("serve", tmp_path / "p", "--port", "99999")
    assert r.exit_code == 2 and "must be 0" in r.output
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        r = _run("serve", tmp_path / "p", "--port", busy.getsockname()[1])
    assert r.exit_code == 2 and "cannot listen" in r.output


def test_init_query_pool_default_is_the_projects():
    import inspect

    from fishermask.label.cli import init
    from fishermask.label.project import QUERY_POOL, Project

    assert inspect.signature(init).parameters["query_pool"].default == QUERY_POOL
    assert inspect.signature(Project.init).parameters["query_pool"].default == QUERY_POOL


def test_out_paths_that_cannot_take_a_file_are_refused_in_one_line(tmp_path, folder):
    """`next --out DIR` used to choose (and queue) a batch and then fail with a traceback;
    `export --out` under a file gave a traceback; `--out` naming a pipe or device (e.g.
    /dev/stdout) replaced it with a regular file."""
    import os
    import stat

    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    rounds = json.loads(_run("status", proj).stdout)["round"]["id"]
    r = _run("next", proj, "--n", "2", "--out", tmp_path)
    assert r.exit_code == 2 and "is a folder; give a file name" in r.output, r.output
    assert json.loads(_run("status", proj).stdout)["round"]["id"] == rounds  # nothing queued
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for fmt in ("csv", "labelstudio", "npz", "imagefolder"):
        r = _run("export", proj, "--format", fmt, "--out", a_file / "labels.out")
        assert r.exit_code == 2 and "is a file, not a folder" in r.output, r.output
        assert "Traceback" not in r.output
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for args in (("export", proj, "--format", "csv"), ("next", proj)):
        r = _run(*args, "--out", fifo)
        assert r.exit_code == 2 and "not a regular file" in r.output, r.output
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_out_in_a_folder_that_cannot_be_written_is_refused_before_anything(
    tmp_path, folder, monkeypatch
):
    """`--out` in a read-only folder (a read-only mount, no permission) was a 40-line OSError
    traceback from the final write, after `label next` had already replaced the batch."""
    import os

    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    _run("train", proj, "--no-progress")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.access(ro, os.W_OK):  # root writes anyway: make it read-only for the check
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m, **k: Path(p) != ro and real(p, m, **k))
    rounds = json.loads(_run("status", proj).stdout)["round"]["id"]
    for args in (
        ("next", proj, "--n", "2", "--out", ro / "batch.csv"),
        ("predict", proj, "--out", ro / "sub" / "pred.csv"),
        *(("export", proj, "--format", f, "--out", ro / "x") for f in ("csv", "npz", "model")),
        ("export", proj, "--format", "imagefolder", "--out", ro / "tree"),
    ):
        r = _run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert f"cannot write in {ro} (" in r.output and "Traceback" not in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1, r.output
    assert json.loads(_run("status", proj).stdout)["round"]["id"] == rounds  # nothing queued
    monkeypatch.undo()
    ro.chmod(0o755)
    assert list(ro.iterdir()) == []


def test_out_dash_is_standard_output(tmp_path, folder, monkeypatch):
    """`--out -` wrote a file named '-' (and said 'wrote -') instead of standard output."""
    monkeypatch.chdir(tmp_path)
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    r = _run("add", proj, _labels_csv(tmp_path))
    assert r.exit_code == 0, r.output
    r = _run("export", proj, "--format", "csv", "--out", "-")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0] == "path,label" and "red/000.png,red" in r.stdout
    assert "wrote 3 labels to standard output" in r.stderr
    r = _run("export", proj, "--format", "labelstudio", "--out", "-")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 24, r.output
    r = _run("next", proj, "--n", "2", "--out", "-")
    assert r.exit_code == 0 and r.stdout.startswith("path,rank,score,guess,guess_prob\n")
    for fmt in ("npz", "imagefolder", "model"):
        r = _run("export", proj, "--format", fmt, "--out", "-")
        assert r.exit_code == 2 and "standard output takes the text formats" in r.output
    assert not (tmp_path / "-").exists()


def _labels_csv(tmp_path: Path) -> Path:
    f = tmp_path / "labels.csv"
    f.write_text("path,label\nred/000.png,red\ngreen/000.png,green\nblue/000.png,blue\n")
    return f


def test_export_names_every_format_when_one_is_unknown(tmp_path, folder):
    """The list of formats left out `model`."""
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    r = _run("export", proj, "--format", "xml", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "csv, imagefolder, labelstudio, npz, model" in r.output, r.output


def test_serve_on_a_host_it_cannot_bind_names_the_host_not_the_port(tmp_path, folder):
    """An unknown host name or an address of another machine used to warn that the page was
    'reachable from other machines' and then fail with '...; try --port 0' (the port was
    never the problem)."""
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    for host, why in (
        ("no-such-host.invalid", "not a host name this machine can resolve"),
        ("192.0.2.1", "not an address of this machine"),  # TEST-NET-1: never local
    ):
        r = _run("serve", proj, "--host", host, "--port", "0")
        assert r.exit_code == 2 and why in r.output and "--host 127.0.0.1" in r.output, r.output
        assert "try --port" not in r.output and "warning" not in r.output
        assert len(r.output.strip().splitlines()) == 1


def test_init_with_a_bad_labels_file_leaves_no_project_behind(tmp_path, folder):
    """`init --labels` with a bad row said 'nothing was written' but left the project (its
    images scanned, no labels), so the same init, once the file was fixed, was refused:
    'is already a labeling project'."""
    proj = tmp_path / "proj"
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nred/000.png,Red\n")
    args = ("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    r = _run(*args, "--labels", bad)
    assert r.exit_code == 2 and "label 'Red' is not one of" in r.output, r.output
    assert not proj.exists()
    r = _run(*args, "--labels", tmp_path / "nothere.csv")
    assert r.exit_code == 2 and "--labels" in r.output and "no such file" in r.output
    assert not proj.exists()
    bad.write_text("path,label\nred/000.png,red\n")
    r = _run(*args, "--labels", bad)
    assert r.exit_code == 0 and "imported 1 label from" in r.output, r.output
    assert json.loads(_run("status", proj).stdout)["labeled"] == 1


def test_init_of_an_existing_project_or_a_missing_folder_says_what_to_do(tmp_path, folder):
    """A second `label init` of a project said 'open it', which no command does, and an
    --images folder mistyped or a file given said only 'not a folder of images'."""
    proj = tmp_path / "proj"
    args = ("--classes", ",".join(CLASSES), *TINY_ARGS)
    assert _run("init", proj, "--images", folder, *args).exit_code == 0
    r = _run("init", proj, "--images", folder, *args)
    assert r.exit_code == 2
    assert " ".join(r.output.split()) == (
        f"error: {proj} is already a labeling project; nothing was changed: go on with it "
        f"(`fishermask label serve {proj}` serves it, `fishermask label config {proj}` shows "
        "its settings), or give `label init` a new folder."
    )
    r = _run("init", tmp_path / "p2", "--images", tmp_path / "imagse", *args)
    assert r.exit_code == 2 and not (tmp_path / "p2").exists()
    assert f"--images {tmp_path / 'imagse'}: no such folder (looked for " in r.output
    (tmp_path / "a.csv").write_text("path,label\n")
    r = _run("init", tmp_path / "p2", "--images", tmp_path / "a.csv", *args)
    assert r.exit_code == 2 and "a file, not a folder; give the folder that holds" in r.output


def test_a_project_database_that_is_not_sqlite_is_one_line(tmp_path):
    """A project.sqlite that is not a database (a copy cut short, another file) gave a
    sqlite3.DatabaseError traceback from every command."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "project.sqlite").write_text("garbage\n" * 200)
    for args in (("status", proj), ("scan", proj), ("next", proj), ("config", proj)):
        r = _run(*args)
        assert r.exit_code == 2 and "is not a readable project database" in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1


def test_a_project_in_a_read_only_folder_is_not_called_damaged(tmp_path, folder, monkeypatch):
    """A project on a read-only mount (or a folder without write permission) said 'not a
    readable project database ...; restore it from a backup, or create a new project': the
    database was fine, SQLite's WAL mode could not write its -shm file beside it."""
    import os
    import sqlite3

    from fishermask.label import store

    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    proj.chmod(0o555)
    if os.access(proj, os.W_OK):  # root writes anyway: what SQLite does on a read-only mount
        real_access, real_connect = os.access, sqlite3.connect

        class ReadOnly:  # the connection SQLite gives there: WAL cannot start
            def __init__(self, *a, **k):
                self.conn = real_connect(*a, **k)

            def execute(self, sql, *a):
                if "journal_mode" in sql:
                    raise sqlite3.OperationalError("unable to open database file")
                return self.conn.execute(sql, *a)

            def close(self):
                self.conn.close()

        monkeypatch.setattr(
            os,
            "access",
            lambda p, m, **k: not (Path(p) == proj and m & os.W_OK) and real_access(p, m, **k),
        )
        monkeypatch.setattr(store.sqlite3, "connect", ReadOnly)
    try:
        for args in (
            ("status", proj),
            ("export", proj, "--format", "csv", "--out", tmp_path / "x"),
            ("serve", proj, "--port", "0"),  # its lock file, or else the database, says so
        ):
            r = _run(*args)
            assert r.exit_code == 2, r.output
            assert f"{proj} cannot be written (" in r.output, r.output
            assert "backup" not in r.output and "copy the project folder" in r.output
            assert len(r.output.strip().splitlines()) == 1
    finally:
        monkeypatch.undo()
        proj.chmod(0o755)


def test_import_prefix_picks_this_projects_folder_and_says_what_it_left_out(tmp_path, folder):
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output

    def task(ref, label):
        res = [{"type": "choices", "value": {"choices": [label]}}]
        return {"data": {"image": f"/data/local-files/?d={ref}"}, "annotations": [{"result": res}]}

    ls = tmp_path / "ls.json"
    ls.write_text(json.dumps([task("a/red/000.png", "green"), task("b/red/001.png", "red")]))
    r = _run("import", proj, "--labelstudio", ls)
    assert r.exit_code == 2 and "under 2 different folders" in r.output
    assert "Traceback" not in r.output
    r = _run("import", proj, "--labelstudio", ls, "--prefix", "b")
    assert r.exit_code == 0, r.output
    assert "imported 1 label; 1 labeled task outside --prefix left out." in (
        r.output.replace("\n", " ")
    )


def test_import_refuses_tasks_of_one_other_folder_in_one_line(tmp_path, folder):
    """Tasks all under train/ for a project made from images/ used to be matched silently."""
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    res = [{"type": "choices", "value": {"choices": ["green"]}}]
    task = {"data": {"image": "/data/local-files/?d=train/red/000.png"}, "annotations": [
        {"result": res}
    ]}  # fmt: skip
    ls = tmp_path / "ls.json"
    ls.write_text(json.dumps([task]))
    r = _run("import", proj, "--labelstudio", ls)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "under 'train/'" in r.output and "`--prefix train/`" in r.output
    assert "nothing was written" in r.output
    r = _run("import", proj, "--labelstudio", ls, "--prefix", "train/")
    assert r.exit_code == 0 and "imported 1 label." in r.output, r.output
    assert "already" not in r.output, r.output


def test_init_refuses_a_budget_above_the_images_or_below_the_imported_labels(tmp_path, folder):
    proj = tmp_path / "proj"
    common = ("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    r = _run(*common, "--budget", "100000", "--no-progress")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    # refused before decoding: the files found (an unreadable one would be among them)
    assert "--budget 100000 is more than the 24 image files found: use --budget <= 24" in r.output
    assert not proj.exists()
    (folder / "broken.png").write_bytes(b"\x89PNG not really")  # found, then not added
    r = _run(*common, "--budget", "25", "--no-progress")
    assert r.exit_code == 2 and "--budget 25 is more than the project's 24 images" in r.output
    assert not proj.exists()
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"{c}/000.png,{c}\n" for c in CLASSES))
    r = _run(*common, "--labels", labels, "--budget", "2", "--no-progress")
    assert r.exit_code == 2, r.output
    assert "--budget 2 is below the 3 labels already given" in r.output
    assert not proj.exists()
    r = _run(*common, "--labels", labels, "--budget", "24", "--no-progress")
    assert r.exit_code == 0, r.output


def test_label_next_says_it_replaced_the_pages_batch(project):
    project.close()
    r = _run("next", project.dir, "--n", "3")
    assert r.exit_code == 0, r.output
    assert "this is now the labeling page's batch: it replaced the one queued before (6 of" in (
        r.stderr.replace("\n", "")
    )
    r = runner.invoke(app, ["label", "next", "--help"])
    assert "replaces the one queued before" in " ".join(r.output.split())


def test_init_of_images_sorted_in_class_folders_points_to_from_folders(tmp_path, folder):
    """A folder already sorted into folders named as the classes (red/, green/, blue/) made a
    project of unlabeled images without a word, and the labeler labeled by hand, out of the
    budget, what the folders already said. `label init` now says how many images lie in class
    folders and the command that labels them (not with --labels-from-folders, nor when no
    folder is named as a class)."""
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    assert (
        "note: 24 images lie in folders named as classes (blue/, green/, red/): if the folders "
        f"are their labels, `fishermask label add {proj} --from-folders` gives them (or "
        "`label init --labels-from-folders`)"
    ) in " ".join(r.output.split()), r.output
    args = ("--images", folder, "--classes", ",".join(CLASSES), "--labels-from-folders")
    r = _run("init", tmp_path / "q", *args, *TINY_ARGS)
    assert r.exit_code == 0 and "note: " not in r.output, r.output
    r = _run("init", tmp_path / "s", "--images", folder, "--classes", "cat,dog", *TINY_ARGS)
    assert r.exit_code == 0 and "--from-folders" not in r.output, r.output


def test_init_with_enough_labels_points_to_train_not_a_diverse_batch(tmp_path, folder):
    """`init --labels` with enough labels in every class queued a diverse batch 'until a model
    can be trained' (it could, but none was) and said `next: label serve`, so the first batch
    the labeler saw ignored the labels given."""
    labels = tmp_path / "labels.csv"
    rows = [f"{c}/{i:03d}.png,{c}" for c in CLASSES for i in range(2)]  # TINY: 2 per class
    labels.write_text("path,label\n" + "\n".join(rows) + "\n")
    proj = tmp_path / "proj"
    r = _run(
        "init",
        proj,
        "--images",
        folder,
        "--classes",
        ",".join(CLASSES),
        "--labels",
        labels,
        *TINY_ARGS,
    )
    assert r.exit_code == 0, r.output
    assert "until a model can be trained" not in r.output
    assert "until a model is trained (`fishermask label train` or 'next batch'" in r.output
    assert f"next: fishermask label train {proj} (a model on the 6 labels given" in r.output
    r = _run("init", tmp_path / "q", "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert f"next: fishermask label serve {tmp_path / 'q'}" in r.output


def test_import_help_names_the_field_it_reads_first():
    """The help said the annotator came from `completed_by`; `fishermask_annotator` (what
    `label export` writes) is read first."""
    r = _run("import", "--help")
    assert "fishermask_annotator" in r.output and "completed_by" in r.output


def test_ctrl_c_in_train_or_next_says_what_it_left(tmp_path, folder, monkeypatch):
    """Ctrl-C in `label train` (or `label next`) ended it with exit 130 and not a word: nothing
    said whether the round, the batch or the labels were kept."""
    from fishermask.label.project import Project

    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    r = _run("add", proj, _labels_csv(tmp_path))
    assert r.exit_code == 0, r.output

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Project, "train_final", ctrl_c)
        r = _run("train", proj, "--no-progress")
    assert r.exit_code == 130, r.output
    assert "interrupted: round 2 was not committed (marked interrupted); every label is kept" in (
        r.output
    )
    assert f"run `fishermask label train {proj}` again" in r.output
    # what the page and `label status` then say about that round (it said 'KeyboardInterrupt')
    said = json.loads(_run("status", proj).stdout)["round"]["message"]
    assert said == (  # as it is: the next `label serve` restarts an interrupted round
        "stopped with Ctrl-C; every label is kept: the next `label serve` restarts this retrain "
        "('next batch' or `label train` start a new one)"
    )
    with monkeypatch.context() as m:
        m.setattr(Project, "estimate_accuracy", ctrl_c)
        r = _run("train", proj, "--no-progress")
    assert r.exit_code == 130, r.output
    assert "interrupted: round 3's batch is queued, its accuracy estimate was cut short" in (
        r.output
    )
    said = json.loads(_run("status", proj).stdout)["accuracy"]["method"]
    assert said == "not estimated: the estimate was stopped before it finished"  # not KeyboardI...
    assert len(r.output.strip().splitlines()) == 1


def test_ctrl_c_in_init_says_whether_a_project_was_made(tmp_path, folder, monkeypatch):
    """Ctrl-C in `label init` ended it without a word; while it chose the first batch it left
    a project that the same init then refused ('already a labeling project')."""
    from fishermask.label import images as imgs
    from fishermask.label.project import Project

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    args = ("init", tmp_path / "p", "--images", folder, "--classes", ",".join(CLASSES))
    with monkeypatch.context() as m:
        m.setattr(imgs, "read_one", ctrl_c)  # while decoding the images
        r = _run(*args, *TINY_ARGS)
    assert r.exit_code == 130 and "interrupted: no project was made in" in r.output, r.output
    assert not (tmp_path / "p").exists()
    with monkeypatch.context() as m:
        m.setattr(Project, "run_round", ctrl_c)  # while choosing the first batch
        r = _run(*args, *TINY_ARGS)
    assert r.exit_code == 130, r.output
    assert "interrupted while choosing the first batch: the project" in r.output
    assert "(24 images); `fishermask label next" in r.output
    r = _run("next", tmp_path / "p", "--n", "3")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 4, r.output


def test_cold_start_mode_with_one_label_per_class_is_singular(tmp_path, folder):
    """'until every class has 1 labels'."""
    args = [a if a != "2" else "1" for a in TINY_ARGS]  # --min-per-class 1
    assert "--min-per-class" in args
    r = _run("init", tmp_path / "p", "--images", folder, "--classes", ",".join(CLASSES), *args)
    assert r.exit_code == 0, r.output
    assert "until every class has 1 label (when this batch was chosen" in r.output, r.output


def test_csv_files_handed_out_do_not_run_as_formulas_and_round_trip(tmp_path):
    """An image named `=HYPERLINK(...).png` (or a class `-neg`) went into export.csv as it
    was: a spreadsheet opening the export runs it as a formula. Every CSV the tool writes
    escapes such cells with a leading ', and `label add` / `init --labels` read them back."""
    from tests.label.conftest import make_folder

    folder = make_folder(tmp_path / "images")
    classes = ["red", "-neg", "@blue"]  # folders are red, green, blue: rename two
    (folder / "green").rename(folder / "-neg")
    (folder / "blue").rename(folder / "@blue")
    (folder / "red" / "000.png").rename(folder / "red" / "=1+2.png")
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(classes), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    labels = tmp_path / "labels.csv"
    given = {f"{c}/{f.name}": c for c in classes for f in sorted((folder / c).iterdir())[:3]}
    with labels.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows(given.items())
    r = _run("add", proj, labels)
    assert r.exit_code == 0 and "added 9 labels" in r.output, r.output

    out = tmp_path / "export.csv"
    assert _run("export", proj, "--format", "csv", "--out", out).exit_code == 0
    rows = list(csv.reader(out.open()))
    cells = [c for row in rows[1:] for c in row]
    assert "'=1+2.png" not in cells and "'red/=1+2.png" not in cells  # not at a cell's start
    assert "'-neg" in cells and "'@blue" in cells and "'-neg/001.png" in cells
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)
    r = _run("next", proj, "--n", "30")
    assert r.exit_code == 0 and not any(
        c.startswith(("=", "+", "-", "@")) for row in csv.reader(io.StringIO(r.stdout)) for c in row
    )

    proj2 = tmp_path / "proj2"
    r = _run(
        "init",
        proj2,
        "--images",
        folder,
        "--classes",
        ",".join(classes),
        "--labels",
        out,
        *TINY_ARGS,
    )
    assert r.exit_code == 0, r.output
    r = _run("export", proj2, "--format", "csv", "--out", "-")
    assert r.stdout == out.read_text()
    got = {spreadsheet_unsafe(p): spreadsheet_unsafe(c) for p, c in rows[1:]}
    assert got == given


def test_train_says_each_phase_when_its_output_is_not_a_terminal(tmp_path, folder):
    """`label train` into a log or a pipe printed nothing for a minute (its progress bar draws
    only on a terminal): each phase is a line there, once."""
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "path,label\n" + "".join(f"{c}/{i:03d}.png,{c}\n" for c in CLASSES for i in range(4))
    )
    assert _run("add", proj, labels).exit_code == 0
    r = _run("train", proj)  # progress on (the default), and the runner's output is no terminal
    assert r.exit_code == 0, r.output
    said = r.stderr.splitlines()
    assert said.count("training on every label ...") == 1, said
    assert said.count("querying the next batch ...") == 1, said
    r = _run("train", proj, "--no-progress")
    assert r.exit_code == 0 and "training on every label" not in r.stderr


def test_classes_from_a_file_one_per_line(tmp_path, folder):
    """`--classes @FILE`: a hundred names are not typed as a comma list; one per line, blank
    and # lines left out (a byte-order mark too); a comma in a line, an empty or unreadable
    file are one line each, and no project is made."""
    names = tmp_path / "classes.txt"
    names.write_text("\ufeff# our classes\nred\n\n green \nblue\ngolden retriever\n", "utf-8")
    r = _run("init", tmp_path / "p", "--images", folder, "--classes", f"@{names}", *TINY_ARGS)
    assert r.exit_code == 0, r.output
    from fishermask.label.project import Project

    p = Project(tmp_path / "p")
    assert p.classes == ["red", "green", "blue", "golden retriever"]
    p.close()
    bad = tmp_path / "bad.txt"
    for text, said in (
        ("red\ngreen,blue\n", "'green,blue' holds a comma; give one class name per line"),
        ("# nothing\n\n", "names no class; give one class name per line"),
        (b"red\n\xff\xfe\x00green\n", "is not UTF-8 text"),
    ):
        bad.write_bytes(text if isinstance(text, bytes) else text.encode())
        r = _run("init", tmp_path / "q", "--images", folder, "--classes", f"@{bad}", *TINY_ARGS)
        assert r.exit_code == 2 and said in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "q").exists()
    r = _run("init", tmp_path / "q", "--images", folder, "--classes", "@nowhere.txt", *TINY_ARGS)
    assert r.exit_code == 2 and "cannot read nowhere.txt" in r.output, r.output
    assert not (tmp_path / "q").exists()
    dup = tmp_path / "dup.txt"
    dup.write_text("red\nred\n")
    r = _run("init", tmp_path / "q", "--images", folder, "--classes", f"@{dup}", *TINY_ARGS)
    assert r.exit_code == 2 and "--classes names 'red' twice" in r.output, r.output


def test_labels_from_folders(tmp_path, folder):
    """`--labels-from-folders`: the images in a top-level folder named as a class get it (any
    depth below); the others stay unlabeled, said with the folders not named as a class (a
    near miss in case named with its class). None in a class folder, or with --labels too:
    one line, no project."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(5)

    def put(rel: str) -> None:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / rel)

    for rel in ("unsorted/a.png", "unsorted/b.png", "Blue/c.png", "loose.png", "red/2021/d.png"):
        put(rel)
    r = _run(
        "init",
        tmp_path / "p",
        "--images",
        folder,
        "--classes",
        "red,green,blue",
        "--labels-from-folders",
        *TINY_ARGS,
    )
    assert r.exit_code == 0, r.output
    said = " ".join(r.stderr.split())
    assert (
        "labeled 25 images by their folder (red 9, green 8, blue 8); 4 left unlabeled (1 "
        "directly in the image folder; in folders not named as a class: unsorted/ (2), "
        "Blue/ (1; class 'blue'?))"
    ) in said, said
    from fishermask.label.project import Project

    p = Project(tmp_path / "p")
    paths = {r.id: r.path for r in p.store.images()}
    got = {paths[i]: p.classes[c] for i, c in p.store.current_labels().items()}
    p.close()
    assert got["red/2021/d.png"] == "red" and got["blue/000.png"] == "blue"
    assert len(got) == 25 and not {"unsorted/a.png", "Blue/c.png", "loose.png"} & set(got)

    r = _run(
        "init",
        tmp_path / "q",
        "--images",
        folder / "unsorted",
        "--classes",
        "red,green",
        "--labels-from-folders",
        *TINY_ARGS,
    )
    assert r.exit_code == 2 and "no image is in a folder named as a class" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "q").exists()
    csv_file = tmp_path / "l.csv"
    csv_file.write_text("path,label\nred/000.png,red\n")
    r = _run(
        "init",
        tmp_path / "q",
        "--images",
        folder,
        "--classes",
        "red,green",
        "--labels",
        csv_file,
        "--labels-from-folders",
        *TINY_ARGS,
    )
    assert r.exit_code == 2 and "give one" in r.output and not (tmp_path / "q").exists()


def test_add_from_folders_labels_only_images_nobody_has_done(project):
    """`label add --from-folders` (images added by `label scan` into class folders): the
    images without a label, skip or unsure get their folder's class; a label given, a skip,
    an unsure are left as they are, and a label that differs from its folder is named."""
    from tests.label.conftest import label_truth

    label_truth(project, 2)  # red/000, red/001, green/000, ... as their folders say
    ids = {r.path: r.id for r in project.store.images()}
    project.store.add_label(ids["green/005.png"], "skip")
    project.add_label_rows([("blue/006.png", "red")], source="human", what="test")
    project.close()
    r = _run("add", project.dir, "--from-folders")
    assert r.exit_code == 0, r.output
    assert " ".join(r.stdout.split()) == (
        "labeled 16 images by their folder (24 in class folders; 6 already labeled as their "
        "folder says; 1 skipped or unsure, left so); 1 labeled otherwise than their folder says, "
        "left as labeled (e.g. blue/006.png is labeled red): the folder or the label is wrong"
    )
    from fishermask.label.project import Project

    p = Project(project.dir)
    paths = {r.id: r.path for r in p.store.images()}
    cur = {paths[i]: (k, c) for i, (_, k, c) in p.store.current().items()}
    p.close()
    assert cur["blue/006.png"] == ("label", 0) and cur["green/005.png"][0] == "skip"
    assert cur["blue/007.png"] == ("label", 2) and len(cur) == 24
    r = _run("add", project.dir, "--from-folders")  # again: nothing new
    assert r.exit_code == 0 and r.stdout.startswith("labeled 0 images by their folder")
    r = _run("add", project.dir)
    assert r.exit_code == 2 and "or --from-folders, one of them" in r.output


def test_a_near_miss_folder_renamed_after_init_is_labeled_by_scan_and_from_folders(tmp_path):
    """`label init --labels-from-folders` names `Red/` as a near miss of `red`; the fix it
    gives works on the project it has just made: rename the folder, `label scan` (the images
    keep their ids), `label add --from-folders` labels them."""
    from tests.label.conftest import make_folder

    root = make_folder(tmp_path / "img", per_class=3)
    (root / "red").rename(root / "Red")
    proj = tmp_path / "proj"
    r = _run(
        "init", proj, "--images", root, "--classes", ",".join(CLASSES), "--labels-from-folders",
        "--image-size", "8x8", "--no-progress",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    assert "Red/ (3; class 'red'?)" in said and f"`fishermask label scan {proj}`" in said
    (root / "Red").rename(root / "red")
    r = _run("scan", proj, "--no-progress")
    assert r.exit_code == 0 and "3 moved" in r.output, r.output
    r = _run("add", proj, "--from-folders")
    assert r.exit_code == 0 and r.stdout.startswith("labeled 3 images by their folder"), r.output
    r = _run("export", proj, "--format", "csv", "--out", "-")
    assert [x for x in r.stdout.splitlines() if x.startswith("red/")] == [
        f"red/{i:03d}.png,red" for i in range(3)
    ]


def test_labels_from_folders_names_a_plural_folder_as_a_near_miss():
    """A half-sorted folder's `Birds/` for the class `bird` (or `dog/` for `dogs`, `sea-turtle/`
    for `sea_turtle`) is not a class folder (its images stay unlabeled) but is named with the
    class it surely meant, as a folder differing in case is; an unrelated folder is not."""
    from fishermask.label.project import folder_labels

    paths = ["Birds/1.jpg", "Birds/2.jpg", "dog/3.jpg", "sea-turtle/4.jpg", "cat/5.jpg"]
    paths.append("misc/6.jpg")
    rows, said = folder_labels(paths, ["bird", "dogs", "sea_turtle", "cat", "box"])
    assert rows == [("cat/5.jpg", "cat")]
    assert "Birds/ (2; class 'bird'?)" in said, said
    assert "dog/ (1; class 'dogs'?)" in said and "sea-turtle/ (1; class 'sea_turtle'?)" in said
    assert "misc/ (1)" in said
    # the project is made by then: the rename is followed by a scan and --from-folders, not
    # by a new `label init` (which the line had said: 'rename it ... before `label init`')
    assert (
        "rename it as the class, then `fishermask label scan PROJECT` (their labels, skips and "
        "history follow them) and `fishermask label add PROJECT --from-folders`, or give their "
        "labels with `label add`"
    ) in said
    rows, said = folder_labels(["Boxes/1.jpg", "cat/2.jpg"], ["box", "cat"])
    assert "Boxes/ (1; class 'box'?)" in said, said
    rows, said = folder_labels(["misc/1.jpg", "cat/2.jpg"], ["box", "cat"])
    assert "misc/ (1)" in said and "rename" not in said  # no near miss, no advice


def test_add_from_folders_leaves_a_label_given_on_the_page_meanwhile(project, monkeypatch):
    """`label add --from-folders` read which images nobody had done, then wrote its labels:
    a label an annotator gave on the page in between (a big folder takes seconds) was
    replaced by the folder's class, though labels given are never changed."""
    from fishermask.label.project import Project

    ids = {r.path: r.id for r in project.store.images()}
    page = Project(project.dir)
    real = project.store.image_ids_by_path

    def a_label_meanwhile():  # the page's annotator labels red/003 (as green) just then
        page.store.add_labels([(ids["red/003.png"], "label", 1)], annotator="alice")
        monkeypatch.setattr(project.store, "image_ids_by_path", real)
        return real()

    monkeypatch.setattr(project.store, "image_ids_by_path", a_label_meanwhile)
    said = project.add_folder_labels()
    page.close()
    cur = project.store.current()
    assert cur[ids["red/003.png"]][1:] == ("label", 1)  # alice's green, left as given
    assert cur[ids["red/004.png"]][1:] == ("label", 0)
    assert said.startswith("labeled 23 images by their folder (24 in class folders"), said
    assert "1 given meanwhile, left as given" in said, said


def test_a_labels_file_saved_by_a_spreadsheet_otherwise_says_how_to_save_it(project, tmp_path):
    """A spreadsheet saves a CSV with semicolons where the decimal separator is a comma (much
    of Europe), with tabs as 'Text', in UTF-16 as 'Unicode Text'. Their header `path;label`
    was refused as 'the first row must be the header `path,label`' (it reads as one), and
    UTF-16 as "'utf-8' codec can't decode byte 0xff in position 0". Each now says what the
    file is and how to save it; nothing is written."""
    csv = tmp_path / "labels.csv"
    for sep, said in ((";", "semicolons (;)"), ("\t", "tabs")):
        csv.write_text(f"path{sep}label\nred/000.png{sep}red\n", encoding="utf-8")
        r = _run("add", project.dir, csv)
        assert r.exit_code == 2, r.output
        assert " ".join(r.output.split()) == (
            f"error: {csv}: its columns are separated by {said}, not commas; save it as CSV "
            "with commas (in a spreadsheet: CSV UTF-8, comma-separated), with the header "
            "`path,label`."
        ), r.output
    csv.write_text("path,label\nred/000.png,red\n", encoding="utf-16")
    r = _run("add", project.dir, csv)
    assert r.exit_code == 2, r.output
    assert " ".join(r.output.split()) == (
        f"error: {csv} is UTF-16 text, not UTF-8; save it as CSV UTF-8 (comma-separated)."
    ), r.output
    csv.write_bytes("path,label\nred/caf\u00e9.png,red\n".encode("latin-1"))
    r = _run("add", project.dir, csv)
    assert r.exit_code == 2, r.output
    assert f"error: {csv} is not UTF-8 text" in " ".join(r.output.split()), r.output
    assert "save it as CSV UTF-8 (comma-separated)" in " ".join(r.output.split()), r.output
    assert project.store.history() == []


def test_a_bad_row_of_labels_is_named_by_its_line_and_a_file_not_added_says_why(tmp_path, folder):
    """`label add` and `init --labels` named a bad row by its count after the header ('row
    2'), one less than the line an editor or a spreadsheet shows it on; a Label Studio task
    by its count too, not its id. A file of the folder the project does not hold (a .heic
    it does not read, a photo added since the scan) was 'not an image of this project',
    though it was right there."""
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    (folder / "IMG_1.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    Image.new("RGB", (8, 8)).save(folder / "red" / "new.png")  # not scanned yet
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "path,label\nred/000.png,red\nred/001.png,Green\nIMG_1.HEIC,red\nred/new.png,red\n"
        "nothere.png,red\n"
    )
    r = _run("add", proj, bad)
    assert r.exit_code == 2, r.output
    line = " ".join(r.stderr.split())
    assert "line 3: label 'Green' is not one of red, green, blue (did you mean 'green'? " in line
    assert "line 4: 'IMG_1.HEIC' is not an image of this project (a .heic file, which " in line
    assert "line 5: 'red/new.png' is not an image of this project (a file of the image " in line
    assert f"`fishermask label scan {proj}` adds it, or says why not)" in line
    assert "row " not in line and "(and 1 more)" in line
    r = _run("init", tmp_path / "p2", "--images", folder, "--classes", ",".join(CLASSES),
             *TINY_ARGS, "--labels", bad)  # fmt: skip
    assert r.exit_code == 2 and "line 3: label 'Green'" in r.stderr, r.output

    res = [{"type": "choices", "value": {"choices": ["red"]}}]
    tasks = [
        {"id": 41, "data": {"path": "red/000.png"}, "annotations": [{"result": res}]},
        {"id": 42, "data": {"path": "red/gone.png"}, "annotations": [{"result": res}]},
    ]
    ls = tmp_path / "ls.json"
    ls.write_text(json.dumps(tasks))
    r = _run("import", proj, "--labelstudio", ls)
    assert r.exit_code == 2, r.output
    assert "task 42: 'red/gone.png' is not an image of this project;" in " ".join(r.stderr.split())


def test_a_file_not_added_says_why_also_when_named_with_dot_slash_or_absolutely(project):
    """The hint that a file of the folder is not added yet ('... `label scan` adds it')
    checked the path as given for a hidden part: './red/new.png' (the '.' part) and an
    absolute path under a folder such as ~/.data had none, though both name the file."""
    from fishermask.errors import ConfigError

    Image.new("RGB", (8, 8)).save(project.root / "red" / "new.png")  # not scanned yet
    for ref in ("./red/new.png", str((project.root / "red" / "new.png").resolve())):
        with pytest.raises(ConfigError) as err:
            project.add_label_rows([(ref, "red")], source="import", what="x.csv")
        assert "a file of the image folder that the project has not added" in str(err.value), ref
    (project.root / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(project.root / ".hidden" / "x.png")
    with pytest.raises(ConfigError) as err:
        project.add_label_rows([("./.hidden/x.png", "red")], source="import", what="x.csv")
    assert "has not added" not in str(err.value)  # a hidden file is never added: no such hint


def test_import_refuses_tasks_matched_by_file_name_alone_unless_match_names(tmp_path, folder):
    """A task whose path matched no image was taken by its file name when one image had that
    name, silently: a camera's IMG_0001.jpg of another folder labeled ours. Refused, counted
    and named, unless --match-names; with it the import line counts and names them."""
    from fishermask.label.project import Project

    (folder / "red" / "000.png").rename(folder / "red" / "IMG_0001.png")
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    res = [{"type": "choices", "value": {"choices": ["green"]}}]
    tasks = [
        {"id": 5, "data": {"image": "/data/upload/1/1a2b3c4d-IMG_0001.png"},
         "annotations": [{"result": res}]},
        {"id": 6, "data": {"path": "red/001.png"}, "annotations": [{"result": res}]},
    ]  # fmt: skip
    ls = tmp_path / "ls.json"
    ls.write_text(json.dumps(tasks))
    r = _run("import", proj, "--labelstudio", ls)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    out = r.output.replace("\n", " ")
    assert "1 task matches an image by their file name alone" in out, out
    assert "task 5 ('/data/upload/1/1a2b3c4d-IMG_0001.png' as 'red/IMG_0001.png')" in out
    assert "nothing was written" in out and "`--match-names`" in out
    p = Project(proj)
    assert p.store.history() == []
    p.close()
    r = _run("import", proj, "--labelstudio", ls, "--match-names")
    assert r.exit_code == 0, r.output
    out = r.output.replace("\n", " ")
    start = "imported 2 labels; 1 task matched by file name only"
    assert out.startswith(start), out
    assert "task 5 ('/data/upload/1/1a2b3c4d-IMG_0001.png' as 'red/IMG_0001.png')" in out


def test_status_is_a_short_summary_with_format_text_and_counts_changed_images(project):
    """`label status` printed only JSON (about a hundred lines). A short summary on a terminal
    (`--format text`), JSON when piped (the runner's output) or with `--format json`; both
    count the image files changed and missing since the scan."""
    from tests.label.conftest import label_truth

    label_truth(project, 2)
    root = project.root
    project.close()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / "red" / "007.png")  # changed
    (root / "blue" / "007.png").unlink()  # missing
    r = _run("status", project.dir, "--format", "text")
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) <= 8, r.output
    out = r.output.replace("\n", " ")
    assert "24 images; 6 labeled (red 2, green 2, blue 2); 0 skipped, 0 unsure" in out, out
    assert "batch: " in out and "rounds: 1 (0 trained a model)" in out
    assert "files: 1 changed, 1 missing since the scan" in out
    assert "--format json" in out
    st = json.loads(_run("status", project.dir).stdout)  # not a terminal: JSON, as before
    assert st["labeled"] == 6 and st["changed"] == 1 and st["missing"] == 1
    assert json.loads(_run("status", project.dir, "--format", "json").stdout) == st


def test_scan_lists_a_file_not_added_once_then_counts_it(tmp_path, folder):
    """Every `label scan` listed the same files it could not add (a folder of phone photos:
    a line each, every time). Listed at the first scan that meets them; later scans say one
    line with their count and how to list them again (--verbose); a file changed since is
    listed again."""
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    (folder / "red" / "broken.png").write_bytes(b"\x89PNG not really")
    r = _run("scan", proj, "--no-progress")
    assert r.exit_code == 0 and "not added red/broken.png: " in r.output, r.output
    r = _run("scan", proj, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "red/broken.png" not in r.output, r.output
    out = r.output.replace("\n", " ")
    assert "not added 1 file that the last scan did not add either" in out, out
    assert f"`fishermask label scan {proj} --verbose` lists them again" in out
    assert "0 new images (24 in all); 1 not added" in out
    r = _run("scan", proj, "--no-progress", "--verbose")
    assert r.exit_code == 0 and "not added red/broken.png: " in r.output, r.output
    (folder / "red" / "broken.png").write_bytes(b"\x89PNG still not an image")  # changed
    r = _run("scan", proj, "--no-progress")
    assert "not added red/broken.png: " in r.output and "last scan" not in r.output, r.output


def test_every_bad_row_is_named_by_the_line_it_starts_on(tmp_path, folder):
    """After a quoted field over two lines (lines 2 and 3), the 'expected `path,label`'
    error of the row on line 4 said 'line 3' (it counted rows), while the other errors
    named file lines, the two-line row by the line it ends on (3): each now names the line
    a row starts on, as an editor shows it."""
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    two = 'path,label\n"red/\n000.png",red\n'  # a path over lines 2 and 3
    short = tmp_path / "short.csv"
    short.write_text(two + "red/001.png\n")  # line 4
    r = _run("add", proj, short)
    assert r.exit_code == 2
    assert "line 4: expected `path,label`" in " ".join(r.stderr.split()), r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text(two + "red/001.png,Green\n")  # line 4
    r = _run("add", proj, bad)
    assert r.exit_code == 2
    out = " ".join(r.stderr.split())
    assert "line 2: 'red/\\n000.png' is not an image" in out and "line 4: label 'Green'" in out, out


def test_dot_dot_in_a_path_is_resolved_inside_the_image_folder_only(tmp_path, folder):
    """`red/../red/new.png` got the 'label scan adds it' hint, but `red/../red/000.png`, an
    image of the project, was 'not an image of this project': `..` is resolved now; a path
    that leads outside the image folder is refused with one line that says so."""
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    good = tmp_path / "good.csv"
    back_in = f"../{folder.name}/green/002.png"  # leaves the folder by name and comes back
    good.write_text(
        f"path,label\nred/../red/000.png,green\n./blue/./001.png,green\n{back_in},blue\n"
    )
    r = _run("add", proj, good)
    assert r.exit_code == 0 and "added 3 labels" in r.output, r.output
    out = tmp_path / "labels.csv"
    assert _run("export", proj, "--format", "csv", "--out", out).exit_code == 0
    assert out.read_text().splitlines()[1:] == [
        "blue/001.png,green",
        "green/002.png,blue",
        "red/000.png,green",
    ]
    outside = tmp_path / "outside.csv"
    outside.write_text("path,label\nred/../../elsewhere/000.png,red\n")
    r = _run("add", proj, outside)
    assert r.exit_code == 2
    line = " ".join(r.stderr.split())
    assert (
        f"line 2: 'red/../../elsewhere/000.png' is not an image of this project (it leads "
        f"outside the image folder {folder}: paths are relative to it, and every image lies "
        "inside it); nothing was written." in line
    ), line


def test_history_and_decide_refuse_a_path_in_the_same_words(tmp_path, folder):
    """`label history` had its own 'is not an image of this project' message, `label decide`
    another (through the rows of `label add`): both say the same line now."""
    proj = tmp_path / "proj"
    r = _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS)
    assert r.exit_code == 0, r.output
    said = (
        f"'red/999.png' is not an image of this project; paths are relative to the image "
        f"folder {folder} (e.g. 'blue/000.png'), or absolute inside it"
    )
    r = _run("history", proj, "red/999.png")
    assert r.exit_code == 2 and " ".join(r.output.split()) == f"error: {said}.", r.output
    r = _run("decide", proj, "red/999.png", "red")
    assert r.exit_code == 2
    assert " ".join(r.output.split()) == (f"error: label decide: {said}; nothing was written."), (
        r.output
    )


def test_label_help_lists_every_command_as_the_guide_does():
    """`fishermask label --help` listed each command with its whole docstring sentence (up to
    seven lines for `status`); it now gives one short line each, the same words as the
    guide's command table (docs/labeling.md, Commands), so the two cannot drift apart."""
    import re

    import typer

    group = typer.main.get_command(app).commands["label"]
    guide = (Path(__file__).resolve().parents[2] / "docs" / "labeling.md").read_text()
    table = dict(re.findall(r"^\| \[`label (\w+)`\]\(#label-\w+\) \| (.+) \|$", guide, re.M))
    assert set(table) == set(group.commands), "the guide's table and the CLI list other commands"
    for name, cmd in group.commands.items():
        short = cmd.get_short_help_str(limit=10_000)
        assert short.rstrip(".").lower() == table[name].lower(), (name, short, table[name])
    r = _run("--help")
    assert r.exit_code == 0
    body = r.output.split("Commands:", 1)[1]
    assert len(body.strip().splitlines()) <= 2 * len(table)  # at most two lines a command


def test_train_and_status_write_the_interval_alike(tmp_path, folder):
    """`label train` wrote the accuracy's interval as '27.2-59.2 %' (a hyphen: read as a
    negative number in a hurry) and `label status` as '27.2–59.2 %': both now use the dash."""
    import re

    from fishermask.label.project import Project
    from tests.label.conftest import label_truth

    proj = tmp_path / "proj"
    assert (
        _run("init", proj, "--images", folder, "--classes", ",".join(CLASSES), *TINY_ARGS).exit_code
        == 0
    )
    p = Project(proj)
    label_truth(p, 8)  # 24 labels: at least 20 for an estimate
    p.close()
    r = _run("train", proj, "--no-progress")
    assert r.exit_code == 0, r.output
    said = re.search(r"\(95 % interval ([0-9.]+)(.)([0-9.]+) %", r.stdout)
    assert said is not None and said.group(2) == "–", r.stdout
    st = _run("status", proj, "--format", "text").stdout
    assert f"95 % interval {said.group(1)}–{said.group(3)} %" in st, st
