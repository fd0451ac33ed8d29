"""`label export --format csv --set-aside` carries the images skipped or unsure, and `label add`
and `label init --labels` read them back: a project exported and made again (another image
size, another machine) keeps them set aside instead of offering them again as unseen."""

from __future__ import annotations

import csv
import io

from fishermask.label.project import Project
from tests.label.conftest import CLASSES, TINY
from tests.label.test_label_cli import TINY_ARGS, _run


def _set_aside_some(project) -> None:
    ids = project.store.image_ids_by_path()
    project.store.add_labels(
        [
            (ids["red/000.png"], "label", 0),
            (ids["green/000.png"], "label", 1),
            (ids["blue/000.png"], "skip", None),
            (ids["blue/001.png"], "unsure", None),
            (ids["red/001.png"], "skip", None),
        ]
    )


def _states(project) -> dict[str, str]:
    """path -> its current action: a class name, skip or unsure."""
    paths = {r.id: r.path for r in project.store.images()}
    return {
        paths[i]: project.classes[c] if k == "label" else k
        for i, (_, k, c) in project.store.current().items()
    }


def test_skips_and_unsure_survive_a_csv_round_trip(project, tmp_path, folder):
    _set_aside_some(project)
    plain = tmp_path / "plain.csv"
    assert _run("export", project.dir, "--format", "csv", "--out", plain).exit_code == 0
    assert plain.read_text().splitlines()[0] == "path,label"  # the default is unchanged
    out = tmp_path / "all.csv"
    r = _run("export", project.dir, "--format", "csv", "--set-aside", "--out", out)
    assert r.exit_code == 0 and "(2 labels, 2 skipped, 1 unsure)" in r.output, r.output
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows == [
        ["path", "label", "set_aside"],
        ["blue/000.png", "", "skipped"],
        ["blue/001.png", "", "unsure"],
        ["green/000.png", "green", ""],
        ["red/000.png", "red", ""],
        ["red/001.png", "", "skipped"],
    ]
    want = _states(project)
    # label init --labels: a fresh project of the same images
    r = _run("init", tmp_path / "p2", "--images", folder, "--classes", ",".join(CLASSES),
             "--labels", out, *TINY_ARGS)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "imported 2 labels, 2 skipped and 1 unsure from" in r.output, r.output
    p2 = Project(tmp_path / "p2")
    assert _states(p2) == want
    p2.close()
    # label add into another fresh project; again: already so
    p3 = Project.init(tmp_path / "p3", folder, ",".join(CLASSES), **TINY)
    p3.close()
    r = _run("add", tmp_path / "p3", out)
    assert r.exit_code == 0 and "added 2 labels, 2 skipped and 1 unsure." in r.output, r.output
    r = _run("add", tmp_path / "p3", out)
    assert r.exit_code == 0 and "added 0 labels (5 images already so)" in r.output, r.output
    p3 = Project(tmp_path / "p3")
    assert _states(p3) == want
    assert p3.status()["skipped"] == 2 and p3.status()["unsure"] == 1
    p3.close()


def test_set_aside_goes_with_annotators_and_old_csvs_still_import(project, tmp_path):
    _set_aside_some(project)
    out = tmp_path / "all.csv"
    r = _run("export", project.dir, "--format", "csv", "--set-aside", "--annotators", "--out", out)
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["path", "label", "annotator", "decided", "set_aside"]
    assert ["blue/001.png", "", "owner", "", "unsure"] in rows
    old = tmp_path / "old.csv"  # a CSV of before: path,label only
    old.write_text("path,label\nblue/002.png,blue\n")
    r = _run("add", project.dir, old)
    assert r.exit_code == 0 and "added 1 label." in r.output, r.output


def test_bad_set_aside_rows_are_one_line_and_write_nothing(project, tmp_path):
    bad = tmp_path / "bad.csv"
    for text, said in (
        ("path,label,set_aside\nred/000.png,,maybe\n", "line 2: set_aside 'maybe': use skipped"),
        (
            "path,label,set_aside\nred/000.png,red,skipped\n",
            "line 2: 'red/000.png' has both a label (red) and set_aside (skipped)",
        ),
    ):
        bad.write_text(text)
        r = _run("add", project.dir, bad)
        assert r.exit_code == 2 and said in " ".join(r.output.split()), r.output
        assert len(r.output.strip().splitlines()) == 1
    bad.write_text("path,label,set_aside\nred/000.png,,skipped\n")
    r = _run("add", project.dir, bad, "--decide")
    assert r.exit_code == 2, r.output
    assert "line 2: 'red/000.png' is set aside (skipped); a decision is a label" in " ".join(
        r.output.split()
    ), r.output
    assert project.store.current() == {}


def test_the_api_export_carries_the_images_set_aside_when_asked(project):
    from tests.label.conftest import AUTH, api_client

    _set_aside_some(project)
    with api_client(project.dir) as c:
        plain = c.get("/api/export.csv", headers=AUTH)
        asked = c.get("/api/export.csv?set_aside=true", headers=AUTH)
    assert plain.status_code == 200 and plain.text.splitlines()[0] == "path,label"
    assert asked.status_code == 200, asked.text
    lines = asked.text.splitlines()
    assert lines[0] == "path,label,set_aside" and "blue/001.png,,unsure" in lines, lines
