"""`label scan --forget-missing`: images deleted from the folder leave the project for good
(their labels with them, kept for the record), and everything keyed by image id or position
(labels, queue, decoded-image caches, exports, ids of later images) stays consistent."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fishermask.errors import DataError
from fishermask.label import images as imgs
from fishermask.label.project import Project
from fishermask.label.store import DB_NAME
from tests.label.conftest import AUTH, CLASSES, label_truth, make_folder
from tests.label.test_label_cli import _run

ROOT = Path(__file__).resolve().parents[2]


def _snapshot(project_dir: Path) -> str:
    """Every table's rows (to check that a refused or killed forget changed nothing)."""
    with sqlite3.connect(project_dir / DB_NAME) as c:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = {t: c.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}
    rows.pop("sqlite_sequence", None)
    return json.dumps(rows, sort_keys=True)


def _aligned(p: Project) -> None:
    """The decoded images are the current files' pixels, at the positions of their ids."""
    x, ids = p.images()
    by_id = {r.id: r.path for r in p.store.images()}
    assert ids == sorted(by_id)
    for k, i in enumerate(ids):
        want = imgs.read_one(p.root, by_id[i], p.image_size, p.channels).pixels
        assert (x[k].numpy() == want).all(), by_id[i]


def test_forgotten_images_leave_labels_queue_and_exports(project, tmp_path):
    # a second segment (a later scan), so positions after the forgotten ones shift
    make_folder(project.root / "later", per_class=1, seed=1)
    assert project.scan()[0] == 3
    label_truth(project, 3)
    project.add_label_rows([("later/red/000.png", "red")], source="import", what="t")
    skip = project.store.image_ids_by_path()["blue/006.png"]
    project.store.add_label(skip, "skip")
    project.run_round(train_model=True)
    project.images()  # decoded and cached, before anything is deleted
    ids_before = project.store.image_ids_by_path()
    gone = ["red/000.png", "blue/006.png", "later/red/000.png", "later/green/000.png"]
    queued = next(q["path"] for q in project.store.queue() if q["path"] not in gone)
    gone.append(queued)
    for rel in gone:
        (project.root / rel).unlink()
    project.close()

    r = _run("scan", project.dir, "--forget-missing", "--no-progress")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "forgot: red/000.png (labeled 'red': its label goes with it)" in lines
    assert "forgot: later/red/000.png (labeled 'red': its label goes with it)" in lines
    assert "forgot: blue/006.png (skipped)" in lines
    assert f"forgot: {queued} (unlabeled)" in lines
    assert lines.index("forgot: red/000.png (labeled 'red': its label goes with it)") < (
        lines.index("forgot: blue/006.png (skipped)")
    )  # labeled first
    assert "5 missing images forgotten for good, 2 of them labeled: their labels left" in (
        r.output.replace("\n", "")
    )
    assert "forgotten_images table" in r.output
    assert lines[-1] == "0 new images (22 in all); 0 not added, 0 missing, 0 changed, 5 forgotten."

    p = Project(project.dir)
    left = p.store.image_ids_by_path()
    assert set(left) == set(ids_before) - set(gone)
    assert all(ids_before[path] == i for path, i in left.items())  # ids not renumbered
    assert set(p.store.current_labels()) <= set(left.values())
    assert len(p.store.current_labels()) == 10 - 2
    assert {h.image_id for h in p.store.history()} <= set(left.values())
    queue = p.store.queue()
    assert queued not in {q["path"] for q in queue}
    assert [q["position"] for q in queue] == list(range(len(queue)))
    record = {f["path"]: f for f in p.store.forgotten()}
    assert set(record) == set(gone)
    assert record["red/000.png"]["kind"] == "label" and record["red/000.png"]["class_id"] == 0
    assert record["red/000.png"]["labels"][0]["kind"] == "label"  # its history, kept
    assert record["blue/006.png"]["kind"] == "skip"
    _aligned(p)
    p.close()

    r = _run("train", project.dir, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "labels per class: red 2, green 3, blue 3" in r.output
    r = _run("next", project.dir, "--n", "3")
    assert r.exit_code == 0, r.output
    assert not set(gone) & {ln.split(",")[0] for ln in r.stdout.splitlines()[1:]}

    labels = Project(project.dir).store.current_labels()
    remaining = sorted(path for path, i in left.items() if i in labels)
    out = tmp_path / "exports"
    for fmt, name in (("csv", "l.csv"), ("npz", "l.npz"), ("labelstudio", "ls.json")):
        r = _run("export", project.dir, "--format", fmt, "--out", out / name)
        assert r.exit_code == 0, r.output
    r = _run("export", project.dir, "--format", "imagefolder", "--out", out / "tree")
    assert r.exit_code == 0, r.output
    csv_paths = [ln.split(",")[0] for ln in (out / "l.csv").read_text().splitlines()[1:]]
    assert csv_paths == remaining
    npz = np.load(out / "l.npz")
    assert list(npz["paths"]) == remaining
    for k, path in enumerate(remaining):  # the pixels of each remaining image, not a neighbour's
        assert (npz["x"][k] == imgs.read_one(project.root, path, (8, 8), 3).pixels).all()
    tasks = json.loads((out / "ls.json").read_text())
    assert sorted(t["data"]["path"] for t in tasks) == sorted(left)
    assert all(t["predictions"] for t in tasks)
    labeled = [t["data"]["path"] for t in tasks if t["annotations"]]
    assert sorted(labeled) == remaining
    tree = sorted(f.name for f in (out / "tree").rglob("*.png"))
    assert tree == sorted(path.replace("/", "__") for path in remaining)

    r = _run("scan", project.dir, "--forget-missing", "--no-progress")  # again: nothing to do
    assert r.exit_code == 0, r.output
    assert "nothing to forget: no image of the project is missing." in r.output
    assert r.output.splitlines()[-1].endswith("0 missing, 0 changed.")


def test_a_file_that_comes_back_is_a_new_image_and_ids_are_never_reused(project):
    last = max(project.store.images(), key=lambda r: r.id)
    label_truth(project, 2)
    kept = (project.root / last.path).read_bytes()
    (project.root / last.path).unlink()
    (gone,) = project.forget_missing(project.check_files().missing)
    assert gone["path"] == last.path and gone["kind"] is None
    (project.root / last.path).write_bytes(kept)
    assert project.scan()[0] == 1
    back = project.store.image(project.store.image_ids_by_path()[last.path])
    assert back.id > last.id and back.segment > last.segment  # neither id nor segment reused
    assert back.id not in project.store.current()
    _aligned(project)


def test_refused_while_a_round_runs(project):
    (project.root / "red" / "000.png").unlink()
    rid = project.store.start_round("fishermask", os.getpid())  # alive: this process
    before = _snapshot(project.dir)
    r = _run("scan", project.dir, "--forget-missing", "--no-progress")
    assert r.exit_code == 2, r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert f"round {rid} is running" in r.stderr and "nothing was forgotten" in r.stderr
    assert "--forget-missing` again when it has finished" in r.stderr
    assert _snapshot(project.dir) == before
    project.store.finish_round(rid, status="done")
    r = _run("scan", project.dir, "--forget-missing", "--no-progress")
    assert r.exit_code == 0 and "forgot: red/000.png (unlabeled)" in r.output, r.output


def test_a_round_whose_process_died_does_not_block_it(project):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    project.store.start_round("fishermask", dead.pid)
    (project.root / "red" / "000.png").unlink()
    r = _run("scan", project.dir, "--forget-missing", "--no-progress")
    assert r.exit_code == 0 and "1 forgotten" in r.output, r.output


def test_nothing_missing_says_so_and_a_missing_folder_is_refused(project, tmp_path):
    r = _run("scan", project.dir, "--forget-missing", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "nothing to forget: no image of the project is missing." in r.output
    label_truth(project, 1)
    project.root.rename(tmp_path / "unmounted")
    before = _snapshot(project.dir)
    r = _run("scan", project.dir, "--forget-missing", "--no-progress")
    assert r.exit_code == 2, r.output
    assert "every image of the project (24) is missing" in r.stderr
    assert "not mounted" in r.stderr and "Nothing was forgotten" in r.stderr
    assert _snapshot(project.dir) == before


def test_scan_says_once_that_the_image_folder_is_gone(project, tmp_path):
    label_truth(project, 1)
    project.root.rename(tmp_path / "unmounted")
    before = _snapshot(project.dir)
    r = _run("scan", project.dir, "--no-progress")
    assert r.exit_code == 2, r.output
    lines = r.output.splitlines()
    assert len(lines) == 1 and not lines[0].startswith("missing:"), r.output
    text = r.stderr.replace("\n", "")
    assert f"the image folder {project.root} is missing" in text
    assert "not mounted" in text and "Mount or restore it" in text
    assert _snapshot(project.dir) == before
    project.root.mkdir()  # an empty mount point
    r = _run("scan", project.dir, "--no-progress")
    assert r.exit_code == 2 and len(r.output.splitlines()) == 1, r.output
    assert "is empty and every image of the project (24) is missing" in r.stderr.replace("\n", "")


def test_scan_and_refusals_name_the_new_fix(project):
    from fishermask.errors import DataError

    (project.root / "red" / "000.png").unlink()
    r = _run("scan", project.dir, "--no-progress")
    assert f"fishermask label scan {project.dir} --forget-missing" in r.output.replace("\n", "")
    p = Project(project.dir)
    with pytest.raises(DataError, match=r"restore it, or forget the missing images for good"):
        p.images()
    p.close()


_KILL = """
import os, signal, sys
from pathlib import Path
from fishermask.label.store import DB_NAME, Store

store = Store(Path(sys.argv[1]) / DB_NAME)
at = sys.argv[2]
seen = []

def trace(sql):
    seen.append(sql)
    if at != "after" and sum(s.startswith(at) for s in seen) >= int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)

store._conn.set_trace_callback(trace)
ids = [int(i) for i in sys.argv[4].split(",")]
store.forget_images(ids, still_missing=lambda r: True)
if at == "after":  # committed; the segment caches are not dropped yet
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize(
    ("at", "nth", "forgotten"),
    [
        ("DELETE FROM labels", 2, False),  # the second image's rows, mid-transaction
        ("COMMIT", 1, False),  # everything written but the commit
        ("after", 0, True),  # after the commit, before the decoded images are dropped
    ],
)
def test_a_kill_leaves_the_old_or_the_new_project(project, at, nth, forgotten):
    label_truth(project, 2)
    project.images()  # the decoded images are cached under the old key
    by_path = project.store.image_ids_by_path()
    gone = ["red/000.png", "green/003.png"]
    for rel in gone:
        (project.root / rel).unlink()
    before = _snapshot(project.dir)
    project.close()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    ids = ",".join(str(by_path[g]) for g in gone)
    proc = subprocess.run(
        [sys.executable, "-c", _KILL, str(project.dir), at, str(nth), ids], env=env
    )
    assert proc.returncode == -signal.SIGKILL
    p = Project(project.dir)
    with sqlite3.connect(project.dir / DB_NAME) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []
    if forgotten:
        assert set(p.store.image_ids_by_path()) == set(by_path) - set(gone)
        assert {f["path"] for f in p.store.forgotten()} == set(gone)
        _aligned(p)  # the old cache entry is not read
        r = _run("train", project.dir, "--no-progress")
        assert r.exit_code == 0, r.output
    else:
        assert _snapshot(project.dir) == before
        r = _run("scan", project.dir, "--forget-missing", "--no-progress")
        assert r.exit_code == 0 and "2 forgotten" in r.output, r.output
    p.close()


def test_the_page_after_images_were_forgotten(client):
    p = client.project
    item = client.get("/api/batch", headers=AUTH).json()["items"][0]
    (p.root / item["path"]).unlink()
    r = _run("scan", p.dir, "--forget-missing", "--no-progress")
    assert r.exit_code == 0, r.output
    items = client.get("/api/batch", headers=AUTH).json()["items"]
    assert item["image_id"] not in {it["image_id"] for it in items}
    assert [it["rank"] for it in items] == list(range(1, len(items) + 1))
    r = client.post(
        "/api/labels", headers=AUTH, json={"image_id": item["image_id"], "label": "red"}
    )
    assert r.status_code == 404  # a tab still showing it: refused, nothing written
    assert "was removed from the project" in r.json()["error"] and item["path"] in r.json()["error"]
    assert "reload the page" in r.json()["error"]
    assert client.get(f"/api/images/{item['image_id']}", headers=AUTH).status_code == 404
    assert (
        client.get("/api/images/999999", headers=AUTH).json()["error"] == "no image with id 999999"
    )
    assert p.store.history() == []
    assert client.get("/api/status", headers=AUTH).json()["images"] == 23


def test_a_label_for_an_image_forgotten_meanwhile_writes_nothing(project):
    from fishermask.errors import ConfigError

    i = project.store.image_ids_by_path()["red/000.png"]
    (project.root / "red" / "000.png").unlink()
    project.forget_missing(project.check_files().missing)
    with pytest.raises(ConfigError, match=f"no image with id {i}"):
        project.store.add_labels(
            [(project.store.image_ids_by_path()["red/001.png"], "skip", None), (i, "label", 0)]
        )
    assert project.store.history() == []


def test_a_project_made_before_forgetting_is_upgraded(project):
    with sqlite3.connect(project.dir / DB_NAME) as c:
        c.execute("DROP TABLE forgotten_images")
    project.close()
    (project.root / "red" / "000.png").unlink()
    r = _run("scan", project.dir, "--forget-missing", "--no-progress")
    assert r.exit_code == 0 and "1 forgotten" in r.output, r.output
    assert [f["path"] for f in Project(project.dir).store.forgotten()] == ["red/000.png"]


def test_the_images_left_are_not_decoded_again(project, monkeypatch):
    make_folder(project.root / "later", per_class=2, seed=1)  # a second segment
    project.scan()
    project.images()  # both segments cached
    read_one = imgs.read_one
    want = {
        r.path: read_one(project.root, r.path, (8, 8), 3).pixels for r in project.store.images()
    }
    (project.root / "red" / "003.png").unlink()
    (project.root / "later" / "blue" / "001.png").unlink()
    touched = project.root / "later" / "red" / "000.png"  # same content, a new time
    later = touched.stat().st_mtime_ns + 10**9
    os.utime(touched, ns=(later, later))
    project.close()
    r = _run("scan", project.dir, "--forget-missing", "--no-progress")
    assert r.exit_code == 0 and "2 forgotten" in r.output, r.output
    decoded: list[str] = []

    def counting(root, rel, *args):
        decoded.append(rel)
        return read_one(root, rel, *args)

    monkeypatch.setattr(imgs, "read_one", counting)
    p = Project(project.dir)
    x, ids = p.images()
    by_id = {r.id: r.path for r in p.store.images()}
    assert all((x[k].numpy() == want[by_id[i]]).all() for k, i in enumerate(ids))
    # each segment's images were cut out of its cache entry, keyed by content: the touched
    # file (a new time, its content the same) is not decoded again either
    assert decoded == []
    assert len(list(Path(os.environ["FISHERMASK_CACHE"]).glob("*.pt"))) == 2
    p.close()


def test_npz_export_follows_images_changed_by_another_process(project, tmp_path):
    """An open project whose decoded images predate another process's scan (new images, then
    labeled) or forget-missing exports the current labels with the current pixels, instead of
    stopping on an image id it has not decoded."""
    label_truth(project, 2)
    project.images()  # decoded now, before the other process changes the folder
    other = Project(project.dir)
    make_folder(project.root / "later", per_class=1, seed=1)
    assert other.scan()[0] == 3
    other.add_label_rows([("later/red/000.png", "red")], source="import", what="t")
    (project.root / "blue/000.png").unlink()  # labeled 'blue', forgotten by the other process
    other.forget_missing(other.check_files().missing)
    other.close()

    assert project.export("npz", tmp_path / "l.npz") == 6  # 2 per class, +1 later, -1 forgotten
    z = np.load(tmp_path / "l.npz")
    paths = list(z["paths"])
    assert "later/red/000.png" in paths and "blue/000.png" not in paths
    for k, path in enumerate(paths):
        want = imgs.read_one(project.root, path, project.image_size, project.channels).pixels
        assert (z["x"][k] == want).all(), path
        assert CLASSES[z["y"][k]] == path.split("/")[-2]


def test_npz_export_refuses_rows_without_pixels(project, tmp_path, monkeypatch):
    """Should the images still lack a labeled image after reading both again (a scan racing
    the export), the export stops with one line and writes nothing."""
    label_truth(project, 2)
    real = Project.images

    def without_first(self):
        x, ids = real(self)
        return x[1:], ids[1:]

    monkeypatch.setattr(Project, "images", without_first)
    with pytest.raises(DataError, match=r"changed in the project while this export ran"):
        project.export("npz", tmp_path / "l.npz")
    assert not (tmp_path / "l.npz").exists()
