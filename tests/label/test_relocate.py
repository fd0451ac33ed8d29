"""`label config PROJECT --images NEW`: a project follows its image folder to a new place
(another disk, a renamed parent, a colleague's copy), checked image by image before anything
is written; and a project moved together with its images finds them without a command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fishermask.label import images as imgs
from fishermask.label.project import Project
from fishermask.label.store import DB_NAME
from tests.label.conftest import AUTH, api_client, browser_only, label_truth, make_folder
from tests.label.test_forget import _snapshot
from tests.label.test_image_cache import _counting
from tests.label.test_label_cli import _run

ROOT = Path(__file__).resolve().parents[2]


def _copy(src: Path, dst: Path) -> Path:
    """Copy an image folder as a plain `cp -r` does (new modification times)."""
    shutil.copytree(src, dst, copy_function=shutil.copy)
    return dst


def _one_line(r) -> str:
    """The single line a refusal printed (on stderr), with its wrapping undone."""
    assert r.exit_code == 2, r.output
    assert r.stdout == "", r.stdout
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def _moved(project, tmp_path) -> Path:
    """The project's images copied to another disk, the old folder gone."""
    new = _copy(project.root, tmp_path / "disk2" / "photos")
    shutil.rmtree(project.root)
    return new


def test_repointing_keeps_labels_history_folds_and_caches(project, tmp_path, monkeypatch):
    label_truth(project, 2)
    project.add_label_rows([("red/007.png", "green")], source="human", what="t")  # history
    project.run_round(train_model=True)  # a model, held-out predictions
    project.images()  # the decoded images cached under the old paths
    ids = project.store.image_ids_by_path()
    kept = {
        t: rows
        for t, rows in json.loads(_snapshot(project.dir)).items()
        if t not in ("meta", "settings_history", "images")
    }
    old = project.root
    project.close()
    new = _moved(project, tmp_path)

    r = _run("config", project.dir, "--images", new, "--no-progress")
    assert r.exit_code == 0, r.output
    assert f"images: {old} -> {new}" in r.stdout
    said = r.stderr.replace("\n", " ")
    assert "checked 24 of the 24 images (size and SHA-256)" in said, said
    assert "labels, history, held-out folds, models and thumbnails are kept" in said
    assert "the decoded images of 1 of 1 scans were kept" in said, said

    after = json.loads(_snapshot(project.dir))
    assert {t: rows for t, rows in after.items() if t in kept} == kept
    p = Project(project.dir)
    assert p.root == new and p.root_note is None
    assert p.store.image_ids_by_path() == ids
    history = p.store.settings_history()[-1]["changes"]
    assert history["image_root"] == [str(old), str(new)]
    assert history["image_root_rel"] == ["../images", "../disk2/photos"]
    for r in p.store.images():  # recorded: the next scan does not hash them again
        assert r.mtime_ns == (new / r.path).stat().st_mtime_ns, r.path

    read_one = imgs.read_one  # the real one, for the expected pixels
    decoded = _counting(monkeypatch)
    x, order = p.images()
    assert decoded == []  # keyed by content, not folder: not decoded again
    by_id = {i: rel for rel, i in ids.items()}
    for k, i in enumerate(order):
        want = read_one(new, by_id[i], p.image_size, p.channels, p.fit).pixels
        assert (x[k].numpy() == want).all()
    p.close()
    monkeypatch.undo()

    r = _run("scan", project.dir, "--no-progress")  # nothing missing, changed or new
    assert r.exit_code == 0, r.output
    assert "0 new images (24 in all); 0 not added, 0 missing, 0 changed." in r.stdout, r.output
    r = _run("train", project.dir, "--no-progress")
    assert r.exit_code == 0, r.output
    r = _run("config", project.dir)
    assert f"images: {new} (--images NEW when the folder moved)" in r.stdout


def _other_images(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "other", seed=7)  # the same paths, other pixels


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "nowhere",
            "no such folder (looked for {new}); give the folder that now holds the "
            "project's images (they were in {old}); nothing was changed.",
        ),
        (
            "file",
            "a file, not a folder; give the folder that now holds the project's images; "
            "nothing was changed.",
        ),
        ("same", "is already the project's image folder ({old}); nothing was changed"),
        ("empty", "is empty: give the folder their paths are relative to"),
        (
            "other",
            "holds the project's image paths, but none of their 24 files has the content "
            "that was scanned (e.g. ",
        ),
        ("unrelated", "holds none of the project's 24 images at its path (looked for "),
        (
            "above",
            "holds none of the project's 24 images at its path (looked for blue/000.png, "
            "blue/001.png, blue/002.png and 21 more); {new}/photos holds them (e.g. "
            "blue/000.png): give that folder; nothing was changed.",
        ),
        ("below", "{new_parent} holds them (e.g. blue/000.png): give that folder"),
        (
            "some",
            "2 of the project's 24 images are not in it (1 labeled; red/000.png, "
            "green/005.png) and 1 of the project's 24 images differs from the file scanned (0 "
            "labeled; blue/003.png): copy them into {new} from {old} and run this again, or give "
            "--accept-missing",
        ),
    ],
)
def test_a_wrong_folder_is_refused_in_one_line_writing_nothing(project, tmp_path, case, message):
    project.add_label_rows([("red/000.png", "red")], source="import", what="t")
    old = project.root
    new = {
        "nowhere": tmp_path / "no" / "such",
        "file": old / "red" / "000.png",
        "same": old,
        "empty": tmp_path / "empty",
        "other": tmp_path / "other",
        "unrelated": tmp_path / "unrelated",
        "above": tmp_path / "disk2",
        "below": tmp_path / "disk2" / "photos" / "red",
        "some": tmp_path / "some",
    }[case]
    if case == "empty":
        new.mkdir()
    if case == "other":
        _other_images(tmp_path)
    if case == "unrelated":
        (new / "holiday").mkdir(parents=True)
        (new / "holiday" / "beach.png").write_bytes((old / "red" / "000.png").read_bytes())
    if case in ("above", "below"):
        _copy(old, tmp_path / "disk2" / "photos")
    if case == "some":
        _copy(old, new)
        (new / "red" / "000.png").unlink()
        (new / "green" / "005.png").unlink()
        (new / "blue" / "003.png").write_bytes((old / "blue" / "004.png").read_bytes())
    before = _snapshot(project.dir)
    project.close()
    r = _run("config", project.dir, "--images", new, "--no-progress")
    line = _one_line(r)
    assert line.startswith(f"error: --images {new}"), line
    assert message.format(new=new, old=old, new_parent=new.parent) in line, line
    assert _snapshot(project.dir) == before


def test_accept_missing_takes_a_folder_lacking_some_images(project, tmp_path):
    project.add_label_rows([("red/000.png", "red")], source="import", what="t")
    new = _copy(project.root, tmp_path / "some")
    (new / "red" / "000.png").unlink()
    (new / "blue" / "003.png").write_bytes((new / "blue" / "004.png").read_bytes())
    project.close()
    r = _run("config", project.dir, "--images", new, "--accept-missing", "--no-progress")
    assert r.exit_code == 0, r.output
    said = r.stderr.replace("\n", " ")
    assert "checked 22 of the 24 images" in said, said
    assert "taken with --accept-missing: 1 missing and 1 changed in the new folder" in said
    r = _run("scan", project.dir, "--no-progress")
    assert r.exit_code == 0, r.output
    assert (
        "missing: red/000.png (scanned earlier; no longer a file in the image folder)" in r.output
    )
    assert "changed: blue/003.png differs from the image that was scanned" in r.output
    assert "1 missing, 1 changed" in r.stdout


def test_images_forgotten_after_accept_missing_leave_the_others_decoded(
    project, tmp_path, monkeypatch
):
    project.images()  # cached under the old paths
    project.close()
    new = _moved(project, tmp_path)
    (new / "red" / "000.png").unlink()
    r = _run("config", project.dir, "--images", new, "--accept-missing", "--no-progress")
    assert r.exit_code == 0, r.output
    r = _run("scan", project.dir, "--forget-missing", "--no-progress")
    assert r.exit_code == 0 and "1 forgotten" in r.stdout, r.output
    decoded: list[str] = []
    read_one = imgs.read_one
    monkeypatch.setattr(imgs, "read_one", lambda root, rel, *a: decoded.append(rel))
    p = Project(project.dir)
    x, _ = p.images()
    assert decoded == [] and len(x) == 23  # cut out of the cached entry, not decoded
    monkeypatch.setattr(imgs, "read_one", read_one)
    p.close()


def test_accept_missing_still_refuses_a_folder_of_other_images(project, tmp_path):
    before = _snapshot(project.dir)
    project.close()
    r = _run("config", project.dir, "--images", _other_images(tmp_path), "--accept-missing")
    assert "none of their 24 files has the content" in _one_line(r)
    assert _snapshot(project.dir) == before
    r = _run("config", project.dir, "--accept-missing")
    assert "--accept-missing goes with --images NEW" in _one_line(r)
    r = _run("config", project.dir, "--images", tmp_path, "--batch", "4")
    assert "give it alone" in _one_line(r)
    assert _snapshot(project.dir) == before


def test_refused_while_a_round_runs_or_a_server_serves(project, tmp_path):
    from fishermask.label import serve_lock

    new = _copy(project.root, tmp_path / "copy")
    rid = project.store.start_round("fishermask", os.getpid())  # alive: this process
    before = _snapshot(project.dir)
    r = _run("config", project.dir, "--images", new, "--no-progress")
    line = _one_line(r)
    assert f"round {rid} is running" in line and "nothing was changed" in line, line
    assert (
        f"run `fishermask label config {project.dir} --images {new}` when it has finished" in line
    )
    assert _snapshot(project.dir) == before
    project.store.finish_round(rid, status="done")
    cid, _, _ = project.store.start_check(5, os.getpid())  # a label check runs
    before = _snapshot(project.dir)
    line = _one_line(_run("config", project.dir, "--images", new, "--no-progress"))
    assert f"a label check is running (check {cid}" in line and "Nothing was changed." in line
    assert _snapshot(project.dir) == before
    project.store.finish_check(cid, status="done")
    before = _snapshot(project.dir)
    with serve_lock.acquire(project.dir) as lock:
        lock.record(address="http://127.0.0.1:1")
        r = _run("config", project.dir, "--images", new, "--no-progress")
    line = _one_line(r)
    assert f"{project.dir} is already being served by" in line and "at http://127.0.0.1:1" in line
    assert "it reads the image folder once, when it starts: stop it (Ctrl-C there)" in line
    assert _snapshot(project.dir) == before
    r = _run("config", project.dir, "--images", new, "--no-progress")
    assert r.exit_code == 0, r.output  # the copy is taken once nothing runs


def test_ctrl_c_while_checking_changes_nothing(project, tmp_path, monkeypatch):
    new = _copy(project.root, tmp_path / "copy")
    before = _snapshot(project.dir)
    project.close()
    seen = []

    def interrupted(path):
        seen.append(path)
        if len(seen) == 5:
            raise KeyboardInterrupt
        return imgs.file_sha256.__wrapped__(path)

    interrupted.__wrapped__ = imgs.file_sha256
    monkeypatch.setattr(imgs, "file_sha256", interrupted)
    r = _run("config", project.dir, "--images", new, "--no-progress")
    assert r.exit_code == 130, r.output
    assert "interrupted while checking the new folder; nothing was changed." in r.stderr
    assert _snapshot(project.dir) == before


def _hashing(monkeypatch) -> list[str]:
    """The files (names relative to their folder's parent) hashed from now on."""
    hashed: list[str] = []
    real = imgs.file_sha256

    def counting(path):
        hashed.append(Path(path).relative_to(Path(path).parents[1]).as_posix())
        return real(path)

    monkeypatch.setattr(imgs, "file_sha256", counting)
    return hashed


def test_every_image_is_hashed_by_default(project, tmp_path, monkeypatch):
    project.close()
    new = tmp_path / "copy"
    shutil.copytree(project.root, new)  # times kept: hashed all the same
    hashed = _hashing(monkeypatch)
    r = _run("config", project.dir, "--images", new, "--no-progress")
    assert r.exit_code == 0, r.output
    assert len(hashed) == 24
    assert "checked 24 of the 24 images (size and SHA-256)" in r.stderr.replace("\n", " ")


def test_quick_hashes_only_the_files_whose_time_is_not_the_recorded_one(
    project, tmp_path, monkeypatch
):
    """Repointing read every file (a large folder on a network drive: an hour); --quick takes
    a file whose size and modification time are the recorded ones as the same file, as
    `label scan` does, and hashes the others."""
    project.close()
    new = tmp_path / "copy"
    shutil.copytree(project.root, new)  # `cp -a`, `rsync -a`: the times kept
    touched = new / "red" / "001.png"  # a new time, the same content: hashed, taken
    t = touched.stat().st_mtime_ns + 10**9
    os.utime(touched, ns=(t, t))
    other = new / "blue" / "002.png"  # a new time, other content of the same size: refused
    data = bytearray(other.read_bytes())
    data[len(data) // 2] ^= 0xFF
    other.write_bytes(bytes(data))
    hashed = _hashing(monkeypatch)
    r = _run("config", project.dir, "--images", new, "--quick", "--no-progress")
    assert "1 of the project's 24 images differs from the file scanned" in _one_line(r)
    assert sorted(hashed) == ["blue/002.png", "red/001.png"]

    shutil.copy2(project.root / "blue" / "002.png", other)  # put back, its time kept
    hashed.clear()
    r = _run("config", project.dir, "--images", new, "--quick", "--no-progress")
    assert r.exit_code == 0, r.output
    assert hashed == ["red/001.png"]
    said = r.stderr.replace("\n", " ")
    assert (
        "checked 24 of the 24 images (--quick: 23 by size and modification time, 1 by size "
        "and SHA-256)" in said
    ), said
    r = _run("config", project.dir, "--quick")
    assert "--quick goes with --images NEW" in _one_line(r)


def test_the_images_are_hashed_in_parallel(project, tmp_path, monkeypatch):
    """A single reader left a network drive's latency and a machine's other cores idle."""
    project.close()
    new = _copy(project.root, tmp_path / "copy")
    two = threading.Barrier(2, timeout=60)  # broken (the command fails) when hashed one by one
    calls = []
    real = imgs.file_sha256

    def together(path):
        calls.append(path)
        if len(calls) <= 2:
            two.wait()
        return real(path)

    monkeypatch.setattr(imgs, "file_sha256", together)
    r = _run("config", project.dir, "--images", new, "--no-progress")
    assert r.exit_code == 0, r.output
    assert len(calls) == 24


_KILL = """
import os, signal, sys
from pathlib import Path
from fishermask.label.store import DB_NAME, Store

store = Store(Path(sys.argv[1]) / DB_NAME)
at, nth = sys.argv[2], int(sys.argv[3])
seen = []

def trace(sql):
    seen.append(sql)
    if at != "after" and sum(s.startswith(at) for s in seen) >= nth:
        os.kill(os.getpid(), signal.SIGKILL)

store._conn.set_trace_callback(trace)
old = store.get_meta("image_root")
rows = store.images()
store.change_root(old, {"image_root": sys.argv[4], "image_root_rel": None},
                  [(r.id, r.mtime_ns + 1) for r in rows])
if at == "after":  # committed; before the cache entries are counted
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize(
    ("at", "nth", "moved"),
    [
        ("INSERT OR REPLACE INTO meta", 1, False),  # the new root written, nothing else
        ("INSERT INTO settings_history", 1, False),  # all but the history row and the commit
        ("COMMIT", 1, False),  # everything written but the commit
        ("after", 0, True),  # after the commit, before the cache entries are counted
    ],
)
def test_a_kill_leaves_the_old_or_the_new_folder(project, tmp_path, at, nth, moved):
    label_truth(project, 2)
    project.images()
    old = project.root
    new = _copy(old, tmp_path / "copy")
    before = _snapshot(project.dir)
    project.close()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [sys.executable, "-c", _KILL, str(project.dir), at, str(nth), str(new)], env=env
    )
    assert proc.returncode == -signal.SIGKILL
    with sqlite3.connect(project.dir / DB_NAME) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    p = Project(project.dir)
    if moved:
        assert p.root == new and len(p.store.settings_history()) == 1
        x, _ = p.images()  # each image hash-checked (not the time recorded), then cached pixels
        assert len(x) == 24
    else:
        assert _snapshot(project.dir) == before and p.root == old
        r = _run("config", project.dir, "--images", new, "--no-progress")
        assert r.exit_code == 0, r.output
    p.close()


def test_serve_after_repointing_shows_the_images(project, tmp_path):
    from fishermask.label.thumbs import Cache

    label_truth(project, 1)
    previews = Cache(project.dir)
    for r in project.store.images():  # the thumbnails made before the move
        previews.get((project.root / r.path).read_bytes(), r.sha256)
    made = sorted(f.name for f in previews.folder.iterdir())
    project.close()
    new = _moved(project, tmp_path)
    with api_client(project.dir) as client:  # before: the folder is gone, said whole
        r = client.get("/api/images/1", headers=AUTH)
        assert r.status_code == 404
        assert f"`fishermask label config {project.dir} --images NEW`" in r.json()["error"]
    r = _run("config", project.dir, "--images", new, "--no-progress")
    assert r.exit_code == 0, r.output
    with api_client(project.dir) as client:
        batch = client.get("/api/batch", headers=AUTH).json()
        image_id = batch["items"][0]["image_id"]
        r = client.get(f"/api/images/{image_id}", headers=AUTH)
        assert r.status_code == 200 and r.content[:4] == b"\x89PNG"
        r = client.get(f"/api/images/{image_id}", params={"size": "thumb"}, headers=AUTH)
        assert r.status_code == 200
    assert made and sorted(f.name for f in previews.folder.iterdir()) == made  # none made again


def test_scan_of_a_lost_folder_names_the_fix(project, tmp_path):
    project.close()
    _moved(project, tmp_path)
    r = _run("scan", project.dir, "--no-progress")
    line = _one_line(r)
    assert (
        f"point the project at it with `fishermask label config {project.dir} --images NEW`" in line
    )


@pytest.mark.parametrize("layout", ["beside", "inside"])
def test_a_project_moved_together_with_its_images_finds_them(tmp_path, layout):
    tree = tmp_path / "tree"
    images = make_folder(tree / "images")
    proj = tree / "proj" if layout == "beside" else images / ".proj"
    p = Project.init(proj, images, "red,green,blue", image_size=(8, 8))
    label_truth(p, 1)
    p.close()
    moved = tmp_path / "elsewhere" / "tree"  # e.g. the whole tree copied to another machine
    moved.parent.mkdir()
    tree.rename(moved)
    new_proj = moved / proj.relative_to(tree)
    p = Project(new_proj)
    assert p.root == moved / "images"
    assert p.root_note is not None and f"--images {moved / 'images'}" in p.root_note
    assert p.settings["image_root"] == str(images.resolve())  # recorded as it was: no write
    p.close()
    r = _run("scan", new_proj, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "0 missing, 0 changed" in r.stdout and "note: the image folder is not at" in r.output
    r = _run("config", new_proj)
    assert f"images found at: {moved / 'images'} (the image folder is not at" in r.stdout
    if layout == "beside":  # the server says so, and shows the images
        from tests.label.test_kill import start_server, stop_server

        proc, _, said = start_server(new_proj)
        stop_server(proc)
        assert f"note: the image folder is not at {images.resolve()} any more" in said, said
        assert "warning: the image folder" not in said, said
    r = _run("config", new_proj, "--images", moved / "images", "--no-progress")
    assert r.exit_code == 0, r.output
    p = Project(new_proj)
    assert p.root == moved / "images" and p.root_note is None
    p.close()


def test_a_moved_project_does_not_take_a_folder_of_other_images(tmp_path):
    tree = tmp_path / "tree"
    p = Project.init(
        tree / "proj", make_folder(tree / "images"), "red,green,blue", image_size=(8, 8)
    )
    p.close()
    (tmp_path / "b").mkdir()
    tree.rename(tmp_path / "b" / "tree")
    make_folder(tmp_path / "b" / "tree" / "images2")
    shutil.rmtree(tmp_path / "b" / "tree" / "images")
    (tmp_path / "b" / "tree" / "images").mkdir()  # an empty folder at the relative place
    p = Project(tmp_path / "b" / "tree" / "proj")
    assert p.root == (tree / "images").resolve() and p.root_note is None
    p.close()


def test_a_project_made_before_records_where_its_images_lie(project):
    with sqlite3.connect(project.dir / DB_NAME) as c:
        c.execute("DELETE FROM meta WHERE key = 'image_root_rel'")
    project.close()
    p = Project(project.dir)
    assert p.store.get_meta("image_root_rel") == "../images"
    p.close()


def test_a_project_moved_without_its_images_records_where_they_now_lie(project, tmp_path):
    images = project.root
    project.close()
    (tmp_path / "work").mkdir()
    moved = project.dir.rename(tmp_path / "work" / "labels")  # the images stay
    p = Project(moved)
    assert p.root == images and p.root_note is None
    assert p.store.get_meta("image_root_rel") == "../../images"
    assert p.store.settings_history() == []  # bookkeeping, not a change of settings
    p.close()
    both = tmp_path / "disk2"  # then both move together, keeping that layout
    both.mkdir()
    (tmp_path / "work").rename(both / "work")
    images.rename(both / "images")
    p = Project(both / "work" / "labels")
    assert p.root == both / "images" and p.root_note is not None
    p.close()


@browser_only
def test_the_page_names_the_fix_then_shows_the_images_once_repointed(project, tmp_path, browser):
    """The page of a project whose image folder moved says, for its image, how to point the
    project at the new place; once pointed there, it shows the image."""
    from selenium.webdriver.common.by import By

    from tests.label.test_browser import _open_page
    from tests.label.test_kill import stop_server

    project.close()
    new = _moved(project, tmp_path)

    def message(d):
        return d.find_element(By.ID, "message").text

    proc, wait = _open_page(project, browser)
    try:
        wait.until(lambda d: "--images NEW" in message(d))
        assert f"fishermask label config {project.dir} --images NEW" in message(browser)
    finally:
        stop_server(proc)
    r = _run("config", project.dir, "--images", new, "--no-progress")
    assert r.exit_code == 0, r.output
    proc, wait = _open_page(project, browser)
    try:
        wait.until(
            lambda d: d.execute_script(
                "const i = document.getElementById('image'); return i.complete && i.naturalWidth"
            )
        )
        assert "--images" not in message(browser)
    finally:
        stop_server(proc)


def test_files_the_scan_refused_are_not_new_after_repointing(project, tmp_path):
    """A file the scan refused (undecodable) is listed once, then counted in one line while
    it stays so. The project repointed to a copy of its folder (new modification times,
    as `cp -r` makes them): the same refused file was a 'new file' again (label status, the
    page: 'a scan is due') and the next scan listed it in full. It is the same file (the
    same bytes at the same path, in a folder whose every image was checked): it stays
    refused, counted; a refused file that differs in the copy is new, and listed."""
    (project.root / "red" / "bad.png").write_bytes(b"not a png at all")
    (project.root / "red" / "worse.png").write_bytes(b"not a png either")
    r = _run("scan", project.dir, "--no-progress")
    assert "not added red/bad.png" in r.output and project.new_files() == 0, r.output
    new = _moved(project, tmp_path)
    (new / "red" / "worse.png").write_bytes(b"not a png either, but other bytes")
    assert _run("config", project.dir, "--images", new, "--no-progress").exit_code == 0
    p = Project(project.dir)
    assert p.new_files() == 1  # worse.png, which changed
    r = _run("scan", p.dir, "--no-progress")
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "not added red/bad.png" not in out, out
    assert "not added 1 file more that the last scan did not add either" in out, out
    assert "not added red/worse.png" in out
    p.close()


def test_a_refused_file_of_the_same_size_but_other_bytes_is_new_after_repointing(project, tmp_path):
    """While the old folder is still there, a refused file is compared byte for byte: one of
    the same size with other bytes in the new folder is new, listed by the next scan."""
    (project.root / "red" / "bad.png").write_bytes(b"not a png: AAAA")
    (project.root / "red" / "same.png").write_bytes(b"not a png: same")
    _run("scan", project.dir, "--no-progress")
    new = _copy(project.root, tmp_path / "copy")  # the old folder stays
    (new / "red" / "bad.png").write_bytes(b"not a png: BBBB")  # the same size
    assert _run("config", project.dir, "--images", new, "--no-progress").exit_code == 0
    p = Project(project.dir)
    assert p.new_files() == 1
    out = " ".join(_run("scan", p.dir, "--no-progress").output.split())
    assert "not added red/bad.png" in out and "not added red/same.png" not in out, out
    p.close()
