"""Files put in the image folder after the last scan: only `label scan` adds them, so
`label status`, `label next`, `label train` and the page say how many there are and to run it."""

from __future__ import annotations

import json
import os
import shutil

from typer.testing import CliRunner

from fishermask.cli import app
from tests.label.conftest import AUTH, api_client

runner = CliRunner()


def test_new_files_are_counted_until_scanned(project, folder, tmp_path):
    assert project.new_files() == 0 and project.new_files_hint() is None
    shutil.copy(folder / "red" / "000.png", folder / "red" / "new.png")
    (folder / "notes.txt").write_text("not an image")  # not an image file: not counted
    (folder / ".hidden.png").write_bytes(b"")  # hidden, as scan skips it
    (folder / ".cache").mkdir()
    shutil.copy(folder / "red" / "000.png", folder / ".cache" / "x.png")  # a hidden folder too
    outside = tmp_path / "outside.png"
    shutil.copy(folder / "red" / "000.png", outside)
    os.symlink(outside, folder / "link.png")  # a link out of the folder: scan refuses it
    (folder / "red" / "deeper").mkdir()
    shutil.copy(folder / "red" / "000.png", folder / "red" / "deeper" / "new.JPG")
    os.symlink(folder / "red" / "001.png", folder / "inside.png")  # a second path to an image
    assert project.new_files() == 3
    hint = project.new_files_hint()
    assert "3 image files" in hint and f"fishermask label scan {project.dir}" in hint
    added, _ = project.scan()
    assert added == 2  # the link to an image of the project is refused: the scan said why
    assert project.new_files() == 0 and project.new_files_hint() is None
    os.unlink(folder / "inside.png")
    assert project.new_files() == 0 and project.new_files_hint() is None


def test_a_file_the_scan_refused_is_not_new_until_it_changes(project, folder):
    """A corrupt photo the scan refused (`not added PATH: why`) is not "added since the last
    scan": the page and `label status` do not ask for a scan for it after every scan (they
    did, right after `label init`), but do again once the file changes (repaired, replaced),
    and a new file beside it is counted."""
    broken = folder / "red" / "broken.jpg"
    broken.write_bytes((folder / "red" / "000.png").read_bytes()[:40])
    assert project.new_files() == 1
    added, unreadable = project.scan()
    assert added == 0 and [r for r, _ in unreadable] == ["red/broken.jpg"]
    assert project.new_files() == 0 and project.new_files_hint() is None
    shutil.copy(folder / "red" / "000.png", folder / "red" / "new.png")
    assert project.new_files() == 1
    project.scan()
    assert project.new_files() == 0
    shutil.copy(folder / "green" / "000.png", broken)  # replaced by a readable image
    assert project.new_files() == 1
    added, unreadable = project.scan()
    assert added == 1 and unreadable == [] and project.new_files() == 0


def test_label_status_and_next_say_that_a_scan_is_due(project, folder):
    project.close()
    r = runner.invoke(app, ["label", "status", str(project.dir)])
    assert r.exit_code == 0 and json.loads(r.stdout)["new_files"] == 0
    assert "label scan" not in r.stderr
    shutil.copy(folder / "red" / "000.png", folder / "red" / "new.png")
    r = runner.invoke(app, ["label", "status", str(project.dir)])
    assert r.exit_code == 0 and json.loads(r.stdout)["new_files"] == 1
    assert "1 image file in the image folder is not in the project" in r.stderr
    assert "adds it, or says why not" in r.stderr.replace("\n", " ")  # one file: not 'them'
    for command in (["next"], ["train", "--no-progress"]):
        r = runner.invoke(app, ["label", command[0], str(project.dir), *command[1:]])
        assert r.exit_code == 0, r.output
        assert f"fishermask label scan {project.dir}" in r.stderr, command


def test_the_page_status_says_that_a_scan_is_due(project, folder):
    shutil.copy(folder / "red" / "000.png", folder / "red" / "new.png")
    from fishermask.label.team import annotator_token
    from tests.label.conftest import TOKEN

    with api_client(project.dir, ("alice",)) as client:
        s = client.get("/api/status", headers=AUTH).json()
        alice = {"Authorization": f"Bearer {annotator_token(TOKEN, 'alice')}"}
        theirs = client.get("/api/status", headers=alice).json()
    assert s["new_files"] == 1 and f"fishermask label scan {project.dir}" in s["new_files_hint"]
    # an annotator cannot scan: the owner's scan, without the project's path
    assert (
        theirs["new_files"] == 1
        and "the owner's `fishermask label scan`" in (theirs["new_files_hint"])
    )
    assert theirs["new_files_hint"] == (
        "1 image file in the image folder is not in the project (added since the last scan?): "
        "the owner's `fishermask label scan` adds it"  # one file: not 'adds them'
    )
