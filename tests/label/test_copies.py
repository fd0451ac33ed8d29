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


def _init(proj, folder):
    """``label init`` of a tiny project (the command-line tests' sizes)."""
    from tests.label.test_label_cli import TINY_ARGS

    args = ["--images", str(folder), "--classes", ",".join(CLASSES), *TINY_ARGS]
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
        "3 image file(s) are byte-for-byte copies of others (e.g. blue/copy-c.png = blue/003.png)"
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
    assert r.exit_code == 0 and "1 new images" in r.output
    assert "4 image file(s) are byte-for-byte copies" in r.output
    r = runner.invoke(app, ["label", "status", str(proj), "--list", "copies", "--format", "json"])
    assert len(json.loads(r.stdout)) == 4


def test_a_folder_without_copies_says_nothing_about_them(tmp_path, folder):
    proj = tmp_path / "proj"
    r = _init(proj, folder)
    assert r.exit_code == 0 and "byte-for-byte" not in r.output, r.output
    r = runner.invoke(app, ["label", "status", str(proj), "--list", "copies"])
    assert r.exit_code == 0 and "no copies" in r.output
    assert json.loads(runner.invoke(app, ["label", "status", str(proj)]).stdout)["copies"] == 0
