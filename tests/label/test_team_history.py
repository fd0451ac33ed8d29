"""Every annotator's label ids of one image: `label history PROJECT PATH` and `GET
/api/history/{image_id}` (the owner's token: every entry; an annotator's: their own), and
`label undo PROJECT LABEL_ID`, the owner's undo from the command line."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.label.conftest import TOKEN, api_client


def _run(*args):
    from typer.testing import CliRunner

    from fishermask.cli import app

    return CliRunner().invoke(app, ["label", *[str(a) for a in args]])


def _history(project):
    """alice labels red/000.png red, bob blue, bob undoes his blue and labels it green: the
    ids of alice's red, bob's blue, his undo and his green."""
    s = project.store
    image_id = s.image_ids_by_path()["red/000.png"]
    red = s.add_label(image_id, "label", 0, annotator="alice")
    blue = s.add_label(image_id, "label", 2, annotator="bob")
    undo = s.undo(blue, annotator="bob")
    green = s.add_label(image_id, "label", 1, annotator="bob")
    return image_id, red, blue, undo, green


def test_label_history_lists_every_annotators_label_of_an_image(project):
    """Undoing another annotator's label needs its id, and nothing listed every annotator's
    (GET /api/labeled gives the image's current one only): `label history` lists each action
    on the image, oldest first, with its id, who, class, source, time, whether undone (and by
    whom) and which is the image's current one."""
    _, red, blue, _, green = _history(project)
    project.close()
    r = _run("history", project.dir, "./red//000.png")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [
        (int(x["label_id"]), x["kind"], x["label"], x["by"], x["source"], x["undone_by"])
        for x in rows
    ] == [
        (red, "label", "red", "alice", "human", ""),
        (blue, "label", "blue", "bob", "human", "bob"),
        (green, "label", "green", "bob", "human", ""),
    ]
    assert [x["current"] for x in rows] == ["", "", "yes"]
    assert all(x["when"].endswith("UTC") or "T" in x["when"] for x in rows), rows
    assert f"`fishermask label undo {project.dir} LABEL_ID`" in r.stderr
    r = _run("history", project.dir, "red/000.png", "--format", "json")
    data = json.loads(r.stdout)
    assert [(d["label_id"], d["undone"], d["current"]) for d in data] == [
        (red, False, False),
        (blue, True, False),
        (green, False, True),
    ]
    r = _run("history", project.dir, "red/999.png")
    assert r.exit_code == 2 and "'red/999.png' is not an image of this project" in r.output
    r = _run("history", project.dir, "green/001.png")
    assert r.exit_code == 0 and "green/001.png has no label, skip or unsure yet" in r.output


def test_label_undo_undoes_anyones_label_by_its_id(project):
    """The owner's undo from the command line (the page's z undoes only what its tab saved,
    and POST /api/undo needs a script): alice's red is undone, the image falls back to bob's
    green, and the history says so."""
    _, red, _, _, _ = _history(project)
    project.close()
    r = _run("undo", project.dir, red)
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert out.startswith(f"undone: label {red} of red/000.png (red by alice);"), out
    assert "red/000.png is now green (by bob)" in out, out
    r = _run("history", project.dir, "red/000.png", "--format", "json")
    assert [d["undone_by"] for d in json.loads(r.stdout)] == ["owner", "bob", None]
    r = _run("undo", project.dir, 99999)
    assert r.exit_code == 2 and "no label action with id 99999 to undo" in r.output


@pytest.mark.parametrize("given", ["abc", "1.5", "red/000.png"])
def test_label_undo_of_what_is_no_id_says_what_it_takes(project, given):
    """`label undo PROJECT abc` gave typer's 'Invalid value for 'LABEL_ID': Input should be a
    valid integer, unable to parse string as an integer' in a box of usage: one line names
    the value, what undo takes and where the ids are listed."""
    project.close()
    r = _run("undo", project.dir, given)
    assert r.exit_code == 2
    assert " ".join(r.output.split()) == (
        f"error: LABEL_ID {given!r} is not a label id: undo takes the number of one label, "
        f"skip or unsure (its label_id, e.g. `fishermask label undo {project.dir} 12`); "
        f"`fishermask label history {project.dir} PATH` lists an image's."
    )
    r = _run("undo", project.dir, 10**30)  # a number, but no row's: said as for 99999
    assert r.exit_code == 2 and f"no label action with id {10**30} to undo" in r.output


@pytest.fixture
def client(project):
    from fishermask.label.team import annotator_token

    with api_client(project.dir, ("alice", "bob")) as c:
        token = {"owner": TOKEN} | {a: annotator_token(TOKEN, a) for a in ("alice", "bob")}
        c.as_ = {n: {"Authorization": f"Bearer {t}"} for n, t in token.items()}
        yield c


def test_the_api_gives_an_images_history_to_the_owner_and_their_own_to_an_annotator(
    client,
):
    image_id, red, blue, _, green = _history(client.project)
    r = client.get(f"/api/history/{image_id}", headers=client.as_["owner"])
    assert r.status_code == 200, r.text
    h = r.json()
    assert (h["image_id"], h["path"], h["hidden"]) == (image_id, "red/000.png", 0)
    assert [
        (x["label_id"], x["by"], x["label"], x["undone"], x["current"]) for x in h["items"]
    ] == [
        (red, "alice", "red", False, False),
        (blue, "bob", "blue", True, False),
        (green, "bob", "green", False, True),
    ]
    assert {"source", "created", "undone_by", "kind"} <= set(h["items"][0])
    # an annotator's token: their own entries only, the others counted
    h = client.get(f"/api/history/{image_id}", headers=client.as_["alice"]).json()
    assert [x["label_id"] for x in h["items"]] == [red] and h["hidden"] == 2
    r = client.get("/api/history/99999", headers=client.as_["owner"])
    assert r.status_code == 404


def test_label_undo_of_an_action_already_undone_says_so_and_changes_nothing(project):
    """A second `label undo` of the same id wrote nothing (the store returns the first undo)
    but printed 'undone: ...' as if it had just undone it: it says it was undone already, by
    whom, and what the image is now."""
    _, _, blue, _, _ = _history(project)
    project.close()
    r = _run("undo", project.dir, blue)
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert not out.startswith("undone:"), out
    assert f"label {blue} of red/000.png (blue by bob) was undone already, by bob" in out, out
    assert "nothing changed" in out and "red/000.png is now green (by bob)" in out, out
    r = _run("history", project.dir, "red/000.png", "--format", "json")
    assert [d["undone_by"] for d in json.loads(r.stdout)] == [None, "bob", None]


def test_a_missing_image_tells_an_annotator_to_ask_the_owner_not_to_run_a_command(client, tmp_path):
    """The 404 of an image deleted or moved since the scan told everyone to 'run `fishermask
    label scan /path/of/the/project`': an annotator has no shell on the server, and the
    line gave them the owner's project path. The owner's line is unchanged."""
    p = client.project
    image_id = p.store.image_ids_by_path()["red/000.png"]
    (p.root / "red" / "000.png").rename(tmp_path / "elsewhere.png")
    r = client.get(f"/api/images/{image_id}", params={"size": "view"}, headers=client.as_["alice"])
    assert r.status_code == 404
    said = r.json()["error"]
    assert said.startswith("red/000.png is missing from the image folder (moved or deleted"), said
    assert str(p.dir) not in said and "skip it (s) and tell the owner" in said, said
    r = client.get(f"/api/images/{image_id}", headers=client.as_["owner"])
    assert r.status_code == 404 and f"`fishermask label scan {p.dir}`" in r.json()["error"]


def test_an_image_folder_gone_is_said_whole_not_skip_each_image(client, tmp_path):
    """The image folder moved, renamed or not mounted (a disk not plugged in): each image of
    the page said '... is missing from the image folder ...: skip it (s) and ...', so a
    labeler who did so set the whole batch aside, never chosen again. The line now says the
    folder is missing, how to bring it back, and not to skip; an annotator's names no path."""
    p = client.project
    image_id = p.store.image_ids_by_path()["red/000.png"]
    away = tmp_path / "unplugged"
    for empty in (False, True):  # the folder gone; an empty mount point in its place
        p.root.rename(away)
        if empty:
            p.root.mkdir()
        try:
            said = {
                who: client.get(
                    f"/api/images/{image_id}", params={"size": "view"}, headers=client.as_[who]
                )
                for who in ("owner", "alice")
            }
        finally:
            if empty:
                p.root.rmdir()
            away.rename(p.root)
        for r in said.values():
            assert r.status_code == 404, r.text
            assert "skip it (s)" not in r.json()["error"], r.text
        assert said["owner"].json()["error"] == (
            f"the image folder {p.root} is missing or empty (moved, renamed or not mounted?), "
            "so no image of the project can be shown: mount or restore it at that path, then "
            "reload the page; or, if it now lies elsewhere, stop the server and point the "
            f"project at it with `fishermask label config {p.dir} --images NEW`, then serve "
            "again; do not skip its images"
        )
        assert said["alice"].json()["error"] == (
            "the image folder is missing or empty on the server (moved, renamed or not "
            "mounted?), so no image can be shown: tell the owner; do not skip the images"
        )
    r = client.get(f"/api/images/{image_id}", headers=client.as_["alice"])
    assert r.status_code == 200  # back in place: shown again


def test_a_path_typed_from_the_folder_above_or_in_another_case_names_the_image_meant(
    project, monkeypatch
):
    """`photos/cat/1.jpg` typed in the folder above the image folder, or `Red/000.png` for
    `red/000.png`, named no image and left the user to find the right spelling from an
    example of another image: the refusal now says which image was most likely meant (and
    still refuses: paths stay relative to the image folder)."""
    project.close()
    monkeypatch.chdir(project.root.parent)
    r = _run("history", project.dir, f"{project.root.name}/red/000.png")
    assert r.exit_code == 2
    assert (
        f"'{project.root.name}/red/000.png' is not an image of this project "
        "(did you mean 'red/000.png'?)"
    ) in r.output
    r = _run("decide", project.dir, "Red/000.png", "red")
    assert r.exit_code == 2
    assert "'Red/000.png' is not an image of this project (did you mean 'red/000.png'?)" in (
        r.output
    )
    monkeypatch.chdir(project.dir)  # the folder's own name first, typed elsewhere
    r = _run("history", project.dir, f"{project.root.name}/green/001.png")
    assert "(did you mean 'green/001.png'?)" in r.output
    r = _run("history", project.dir, "red/999.png")
    assert r.exit_code == 2 and "did you mean" not in r.output


def test_a_csv_row_naming_the_image_folder_first_says_which_image_it_meant(project, tmp_path):
    """`label add` (and `label init --labels`) of a CSV written from the folder above the
    image folder (`images/red/000.png`) refused each row naming no image, with an example of
    another one; each row now says which image it meant, and nothing is written."""
    project.close()
    name = project.root.name
    labels = tmp_path / "labels.csv"
    labels.write_text(f"path,label\n{name}/red/000.png,red\nRED/001.png,red\nred/999.png,red\n")
    r = _run("add", project.dir, labels)
    assert r.exit_code == 2
    said = " ".join(r.output.split())
    assert f"line 2: '{name}/red/000.png' is not an image of this project (did you mean " in said
    assert "'red/000.png'?); line 3: 'RED/001.png' is not an image of this project (did you" in said
    assert "line 4: 'red/999.png' is not an image of this project; nothing was written." in said
    assert "Paths are relative to the image folder" in said
