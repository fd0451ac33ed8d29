"""Byte-for-byte copies among the image files: never queued twice, held out together, said."""

from __future__ import annotations

import csv
import io
import json
import shutil

from typer.testing import CliRunner

from fishermask.cli import app
from fishermask.label.project import Project, fold_of
from tests.label.conftest import CLASSES, TINY

runner = CliRunner()


def _init(proj, folder, *more):
    """``label init`` of a tiny project (the command-line tests' sizes)."""
    from tests.label.test_label_cli import TINY_ARGS

    args = ["--images", str(folder), "--classes", ",".join(CLASSES), *TINY_ARGS, *more]
    return runner.invoke(app, ["label", "init", str(proj), *args])


def _copies(folder):
    """red/000.png copied twice (once into another class's folder), blue/003.png once."""
    shutil.copyfile(folder / "red" / "000.png", folder / "red" / "copy-a.png")
    shutil.copyfile(folder / "red" / "000.png", folder / "green" / "copy-b.png")
    shutil.copyfile(folder / "blue" / "003.png", folder / "blue" / "copy-c.png")
    return [
        ["red/000.png", "red/copy-a.png", "green/copy-b.png"],
        ["blue/003.png", "blue/copy-c.png"],
    ]


def _expected(groups, ids):
    """``{copy path: first path}``: in each group of same bytes, the image with the lowest id
    (the first added; in one scan, the first path in sorted order) is the one copied."""
    out = {}
    for g in groups:
        first = min(g, key=ids.__getitem__)
        out |= {c: first for c in g if c != first}
    return out


def test_a_copy_is_never_queued_and_a_batch_never_holds_two(tmp_path, folder):
    """Copies of an image were queued like any other: a labeling team labeled the same
    bytes again (or, in one batch, twice), spending budget on nothing new."""
    groups = _copies(folder)
    p = Project.init(tmp_path / "proj", folder, ",".join(CLASSES), **TINY)
    try:
        ids = p.store.image_ids_by_path()
        copies = p.store.copies()
        assert {ids[c]: ids[f] for c, f in _expected(groups, ids).items()} == copies
        by_id = {v: k for k, v in ids.items()}
        seen_ids = []
        for _ in range(20):  # a batch of 6 until nothing is left
            row = p.run_round(train_model=False)
            if "nothing left" in row["mode"]:
                assert "3 copies of other images are never shown" in row["mode"]
                break
            batch = [q["image_id"] for q in p.store.queue()]
            assert batch and not set(batch) & set(copies), "a copy was queued"
            seen_ids += batch
            p.store.add_labels(
                [(i, "label", CLASSES.index(by_id[i].split("/")[0])) for i in batch],
                source="test",
            )
        else:
            raise AssertionError("never ran out of images")
        assert sorted(seen_ids) == sorted(set(ids.values()) - set(copies))
    finally:
        p.close()


def test_copies_are_held_out_with_the_image_they_copy():
    copies = {7: 2, 9: 2, 40: 11}
    for c, f in copies.items():
        assert fold_of(c, copies) == fold_of(f, copies) == fold_of(f)
    assert [fold_of(i, copies) for i in (2, 3, 11)] == [fold_of(i) for i in (2, 3, 11)]
    # without copies nothing moves: the folds of every project made before
    assert [fold_of(i, {}) for i in range(50)] == [fold_of(i) for i in range(50)]


def test_init_scan_and_status_say_how_many_copies_and_list_them(tmp_path, folder):
    groups = _copies(folder)
    proj = tmp_path / "proj"
    r = _init(proj, folder)
    assert r.exit_code == 0, r.output
    assert (
        "3 image files are byte-for-byte copies of others (e.g. blue/copy-c.png = blue/003.png)"
        in r.output
        and "--list copies" in r.output
    )
    r = runner.invoke(app, ["label", "status", str(proj)])
    assert json.loads(r.stdout)["copies"] == 3
    r = runner.invoke(app, ["label", "status", str(proj), "--list", "copies"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    p = Project(proj)
    made = _expected(groups, p.store.image_ids_by_path())
    p.close()
    assert made["red/copy-a.png"] == "green/copy-b.png"  # green/ was added before red/
    assert {row["path"]: row["copy_of"] for row in rows} == made
    assert all(row["label"] == row["copy_of_label"] == "" for row in rows)

    shutil.copyfile(folder / "green" / "001.png", folder / "green" / "copy-d.png")
    r = runner.invoke(app, ["label", "scan", str(proj), "--no-progress"])
    assert r.exit_code == 0 and "1 new image (28 in all)" in r.output
    assert "4 image files are byte-for-byte copies" in r.output
    r = runner.invoke(app, ["label", "status", str(proj), "--list", "copies", "--format", "json"])
    assert len(json.loads(r.stdout)) == 4


def test_a_folder_without_copies_says_nothing_about_them(tmp_path, folder):
    proj = tmp_path / "proj"
    r = _init(proj, folder)
    assert r.exit_code == 0 and "byte-for-byte" not in r.output, r.output
    r = runner.invoke(app, ["label", "status", str(proj), "--list", "copies"])
    assert r.exit_code == 0 and "no copies" in r.output
    assert json.loads(runner.invoke(app, ["label", "status", str(proj)]).stdout)["copies"] == 0


def _folder_labels(proj):
    """``{path: class}`` of every current label."""
    p = Project(proj)
    try:
        paths = {r.id: r.path for r in p.store.images()}
        return {paths[i]: p.classes[c] for i, c in p.store.current_labels().items()}
    finally:
        p.close()


CONFLICT_LINE = "  same bytes: red: red/000.png, red/copy-a.png; green: green/copy-b.png"


def test_init_labels_from_folders_leaves_copies_in_two_class_folders_unlabeled(tmp_path, folder):
    """The same bytes in red/ and green/: each path got its own folder's label, silently, so
    one image was labeled red and green at once. None of those copies is labeled now, said in
    the line with the fix and one listed line per set; copies in one class's folder
    (blue/copy-c.png) are labeled as usual."""
    _copies(folder)
    proj = tmp_path / "proj"
    r = _init(proj, folder, "--labels-from-folders")
    assert r.exit_code == 0, r.output
    said = r.stderr.splitlines()
    first = next(i for i, line in enumerate(said) if line.startswith("labeled "))
    assert said[first].startswith("labeled 24 images by their folder (red 7, green 8, blue 9)")
    assert (
        "3 byte-for-byte copies in folders of different classes (1 set, listed below) "
        "contradict each other, so none is labeled by its folder"
        in said[first]
        and f"fishermask label add {proj} labels.csv" in said[first]
    ), said[first]
    assert said[first + 1] == CONFLICT_LINE
    got = _folder_labels(proj)
    assert not {"red/000.png", "red/copy-a.png", "green/copy-b.png"} & set(got)
    assert got["blue/copy-c.png"] == got["blue/003.png"] == "blue" and len(got) == 24


def test_add_from_folders_leaves_copies_in_two_class_folders_unlabeled(tmp_path, folder):
    """`label add --from-folders` by the same rule: copies `label scan` found in two classes'
    folders are not labeled and are listed; once each has a label (given by a CSV) the set
    is settled and no longer listed."""
    proj = tmp_path / "proj"
    assert _init(proj, folder).exit_code == 0
    _copies(folder)
    assert runner.invoke(app, ["label", "scan", str(proj), "--no-progress"]).exit_code == 0
    r = runner.invoke(app, ["label", "add", str(proj), "--from-folders"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("labeled 24 images by their folder"), lines
    assert "3 byte-for-byte copies in folders of different classes" in lines[0]
    assert lines[1:] == [CONFLICT_LINE]
    got = _folder_labels(proj)
    assert not {"red/000.png", "red/copy-a.png", "green/copy-b.png"} & set(got)
    assert got["blue/copy-c.png"] == "blue" and len(got) == 24

    fix = tmp_path / "fix.csv"
    fix.write_text("path,label\nred/000.png,red\nred/copy-a.png,red\ngreen/copy-b.png,red\n")
    assert runner.invoke(app, ["label", "add", str(proj), str(fix)]).exit_code == 0
    r = runner.invoke(app, ["label", "add", str(proj), "--from-folders"])
    assert r.exit_code == 0 and "same bytes" not in r.output, r.output
    assert (
        r.output.strip()
        == "labeled 0 images by their folder (24 in class folders; 24 already labeled as their "
        "folder says)"
    )


def test_many_sets_of_copies_in_two_class_folders_are_listed_up_to_a_cap(tmp_path):
    """Every set was printed, one line each: thousands of lines for a large folder. The first
    CONFLICTS_LISTED are, then one line with how many more and the file listing every set."""
    from fishermask.label import project as lp

    sets = [[(f"red/{k:03d}.png", "red"), (f"green/{k:03d}.png", "green")] for k in range(25)]
    listing = tmp_path / "folder-conflicts.csv"
    said = lp.folder_conflicts_said(sets, "proj", listing).splitlines()
    assert "(25 sets, the first 20 listed below)" in said[0], said[0]
    assert len(said) == 1 + 20 + 1
    assert said[20] == "  same bytes: red: red/019.png; green: green/019.png"
    assert said[21] == (
        f"  ... and 5 more sets; every set is listed in {listing} (set,path,folder)"
    )
    rows = list(csv.reader(io.StringIO(listing.read_text())))
    assert rows[0] == ["set", "path", "folder"] and len(rows) == 1 + 50
    assert rows[-1] == ["25", "green/024.png", "green"]
    # as few as the cap: all listed, and a listing of an earlier run (out of date) removed
    said = lp.folder_conflicts_said(sets[:20], "proj", listing).splitlines()
    assert "(20 sets, listed below)" in said[0] and len(said) == 21
    assert not listing.exists()


def test_add_from_folders_caps_the_sets_it_lists(tmp_path, folder, monkeypatch):
    """`label add --from-folders` with more sets than the cap (1 here): one listed, the rest
    counted, and all written to PROJECT/folder-conflicts.csv."""
    from fishermask.label import project as lp

    monkeypatch.setattr(lp, "CONFLICTS_LISTED", 1)
    proj = tmp_path / "proj"
    assert _init(proj, folder).exit_code == 0
    _copies(folder)
    shutil.copyfile(folder / "blue" / "001.png", folder / "red" / "copy-d.png")
    assert runner.invoke(app, ["label", "scan", str(proj), "--no-progress"]).exit_code == 0
    r = runner.invoke(app, ["label", "add", str(proj), "--from-folders"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "(2 sets, the first 1 listed below)" in lines[0], lines[0]
    listing = proj / "folder-conflicts.csv"
    assert lines[1:] == [
        CONFLICT_LINE,
        f"  ... and 1 more set; every set is listed in {listing} (set,path,folder)",
    ]
    assert listing.read_text().splitlines() == [
        "set,path,folder",
        "1,red/000.png,red",
        "1,red/copy-a.png,red",
        "1,green/copy-b.png,green",
        "2,red/copy-d.png,red",
        "2,blue/001.png,blue",
    ]
