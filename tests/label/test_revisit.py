"""Images set aside (skipped or unsure): listed by `label status --list`, queued again by
`label revisit` / `POST /api/revisit`, labeled with the usual keys (the latest action wins)."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
from typer.testing import CliRunner

from fishermask.cli import app
from fishermask.label.store import RoundBusy
from tests.label.conftest import AUTH

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, ["label", *map(str, args)])


def _ids(project) -> dict[str, int]:
    return project.store.image_ids_by_path()


def _set_aside_some(project) -> dict[str, int]:
    """red/000 skipped; red/001 unsure; red/002 skipped then labeled; red/003 unsure then
    undone; red/004 skipped then unsure. Currently: 000 skipped, 001 and 004 unsure."""
    ids = _ids(project)
    s = project.store
    s.add_label(ids["red/000.png"], "skip")
    s.add_label(ids["red/001.png"], "unsure")
    s.add_label(ids["red/002.png"], "skip")
    s.add_label(ids["red/002.png"], "label", 0)
    s.undo(s.add_label(ids["red/003.png"], "unsure"))
    s.add_label(ids["red/004.png"], "skip")
    s.add_label(ids["red/004.png"], "unsure")
    return ids


def test_set_aside_is_the_current_action_and_the_counts_agree(project):
    _set_aside_some(project)
    paths = [it["path"] for it in project.set_aside()]
    assert paths == ["red/000.png", "red/001.png", "red/004.png"]  # oldest action first
    assert [it["path"] for it in project.set_aside(["skip"])] == ["red/000.png"]
    assert [it["path"] for it in project.set_aside(["unsure"])] == ["red/001.png", "red/004.png"]
    st = project.status()  # counts: the images whose latest action is so, not "ever skipped"
    assert (st["skipped"], st["unsure"], st["labeled"]) == (1, 2, 1)


def test_revisit_queues_them_as_the_batch_and_a_label_then_wins(project):
    ids = _set_aside_some(project)
    before = project.status()["queue_round"]
    round_id, items = project.revisit()
    assert round_id is not None and round_id != before
    assert [it["path"] for it in items] == ["red/000.png", "red/001.png", "red/004.png"]
    st = project.status()
    assert st["queue_round"] == round_id and st["mode"].startswith(
        "a second look at the images marked"
    )
    batch = project.batch()
    assert [it["path"] for it in batch] == ["red/000.png", "red/001.png", "red/004.png"]
    # to do in this batch, with what was done before
    assert all(it["state"] is None for it in batch)
    assert [it["earlier"]["kind"] for it in batch] == ["skip", "unsure", "unsure"]

    project.store.add_label(ids["red/001.png"], "label", 0)
    project.store.add_label(ids["red/004.png"], "unsure")  # still not sure
    states = {it["path"]: it["state"] for it in project.batch()}
    assert states["red/000.png"] is None
    assert states["red/001.png"]["kind"] == "label" and states["red/001.png"]["label"] == "red"
    assert states["red/004.png"]["kind"] == "unsure"
    assert [it["path"] for it in project.set_aside()] == ["red/000.png", "red/004.png"]
    assert project.store.current_labels()[ids["red/001.png"]] == 0
    st = project.status()
    assert (st["skipped"], st["unsure"], st["labeled"]) == (1, 1, 2)

    # the strategy's queue is unchanged: the next batch comes from the unseen images only
    project.run_round(train_model=False)
    assert project.status()["mode"].startswith("a varied mix of images")
    seen = set(project.store.current())
    assert project.batch() and all(it["image_id"] not in seen for it in project.batch())


def test_revisit_one_kind_at_most_n_and_nothing_to_revisit(project):
    _set_aside_some(project)
    _, items = project.revisit(["unsure"], n=1)
    assert [it["path"] for it in items] == ["red/001.png"]
    assert [it["path"] for it in project.batch()] == ["red/001.png"]
    queue = project.store.queue()
    project.store.add_label(_ids(project)["red/000.png"], "label", 0)
    assert project.revisit(["skip"]) == (None, [])  # nothing: the batch is left as it is
    assert project.store.queue() == queue


def test_revisit_is_refused_while_a_round_runs(project):
    _set_aside_some(project)
    queue = project.store.queue()
    rid = project.store.start_round("fishermask", os.getpid())
    with pytest.raises(RoundBusy):
        project.revisit()
    assert project.store.queue() == queue
    project.store.finish_round(rid, status="failed")


def test_an_action_no_longer_current_when_queued_is_left_out(project):
    """Labeled (another tab) between the read and the write: not queued as set aside."""
    _set_aside_some(project)
    items = project.set_aside()
    project.store.add_label(items[0]["image_id"], "label", 0)
    _, queued = project.store.queue_set_aside([it["label_id"] for it in items], {}, mode="r")
    assert queued == [it["image_id"] for it in items[1:]]


def test_revisit_items_carry_the_latest_models_guess(project):
    from tests.label.conftest import label_truth

    label_truth(project, 3)
    project.run_round(train_model=True)
    ids = _ids(project)
    project.store.add_label(ids["green/007.png"], "unsure")
    _, items = project.revisit()
    (it,) = project.batch()
    assert it["path"] == "green/007.png" and len(it["guesses"]) == 3
    guesses, why = project.guesses([it["image_id"]])
    assert why == "" and guesses[it["image_id"]] == it["guesses"]


# -- command line ---------------------------------------------------------------------------


def test_status_list_csv_json_and_empty(project):
    project.close()
    r = _run("status", project.dir, "--list", "unsure")
    assert r.exit_code == 0, r.output
    assert r.stdout == "" and r.stderr.strip() == "no image is currently unsure."
    r = _run("status", project.dir, "--list", "skipped,unsure", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout) == []

    from fishermask.label.project import Project

    p = Project(project.dir)
    _set_aside_some(p)
    p.close()
    r = _run("status", project.dir, "--list", "skipped,unsure")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(x["path"], x["state"]) for x in rows] == [
        ("red/000.png", "skipped"),
        ("red/001.png", "unsure"),
        ("red/004.png", "unsure"),
    ]
    assert list(rows[0]) == ["path", "state", "when", "guess", "guess_prob"]
    assert rows[0]["when"].endswith("Z") and rows[0]["guess"] == ""
    assert "no model guesses: no model yet" in r.stderr
    r = _run("status", project.dir, "--list", "skipped", "--format", "json")
    (row,) = json.loads(r.stdout)
    assert row["path"] == "red/000.png" and row["state"] == "skipped" and row["guess"] is None
    r = _run("status", project.dir)  # without --list: the counts, as before
    st = json.loads(r.stdout)
    assert (st["skipped"], st["unsure"]) == (1, 2)


def test_status_list_bad_input_is_one_line(project):
    project.close()
    for args, msg in (
        (
            ["--list", "maybe"],
            "--list 'maybe': use skipped, unsure (or skipped,unsure), disagreements, labeled, "
            "copies or rounds.",
        ),
        (["--format", "csv"], "--format csv: use text or json (or csv with --list)."),
        (["--list", "unsure", "--format", "xml"], "--format 'xml': use csv or json."),
        (["--list", "unsure", "--format", "cvs"], "--format 'cvs': use csv or json; did you mean"),
    ):
        r = _run("status", project.dir, *args)
        assert r.exit_code == 2 and msg in r.output and len(r.output.strip().splitlines()) == 1


def test_revisit_command(project):
    from fishermask.label.project import Project

    _set_aside_some(project)
    todo = sum(it["state"] is None for it in project.batch())  # no action at all yet
    project.close()
    r = _run("revisit", project.dir, "--unsure")
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "queued 2 images (2 unsure), oldest first; this is now the labeling page's batch" in out
    assert f"it replaced the one queued before ({todo} of its images unseen;" in out
    p = Project(project.dir)
    assert [it["path"] for it in p.batch()] == ["red/001.png", "red/004.png"]
    p.close()
    r = _run("revisit", project.dir)  # both kinds
    out = " ".join(r.output.split())
    assert r.exit_code == 0 and "queued 3 images (2 unsure, 1 skipped)" in out
    assert "replaced" not in out  # the batch shown held only images still set aside
    r = _run("revisit", project.dir, "--n", "0")
    assert r.exit_code == 2 and "--n 0: must be >= 1" in r.output

    p = Project(project.dir)
    rid = p.store.start_round("fishermask", os.getpid())
    r = _run("revisit", project.dir)  # refused while a round runs
    assert r.exit_code == 2 and f"a retrain is already running (round {rid}" in r.output
    p.store.finish_round(rid, status="failed")
    for it in p.set_aside():
        p.store.add_label(it["image_id"], "label", 0)
    p.close()
    r = _run("revisit", project.dir, "--skipped")
    assert r.exit_code == 0
    assert "nothing to revisit: no image is currently skipped; the batch is unchanged." in (
        " ".join(r.output.split())
    )


# -- JSON API -------------------------------------------------------------------------------


def test_api_revisit(client):
    p = client.project
    assert client.post("/api/revisit", json={"kinds": ["unsure"]}).status_code == 401
    r = client.post("/api/revisit", headers=AUTH, json={"kinds": ["unsure"]})
    assert r.status_code == 200 and r.json() == {
        "round_id": None,
        "queued": 0,
        "unsure": 0,
        "skipped": 0,
    }
    _set_aside_some(p)
    st = client.get("/api/status", headers=AUTH).json()
    assert (st["skipped"], st["unsure"]) == (1, 2)
    r = client.post("/api/revisit", headers=AUTH, json={"kinds": ["unsure"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["queued"] == 2 and body["unsure"] == 2 and body["skipped"] == 0
    b = client.get("/api/batch", headers=AUTH).json()
    assert b["round_id"] == body["round_id"] and b["mode"].startswith("a second look at")
    assert [it["path"] for it in b["items"]] == ["red/001.png", "red/004.png"]
    assert all(it["state"] is None and it["earlier"]["kind"] == "unsure" for it in b["items"])
    item = b["items"][0]
    r = client.post(
        "/api/labels", headers=AUTH, json={"image_id": item["image_id"], "label": "red"}
    )
    assert r.status_code == 200
    b = client.get("/api/batch", headers=AUTH).json()
    assert b["items"][0]["state"]["label"] == "red"
    st = client.get("/api/status", headers=AUTH).json()
    assert (st["skipped"], st["unsure"]) == (1, 1)
    r = client.post("/api/revisit", headers=AUTH)  # no body: both kinds
    assert r.status_code == 200 and r.json()["queued"] == 2 and r.json()["skipped"] == 1

    for bad, msg in (
        ({"kinds": ["maybe"]}, "use skipped or unsure"),
        ({"kinds": []}, "non-empty list"),
        ({"kinds": "unsure"}, "non-empty list"),
        ({"kinds": ["unsure"], "n": 0}, "`n` must be an integer >= 1"),
        ({"kind": ["unsure"]}, "allowed: kinds, n"),
    ):
        r = client.post("/api/revisit", headers=AUTH, json=bad)
        assert r.status_code == 400 and msg in r.json()["error"], (bad, r.text)

    queue = p.store.queue()
    rid = p.store.start_round("fishermask", os.getpid())
    r = client.post("/api/revisit", headers=AUTH, json={"kinds": ["unsure"]})
    assert r.status_code == 409 and f"a retrain is running (round {rid})" in r.json()["error"]
    assert p.store.queue() == queue
    p.store.finish_round(rid, status="failed")


def test_page_shows_the_set_aside_counts_and_a_revisit_control(client):
    page = client.get("/", headers=AUTH).text
    assert 'id="set-aside"' in page and 'id="revisit"' in page
    js = client.get("/static/app.js", headers=AUTH).text
    assert '"/api/revisit"' in js
