"""The image folder changing under a project: links that duplicate an image, images edited or
replaced after the scan, images that went missing; and path spellings in label files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fishermask.label.project import Project
from tests.label.conftest import CLASSES, TINY, label_truth
from tests.label.test_label_cli import _run


@pytest.mark.parametrize("pixels", [200, 100])  # over Pillow's limit / over twice it
def test_an_image_over_pillows_pixel_limit_is_one_clean_line(project, monkeypatch, pixels):
    """Pillow printed a raw two-line DecompressionBombWarning for an image over its limit
    (and added it) but refused one over twice the limit: both are now one "not added" line."""
    import warnings

    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(project.root / "red" / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels)  # 16x16 = 256 pixels; 8x8 = 64
    project.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning that escapes fails the test
        r = _run("scan", project.dir, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "Warning" not in r.output and "0 new images (24 in all); 1 not added" in r.output
    line = "not added red/big.png: too large to decode safely (256 pixels; Pillow's limit is "
    assert line in r.output and "shrink it" in r.output


def test_a_link_to_another_image_of_the_folder_is_not_a_second_image(tmp_path, folder):
    os.symlink(folder / "green" / "000.png", folder / "red" / "link_in.png")
    os.link(folder / "blue" / "000.png", folder / "blue" / "hard.png")
    p = Project.init(tmp_path / "p", folder, ",".join(CLASSES), **TINY)
    paths = set(p.store.image_ids_by_path())
    assert len(paths) == 3 * 8  # one entry per file
    assert "green/000.png" in paths and "red/link_in.png" not in paths
    assert ("blue/000.png" in paths) != ("blue/hard.png" in paths)
    p.close()
    r = _run("scan", tmp_path / "p", "--verbose")  # listed again (init refused it)
    assert r.exit_code == 0, r.output
    assert "not added red/link_in.png: the same file as green/000.png" in r.output
    assert "0 new images" in r.output


def test_a_link_already_in_an_older_project_stays_and_is_not_reported(tmp_path, folder):
    # a project scanned before links were deduplicated holds both paths: neither is dropped
    os.symlink(folder / "green" / "000.png", folder / "red" / "link_in.png")
    p = Project.init(tmp_path / "p", folder, ",".join(CLASSES), **TINY)
    p.store.add_images(
        [
            {
                "path": "red/link_in.png",
                "sha256": "x",
                "bytes": 1,
                "width": 8,
                "height": 8,
                "mtime_ns": 0,
            }
        ],
        segment=p.store.next_segment(),
    )
    added, skipped = p.scan()
    assert added == 0 and skipped == []
    p.close()


# -- images edited or replaced after the scan ------------------------------------------------


def _replace(path: Path, like: Path) -> None:
    """Give ``path`` the content of ``like`` and a later modification time."""
    st = path.stat()
    path.write_bytes(like.read_bytes())
    later = st.st_mtime_ns + 10**9
    os.utime(path, ns=(later, later))


def test_an_image_changed_after_the_scan_is_reported_and_never_trained_on(project):
    from fishermask.errors import DataError

    project.add_label_rows([("red/000.png", "red")], source="import", what="t")
    project.images()  # decoded and cached
    _replace(project.root / "red" / "000.png", project.root / "blue" / "000.png")
    project.close()
    r = _run("scan", project.dir)
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if ln.startswith("changed: red/000.png"))
    assert "(labeled 'red')" in line and "--accept-changed" in line and "restore" in line
    assert "1 changed" in r.output
    p = Project(project.dir)
    with pytest.raises(DataError, match=r"red/000.png changed since it was scanned.*accept"):
        p.images()
    with pytest.raises(DataError, match=r"changed since it was scanned"):
        p.export("csv", project.dir / "labels.csv")
    assert not (project.dir / "labels.csv").exists()
    p.close()
    r = _run("train", project.dir, "--no-progress")
    assert r.exit_code == 2 and "changed since it was scanned" in r.output
    assert "Traceback" not in r.output


def test_accepting_a_changed_image_takes_its_content_and_clears_its_label(project):
    from fishermask.label import images as imgs

    project.add_label_rows(
        [("red/000.png", "red"), ("red/001.png", "red")], source="import", what="t"
    )
    project.images()
    _replace(project.root / "red" / "000.png", project.root / "blue" / "000.png")
    _replace(project.root / "red" / "002.png", project.root / "blue" / "002.png")  # unlabeled
    project.close()
    r = _run("scan", project.dir, "--accept-changed")
    assert r.exit_code == 0, r.output
    assert "changed: red/000.png: new content taken; its label 'red' was cleared" in r.output
    assert "changed: red/002.png: new content taken; it had no label" in r.output
    p = Project(project.dir)
    ids = p.store.image_ids_by_path()
    assert p.store.current_labels() == {ids["red/001.png"]: 0}
    undo = p.store.history(ids["red/000.png"])[-1]
    assert undo.kind == "undo" and undo.source == "scan"  # history kept
    row = p.store.image(ids["red/000.png"])
    assert row.sha256 == imgs.file_sha256(p.root / "red" / "000.png")
    x, order = p.images()  # decodes the new content
    new = imgs.read_one(p.root, "red/000.png", (8, 8), 3).pixels
    assert (x[order.index(ids["red/000.png"])].numpy() == new).all()
    p.close()
    r = _run("scan", project.dir)
    assert "0 changed" in r.output and "changed:" not in r.output


def test_a_file_touched_without_a_change_is_not_changed(project):
    path = project.root / "red" / "000.png"
    later = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(later, later))
    assert project.check_files().changed == []
    row = project.store.image(project.store.image_ids_by_path()["red/000.png"])
    assert row.mtime_ns == later  # recorded, so the next check does not hash it again
    project.images()


def test_verify_finds_a_change_that_kept_size_and_time(project):
    path = project.root / "red" / "000.png"
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert project.check_files().changed == []
    assert [r.path for r in project.check_files(verify=True).changed] == ["red/000.png"]


def test_accepting_a_change_that_kept_size_and_time_decodes_the_new_content(project):
    import numpy as np
    from PIL import Image

    from fishermask.label import images as imgs

    path = project.root / "red" / "000.png"
    project.images()  # cached with the old pixels
    st = path.stat()
    old = np.asarray(Image.open(path).convert("RGB"))
    for level in range(10):  # new pixels, the same byte size (found in a few tries)
        Image.fromarray(255 - old).save(path, compress_level=level)
        if path.stat().st_size == st.st_size:
            break
    else:
        pytest.skip("no PNG of the same size")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    (r,) = project.check_files(verify=True).changed
    project.accept_changed([r])
    p = Project(project.dir)  # the cache key (paths, sizes, times) is the old one
    x, ids = p.images()
    new = imgs.read_one(p.root, "red/000.png", (8, 8), 3).pixels
    assert (x[ids.index(r.id)].numpy() == new).all()
    p.close()


def test_imagefolder_export_refuses_a_changed_labeled_image(project, tmp_path):
    from fishermask.errors import DataError

    project.add_label_rows([("red/000.png", "red")], source="import", what="t")
    path = project.root / "red" / "000.png"
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # not even the time says so
    with pytest.raises(DataError, match="changed since it was scanned"):
        project.export("imagefolder", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_page_is_not_served_a_changed_image(client):
    from tests.label.conftest import AUTH

    p = client.project
    image_id = p.store.image_ids_by_path()["red/000.png"]
    r = client.get(f"/api/images/{image_id}", headers=AUTH)
    assert r.status_code == 200 and r.content == (p.root / "red" / "000.png").read_bytes()
    _replace(p.root / "red" / "000.png", p.root / "blue" / "000.png")
    r = client.get(f"/api/images/{image_id}", headers=AUTH)
    assert r.status_code == 409 and "label scan" in r.json()["error"]


# -- images that went missing -----------------------------------------------------------------


def test_the_page_says_which_image_is_missing_and_what_to_do(client, tmp_path):
    """A batch image deleted or moved after the scan: the page said 'cannot show
    cat/1.jpg: image 50 is no longer a file inside the image folder' (403, as for a link
    outside it), with nothing to do about it. Now the path, and the fix."""
    from tests.label.conftest import AUTH

    p = client.project
    ids = p.store.image_ids_by_path()
    (p.root / "red" / "000.png").rename(tmp_path / "elsewhere.png")
    r = client.get(f"/api/images/{ids['red/000.png']}", params={"size": "view"}, headers=AUTH)
    assert r.status_code == 404
    assert r.json()["error"] == (
        "red/000.png is missing from the image folder (moved or deleted since it was "
        f"scanned): skip it (s) and run `fishermask label scan {p.dir}`, which follows an "
        "image moved inside the folder and says how to forget one deleted"
    )
    os.symlink(tmp_path / "elsewhere.png", p.root / "red" / "000.png")  # a link outside
    r = client.get(f"/api/images/{ids['red/000.png']}", headers=AUTH)
    assert r.status_code == 403 and "no longer a file inside the image folder" in r.text


def test_serve_warns_when_the_image_folder_is_gone(project, tmp_path):
    """`label serve` of a project whose image folder was moved or is not mounted started
    without a word; the page then said each image was missing. It now says so when it starts
    (and serves: the labels, the Labeled view's list and the exports are all there)."""
    from tests.label.test_kill import start_server, stop_server

    project.close()
    project.root.rename(tmp_path / "unplugged")
    proc, _, before = start_server(project.dir)
    stop_server(proc)
    assert (
        f"warning: the image folder {project.root} is missing or empty (moved, renamed or not "
        "mounted?), so no image of the project can be shown: mount or restore it at that path, "
        "then reload the page; or, if it now lies elsewhere, stop the server and point the "
        f"project at it with `fishermask label config {project.dir} --images NEW`, then serve "
        "again; do not skip its images"
    ) in before, before


def test_scan_reports_missing_images_and_keeps_their_labels(project, tmp_path):
    from fishermask.errors import DataError

    project.add_label_rows([("red/000.png", "red")], source="import", what="t")
    (tmp_path / "moved").mkdir()
    gone = ["red/000.png"] + [f"green/{i:03d}.png" for i in range(8)] + ["blue/000.png"]
    gone += ["blue/001.png", "blue/002.png"]
    for rel in gone:
        (project.root / rel).rename(tmp_path / "moved" / rel.replace("/", "-"))
    project.close()
    r = _run("scan", project.dir)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "missing: red/000.png (scanned earlier; no longer a file in the image folder)" in lines
    assert sum(ln.startswith("missing: ") for ln in lines) == 11  # ten, then "... and 2 more"
    assert "missing: ... and 2 more" in lines
    assert "12 missing images, 1 of them labeled: their labels are kept" in r.output
    assert "12 missing" in lines[-1]
    p = Project(project.dir)
    assert len(p.store.current_labels()) == 1  # not deleted
    assert p.export("csv", tmp_path / "l.csv") == 1  # the csv export still lists the label
    with pytest.raises(DataError, match=r"red/000.png is missing.*restore"):
        p.export("imagefolder", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    p.close()


def test_next_batch_is_refused_up_front_while_an_image_is_missing_or_changed(client):
    """POST /api/next answered 202 and the round failed ~10 s later in the worker (a failed
    round in the history, the reason only in the status); it now answers 409 with the line
    `label next` prints (the images and both fixes), and neither starts a round."""
    from tests.label.conftest import AUTH

    p = client.project
    rounds = len(p.store.rounds())
    touched = p.root / "green" / "000.png"  # a new time, the same content: not refused
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    p.check_intact()
    (p.root / "red" / "000.png").unlink()
    r = client.post("/api/next", headers=AUTH)
    assert r.status_code == 409, r.text
    missing = r.json()["error"]
    assert missing.startswith(f"image {p.root / 'red/000.png'} of this project is missing")
    assert f"label scan {p.dir} --forget-missing" in missing and "\n" not in missing
    _replace(p.root / "red" / "001.png", p.root / "blue" / "001.png")
    both = client.post("/api/next", headers=AUTH).json()["error"]
    assert both.startswith(missing) and "--accept-changed" in both
    assert f"image {p.root / 'red/001.png'} changed since it was scanned" in both
    assert len(p.store.rounds()) == rounds and client.app.state.worker.proc is None
    for command in ("next", "train"):
        r = _run(command, p.dir, *(["--no-progress"] if command == "train" else []))
        assert r.exit_code == 2 and both in r.output.replace("\n", ""), r.output
    assert len(p.store.rounds()) == rounds  # not a failed round each


# -- Label Studio set-up in docs/labeling.md ----------------------------------------------


def test_the_guide_gives_label_studio_the_names_the_tasks_use(project):
    import re

    from fishermask.label.project import _ls_choice

    readme = (Path(__file__).resolve().parents[2] / "docs" / "labeling.md").read_text()
    image = re.search(r'<Image name="(\w+)" value="\$(\w+)"', readme)
    choices = re.search(r'<Choices name="(\w+)" toName="(\w+)"', readme)
    assert image and choices
    result = _ls_choice("red")
    assert (choices[1], choices[2]) == (result["from_name"], result["to_name"])
    assert image[1] == result["to_name"] and result["type"] == "choices"
    task = project.labelstudio_tasks()[0]
    assert image[2] in task["data"]
    assert task["data"]["image"].startswith("/data/local-files/?d=")
    for setting in ("SERVING_ENABLED", "DOCUMENT_ROOT"):
        assert f"LABEL_STUDIO_LOCAL_FILES_{setting}" in readme


# -- how label files name images --------------------------------------------------------------


def test_a_label_studio_name_that_matches_several_images_says_so(project, tmp_path):
    import json

    from fishermask.errors import ConfigError

    ls = tmp_path / "ls.json"
    ls.write_text(
        json.dumps(
            [
                {
                    "id": 7,
                    "data": {"image": "/data/upload/1/1a2b3c4d-000.png"},  # red/, green/, blue/
                    "annotations": [
                        {"result": [{"type": "choices", "value": {"choices": ["red"]}}]}
                    ],
                }
            ]
        )
    )
    with pytest.raises(ConfigError) as e:
        project.read_labelstudio(ls)
    msg = str(e.value)
    assert "task 7" in msg and "matches 3 images: blue/000.png, green/000.png, red/000.png" in msg
    assert "data.path" in msg and "nothing was written" in msg
    assert project.store.history() == []


def test_label_add_normalises_dot_slash_and_repeated_separators(project, tmp_path):
    csv = tmp_path / "l.csv"
    csv.write_text("path,label\n./red/000.png,red\ngreen//001.png,green\n.\\blue\\002.png,blue\n")
    r = _run("add", project.dir, csv)
    assert r.exit_code == 0 and "added 3 labels" in r.output, r.output
    assert len(project.store.current_labels()) == 3


def test_label_add_matches_a_name_whose_accents_are_composed_otherwise(project, tmp_path):
    """An accented file name can be written in two Unicode forms that look the same: composed
    ('é', NFC, as Linux and Windows tools write it) or decomposed ('e' + an accent, NFD, as
    macOS writes file names). A CSV in the other form than the folder's was refused, every
    row 'café.png is not an image of this project', a name that plainly is one. Such a path
    now names its image, whichever form the file and the CSV have."""
    import unicodedata

    nfc, nfd = (unicodedata.normalize(form, "café 猫.png") for form in ("NFC", "NFD"))
    assert nfc != nfd
    (project.root / "red" / "000.png").rename(project.root / "red" / nfc)
    (project.root / "blue" / "000.png").rename(project.root / "blue" / nfd)
    assert project.scan()[0] == 2
    csv = tmp_path / "l.csv"
    absolute = str(project.root / "blue" / nfc)  # absolute, in the form the file has not
    csv.write_text(f"path,label\nred/{nfd},red\n{absolute},blue\n", encoding="utf-8")
    r = _run("add", project.dir, csv)
    assert r.exit_code == 0 and "added 2 labels" in r.output, r.output
    labeled = {path: label for _, path, label in project.labeled_rows()}
    assert labeled == {f"red/{nfc}": "red", f"blue/{nfd}": "blue"}


def test_a_path_outside_the_image_folder_says_paths_are_relative_to_it(project, tmp_path):
    csv = tmp_path / "l.csv"
    csv.write_text(f"path,label\n{project.root.name}/red/000.png,red\n")
    r = _run("add", project.dir, csv)
    assert r.exit_code == 2 and "is not an image of this project" in r.output
    assert f"relative to the image folder {project.root}" in r.output.replace("\n", "")
    assert "'blue/000.png'" in r.output  # an example


# -- a round being started by the server ------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_another_process_does_not_interrupt_a_round_the_server_is_starting(project, monkeypatch):
    from fishermask.label import server

    seen = {}

    class Proc:  # stands for the worker: a live process (this one)
        pid = os.getpid()

        def poll(self):
            return None

        def terminate(self):
            pass

        def wait(self, timeout=None):
            return 0

    def popen(args, **kwargs):
        # between the round's creation and the worker's pid: `label status` elsewhere
        kwargs["stderr"].close()
        other = Project(project.dir)
        seen["interrupted"] = other.recover()
        seen["status"] = other.store.running_round()
        other.close()
        return Proc()

    monkeypatch.setattr(server.subprocess, "Popen", popen)
    round_id = server.Worker(project).start()
    assert seen["interrupted"] == [] and seen["status"]["id"] == round_id
    assert seen["status"]["pid"] == os.getpid()  # the server's, until the hand-over
    row = project.store.round(round_id)
    assert row["status"] == "running" and row["pid"] == Proc.pid
    project.store.finish_round(round_id, status="failed", message="test")


def test_a_labeled_image_that_became_unreadable_says_how_to_be_rid_of_it(project):
    """`scan --accept-changed` on an image whose new content cannot be read said only
    'restore the original': nothing said what to do when the original is lost."""
    label_truth(project, 1)
    data = (project.root / "red/000.png").read_bytes()
    (project.root / "red/000.png").write_bytes(data[: len(data) // 3])  # cut short
    project.close()
    r = _run("scan", project.dir, "--accept-changed", "--no-progress")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("changed: red/000.png"))
    assert "cannot be read" in line and "restore the original" in line
    assert f"delete the file and forget the image with `fishermask label scan {project.dir} " in (
        line
    )
    # and that way out works: the label goes, the project is whole again
    (project.root / "red/000.png").unlink()
    r = _run("scan", project.dir, "--forget-missing", "--no-progress")
    assert "forgot: red/000.png (labeled 'red': its label goes with it)" in r.output, r.output
    assert r.output.splitlines()[-1].endswith("0 missing, 0 changed, 1 forgotten.")


def test_labelstudio_import_matches_names_and_choices_whose_accents_are_composed_otherwise(
    project, tmp_path
):
    """As `label add` does (above): a Label Studio export written on one system names an
    accented file or class in the other Unicode form than the project's ('e' + accent, NFD,
    as macOS writes names, for 'é', NFC). Such tasks were refused ('not an image of this
    project', 'label ... is not one of ...'); they now name the image and the class, through
    data.image (a URL, under the image folder's name), data.path, and a file name alone."""
    import json
    import unicodedata
    from urllib.parse import quote

    def nfc(s):
        return unicodedata.normalize("NFC", s)

    def nfd(s):
        return unicodedata.normalize("NFD", s)

    project.configure(add_classes=[nfc("crème")])
    (project.root / "red" / "000.png").rename(project.root / "red" / nfc("café.png"))
    (project.root / "blue" / "000.png").rename(project.root / "blue" / nfd("café.png"))
    (project.root / "green" / "000.png").rename(project.root / "green" / nfc("thé.png"))
    assert project.scan()[0] == 3

    def task(i, data, choice):
        result = [{"type": "choices", "value": {"choices": [choice]}}]
        return {"id": i, "data": data, "annotations": [{"result": result}]}

    root = project.root.name
    tasks = [
        task(1, {"image": "/data/local-files/?d=" + quote(f"{root}/red/{nfd('café.png')}")},
             nfd("crème")),
        task(2, {"path": f"blue/{nfc('café.png')}",
                 "image": "/data/local-files/?d=" + quote(f"{root}/blue/{nfc('café.png')}")},
             "blue"),
        task(3, {"image": "/data/upload/3/1a2b3c4d-" + quote(nfd("thé.png"))}, "green"),
    ]  # fmt: skip
    export = tmp_path / "ls.json"
    export.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    r = _run("import", project.dir, "--labelstudio", export, "--match-names")
    assert r.exit_code == 0 and "imported 3 labels" in r.output, r.output
    labeled = {path: label for _, path, label in project.labeled_rows()}
    assert labeled == {
        f"red/{nfc('café.png')}": nfc("crème"),
        f"blue/{nfd('café.png')}": "blue",
        f"green/{nfc('thé.png')}": "green",
    }
    # under --prefix too
    (project.root / "green" / "001.png").rename(project.root / "green" / nfd("ñu.png"))
    assert project.scan()[0] == 1
    url = "/data/local-files/?d=" + quote(f"{root}/green/{nfc('ñu.png')}")
    export.write_text(json.dumps([task(4, {"image": url}, "green")]), encoding="utf-8")
    r = _run("import", project.dir, "--labelstudio", export, "--prefix", f"{root}/")
    assert r.exit_code == 0 and "imported 1 label" in r.output, r.output
    assert (f"green/{nfd('ñu.png')}", "green") in {(p, c) for _, p, c in project.labeled_rows()}
    # in a CSV too, the class named in the other form is the class
    csv = tmp_path / "l.csv"
    csv.write_text(f"path,label\nred/001.png,{nfd('crème')}\n", encoding="utf-8")
    r = _run("add", project.dir, csv)
    assert r.exit_code == 0 and "added 1 label" in r.output, r.output
