"""Bad input found by an audit of the labeling tool: each gets one clear line (or 4xx), no crash,
nothing half-written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fishermask.errors import ConfigError, DataError
from fishermask.label.project import Project
from fishermask.label.store import DB_NAME
from tests.label.conftest import AUTH, CLASSES, TINY
from tests.label.test_label_cli import TINY_ARGS, _run
from tests.label.test_server import _rows

HUGE = 2**64  # beyond SQLite's 64-bit integers


def test_ids_beyond_sqlite_integers_are_404_not_500(client):
    r = client.post("/api/labels", headers=AUTH, json={"image_id": HUGE, "label": "red"})
    assert r.status_code == 404 and "no image" in r.json()["error"]
    r = client.post("/api/undo", headers=AUTH, json={"label_id": HUGE})
    assert r.status_code == 404
    assert client.get(f"/api/images/{HUGE}", headers=AUTH).status_code == 404
    assert _rows(client) == 0


def test_undo_counts_streamed_bytes_too(client):
    def chunks():  # no Content-Length
        for _ in range(10):
            yield b" " * 1000

    r = client.post("/api/undo", headers=AUTH, content=chunks())
    assert r.status_code == 413
    assert _rows(client) == 0


@pytest.mark.parametrize("name", ["a/b", "a\\b", "..", "."])
def test_class_names_that_cannot_be_folder_names_are_refused(tmp_path, folder, name):
    # imagefolder export makes one folder per class
    with pytest.raises(ConfigError, match="folder name"):
        Project.init(tmp_path / "p", folder, f"{name},x", **TINY)
    assert not (tmp_path / "p").exists()


def test_page_config_cannot_end_its_script_element(project):
    from fishermask.label.server import page_config

    text = page_config("t", ["<!--", "a<b>"], ["1", "2"])
    assert "<" not in text and ">" not in text


def test_image_size_too_large_is_refused_before_anything_is_written(tmp_path, folder):
    r = _run(
        "init",
        tmp_path / "p",
        "--images",
        folder,
        "--classes",
        ",".join(CLASSES),
        "--image-size",
        "2000x2000",
        *TINY_ARGS[2:],
    )
    assert r.exit_code == 2 and "--image-size" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "p").exists()


def test_decoding_that_would_not_fit_in_memory_is_refused(tmp_path, folder, monkeypatch):
    from fishermask.label import project as proj

    monkeypatch.setattr(proj, "available_memory", lambda: 1000)
    with pytest.raises(ConfigError, match="smaller --image-size"):
        Project.init(tmp_path / "p", folder, ",".join(CLASSES), **TINY)
    assert not (tmp_path / "p").exists()


def test_an_init_killed_before_any_image_was_added_does_not_block_a_new_init(tmp_path, folder):
    # what a SIGKILL (or the OOM killer) during the scan leaves: the database, no images
    from fishermask.label.store import Store

    (tmp_path / "p").mkdir()
    s = Store(tmp_path / "p" / DB_NAME, create=True)
    s.set_classes(["a", "b"])
    s.close()
    with pytest.raises(ConfigError, match="interrupted"):
        Project(tmp_path / "p")
    Project.init(tmp_path / "p", folder, ",".join(CLASSES), **TINY).close()
    assert Project(tmp_path / "p").store.num_images() == 3 * 8


def test_a_missing_image_says_to_restore_it(project):
    x, _ = project.images()
    row = project.store.images()[0]
    project._decoded = None
    shutil.move(project.root / row.path, project.root / "elsewhere.png")
    with pytest.raises(DataError, match=r"missing.*restore"):
        project.images()


def test_next_and_train_while_a_round_runs_fail_with_one_line(project):
    import os

    project.store.start_round("fishermask", os.getpid())  # a live round (as `label serve`'s)
    project.close()
    for args in (("next", project.dir), ("train", project.dir, "--no-progress")):
        r = _run(*args)
        assert r.exit_code == 2 and "already running" in r.output, r.output
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_imagefolder_export_keeps_every_image_and_ordinary_permissions(project, tmp_path):
    import os
    import stat

    root = project.root
    (root / "red" / "x__y").mkdir()
    (root / "red" / "x").mkdir()
    shutil.copy(root / "red" / "000.png", root / "red" / "x__y" / "z.png")
    shutil.copy(root / "red" / "001.png", root / "red" / "x" / "y__z.png")
    project.scan()
    # two paths that flatten to the same file name (red__x__y__z.png)
    project.add_label_rows(
        [("red/x__y/z.png", "red"), ("red/x/y__z.png", "red")], source="import", what="t"
    )
    assert project.export("imagefolder", tmp_path / "out") == 2
    files = sorted((tmp_path / "out" / "red").iterdir())
    assert len(files) == 2
    (tmp_path / "plain").mkdir()
    mode = stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
    assert stat.S_IMODE(os.stat(tmp_path / "out").st_mode) == mode


def test_imagefolder_export_of_classes_differing_in_case_on_a_case_blind_disk(
    project, tmp_path, monkeypatch
):
    """Classes `red` and `Red` on a file system that ignores case (macOS, Windows by default):
    the second class folder already existed and the export stopped with a bare
    FileExistsError traceback; now one line names both classes and the fix, nothing written.
    (`label config --add-class Red` is refused now; a project made before may hold both.)"""
    from fishermask.errors import ConfigError

    project.store.change_settings({}, lambda was, former: [*was, "Red"])  # as an older one did
    project.reload_classes()
    real = Path.mkdir

    def case_blind(self, *a, **kw):
        siblings = self.parent.iterdir() if self.parent.is_dir() else []
        if any(x.name != self.name and x.name.casefold() == self.name.casefold() for x in siblings):
            raise FileExistsError(str(self))
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", case_blind)
    with pytest.raises(ConfigError) as err:
        project.export("imagefolder", tmp_path / "out")
    said = str(err.value)
    assert "classes 'red' and 'Red' would share one folder" in said, said
    assert "--rename-class Red=NEW" in said and "nothing was exported" in said
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_round_whose_pid_now_names_another_process_is_interrupted(project):
    # after a crash and reboot (or long enough) the dead worker's pid can belong to another
    # live process: the round must still be seen as interrupted, not "running" forever
    import os

    rid = project.store.start_round("fishermask", os.getpid())
    assert project.recover() == [] and project.store.running_round()["id"] == rid
    with project.store.transaction() as c:  # as if pid os.getpid() had been another process's
        c.execute("UPDATE rounds SET pid_start = 'another-boot:1' WHERE id = ?", (rid,))
    assert project.recover() == [rid]
    assert project.store.round(rid)["status"] == "interrupted"


def test_an_imagefolder_export_again_replaces_the_earlier_one_and_nothing_else(project, tmp_path):
    """Exporting again after more labels was refused ("not an empty folder") while the csv
    export overwrote: an earlier imagefolder export (its mark file, class folders of files)
    is replaced whole; a folder with anything else in it is refused, untouched."""
    import json

    from fishermask.label.project import EXPORT_MARK
    from tests.label.conftest import label_truth

    label_truth(project, 2)
    out = tmp_path / "out"
    assert project.export("imagefolder", out) == 6
    mark = json.loads((out / EXPORT_MARK).read_text())
    assert mark["format"] == "imagefolder" and mark["labels"] == 6
    label_truth(project, 3)
    assert project.export("imagefolder", out) == 9
    assert sorted(len(list((out / c).iterdir())) for c in ("red", "green", "blue")) == [3, 3, 3]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # none aside
    (out / "red" / "sub").mkdir()  # the user's own folder inside a class folder
    with pytest.raises(ConfigError, match="neither empty nor an earlier `label export"):
        project.export("imagefolder", out)
    assert (out / "red" / "sub").is_dir() and len(list((out / "red").iterdir())) == 4
    other = tmp_path / "other"
    (other / "red").mkdir(parents=True)  # class folders but no mark: not ours
    with pytest.raises(ConfigError, match="neither empty nor an earlier"):
        project.export("imagefolder", other)


def test_an_imagefolder_export_again_keeps_files_the_user_added_to_it(project, tmp_path):
    """The mark and 'folders of files' are not enough: a photo the user put in a class folder
    of the export (or a folder of their own beside the class folders) was deleted by the next
    export. Only the files the earlier export wrote may be replaced; anything else refuses it."""
    from tests.label.conftest import label_truth

    label_truth(project, 2)
    out = tmp_path / "out"
    project.export("imagefolder", out)
    for mine in (out / "red" / "mine.jpg", out / "extra" / "mine.jpg"):
        mine.parent.mkdir(exist_ok=True)
        mine.write_bytes(b"the user's own photo")
        with pytest.raises(ConfigError, match="neither empty nor an earlier"):
            project.export("imagefolder", out)
        assert mine.read_bytes() == b"the user's own photo"
        mine.unlink()
    (out / "extra").rmdir()
    for seen in (out / ".DS_Store", out / "red" / ".DS_Store", out / "red" / "Thumbs.db"):
        seen.write_bytes(b"a file browser's")  # left by looking at it: still an export
    label_truth(project, 3)
    assert project.export("imagefolder", out) == 9  # nothing of the user's: replaced


def test_an_export_is_not_replaced_when_the_folder_changed_while_it_was_written(
    project, tmp_path, monkeypatch
):
    """The folder was checked once, before the images were copied (minutes for many): a
    file put in it meanwhile was deleted with the earlier export. Checked again just before
    the replacement, which is then refused and the new export removed."""
    from fishermask.label import project as project_mod
    from tests.label.conftest import label_truth

    label_truth(project, 2)
    out = tmp_path / "out"
    project.export("imagefolder", out)
    real = project_mod.check_export_folder

    def check_then_user_writes(folder, kind):
        real(folder, kind)
        (folder / "red" / "mine.jpg").write_bytes(b"the user's own photo")

    monkeypatch.setattr(project_mod, "check_export_folder", check_then_user_writes)
    with pytest.raises(ConfigError, match="changed while"):
        project.export("imagefolder", out)
    assert (out / "red" / "mine.jpg").read_bytes() == b"the user's own photo"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_export_that_fails_to_take_the_place_puts_the_earlier_one_back(
    project, tmp_path, monkeypatch
):
    """The earlier export was renamed aside before the new one took its place: when that last
    rename failed, the earlier one stayed hidden in a dot folder beside it (its place empty)."""
    import os

    from tests.label.conftest import label_truth

    label_truth(project, 2)
    out = tmp_path / "out"
    project.export("imagefolder", out)
    before = sorted(str(f.relative_to(out)) for f in out.rglob("*"))
    real = os.replace

    def the_last_rename_fails(src, dst):
        if Path(dst) == out and Path(src).name.startswith(".out.") and ".old." not in str(src):
            raise OSError(39, "Directory not empty")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", the_last_rename_fails)
    label_truth(project, 3)
    with pytest.raises(OSError):
        project.export("imagefolder", out)
    monkeypatch.undo()
    assert sorted(str(f.relative_to(out)) for f in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
