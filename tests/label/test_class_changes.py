"""`label config --add-class / --rename-class`: the label set changes in place, and everything
downstream (labels, exports, status, the models trained before, the cold start, the next
retrain, a running server) stays correct."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fishermask.cli import app
from fishermask.errors import ConfigError
from fishermask.label.project import Project
from tests.label.conftest import AUTH, api_client, label_truth, stored_config

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, ["label", *map(str, args)])


def _class_ids(project) -> dict[str, int]:
    """path -> class id of every current label."""
    paths = {r.id: r.path for r in project.store.images()}
    return {paths[i]: c for i, c in project.store.current_labels().items()}


# -- the change itself -----------------------------------------------------------------------
def test_add_and_rename_keep_every_label_s_class_and_are_recorded(trained):
    before = _class_ids(trained)
    r = _run(
        "config", trained.dir, "--add-class", "bird", "--add-class", "boat, car",
        "--rename-class", "red=crimson",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "class renamed: red -> crimson" in r.stdout
    assert "classes added: bird, boat, car" in r.stdout
    assert "probability 0" in r.stderr and "cold start" in r.stderr
    p = Project(trained.dir)
    assert p.classes == ["crimson", "green", "blue", "bird", "boat", "car"]
    assert _class_ids(p) == before  # ids unchanged: a renamed class's labels follow its name
    (h,) = p.store.settings_history()
    assert h["changes"] == {
        "classes": [
            ["red", "green", "blue"],
            ["crimson", "green", "blue", "bird", "boat", "car"],
        ]
    }
    assert "classes: crimson,green,blue,bird,boat,car" in _run("config", p.dir).stdout
    # the already open project (e.g. a server's) sees them in its status
    st = trained.status()
    assert st["classes"] == p.classes
    assert st["per_class"] == {"crimson": 2, "green": 2, "blue": 2, "bird": 0, "boat": 0, "car": 0}
    assert st["accuracy"]["per_class_by_name"]["crimson"] == 2
    assert st["accuracy"]["per_class_by_name"]["car"] == 0
    p.close()


def test_class_changes_go_with_other_settings_in_one_history_row(project):
    diff = project.configure(batch=4, add_classes=["bird"])
    assert diff == {
        "batch": [6, 4],
        "classes": [["red", "green", "blue"], ["red", "green", "blue", "bird"]],
    }
    assert len(project.store.settings_history()) == 1
    assert project.classes[-1] == "bird"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--add-class", ""], "--add-class '' has an empty class name"),
        (["--add-class", "bird,,boat"], "has an empty class name"),
        (["--add-class", "green"], "'green' would name two classes"),
        (["--add-class", "bird,bird"], "'bird' would name two classes"),
        (["--add-class", "a/b"], "class name 'a/b' cannot be a folder name"),
        (["--add-class", ".."], "class name '..' cannot be a folder name"),
        (["--add-class", "x" * 101], "is too long or holds control characters"),
        (["--rename-class", "pink=rose"], "OLD one of the project's classes (red, green, blue)"),
        (["--rename-class", "red"], "give OLD=NEW"),
        (["--rename-class", "red="], "the new name is empty"),
        (["--rename-class", "red=red"], "the new name is the old one"),
        (["--rename-class", "red=green"], "'green' would name two classes"),
        (["--rename-class", "red=a\\b"], "cannot be a folder name"),
        (["--rename-class", "red=x", "--rename-class", "red=y"], "class 'red' is renamed twice"),
        # a swap would make a page still showing the old names label the other class
        (
            ["--rename-class", "red=green", "--rename-class", "green=red"],
            "'green' is or was the name of another class",
        ),
        (["--classes", "a,b,c"], "--classes cannot change: every label and saved model"),
        (["--classes", "a,b,c"], "add one with --add-class NAME"),
    ],
)
def test_bad_class_changes_fail_with_one_line_and_write_nothing(project, args, message):
    before = stored_config(project)
    r = _run("config", project.dir, "--batch", "4", *args)
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.stderr.split()), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert stored_config(project) == before


def test_a_name_a_class_had_is_never_given_to_another(project):
    project.configure(rename_classes=["red=crimson"])
    before = stored_config(project)
    for change in (dict(add_classes=["red"]), dict(rename_classes=["green=red"])):
        with pytest.raises(ConfigError, match="'red' is or was the name of another class"):
            project.configure(**change)
    assert stored_config(project) == before
    # but a class may take back its own earlier name
    project.configure(rename_classes=["crimson=red"])
    assert project.classes == ["red", "green", "blue"]
    assert project.store.former_class_names() == {"crimson": 0}


def test_a_class_name_holding_an_equals_sign_can_be_renamed():
    from fishermask.label.project import parse_class_changes

    assert parse_class_changes([], ["a=b=c"], ["a=b", "x"], {}) == ["c", "x"]
    with pytest.raises(ConfigError, match="ambiguous"):
        parse_class_changes([], ["a=b=c"], ["a", "a=b"], {})


def test_refused_while_a_round_runs(project):
    rid = project.store.start_round("fishermask", os.getpid())  # alive: this process
    before = stored_config(project)
    r = _run("config", project.dir, "--add-class", "bird")
    assert r.exit_code == 2 and f"round {rid} is running" in r.stderr
    assert stored_config(project) == before
    project.store.finish_round(rid, status="done")
    assert _run("config", project.dir, "--add-class", "bird").exit_code == 0


# -- labels and exports ----------------------------------------------------------------------
def test_exports_and_label_add_use_the_new_names(project, tmp_path):
    label_truth(project, 2)
    project.configure(add_classes=["bird"], rename_classes=["red=crimson"])
    project.close()
    p = Project(project.dir)
    p.add_label_rows([("red/005.png", "bird")], source="import", what="test")
    # the old name: refused with the rename named
    with pytest.raises(ConfigError, match="'red' was renamed to 'crimson'"):
        p.add_label_rows([("red/006.png", "red")], source="import", what="test")
    rows = dict(p.csv_rows())
    assert rows["red/000.png"] == "crimson" and rows["red/005.png"] == "bird"
    p.export("imagefolder", tmp_path / "tree")
    assert sorted(x.name for x in (tmp_path / "tree").iterdir() if x.is_dir()) == [
        "bird", "blue", "crimson", "green",
    ]  # fmt: skip
    assert (tmp_path / "tree" / "bird").is_dir()
    p.export("npz", tmp_path / "d.npz")
    z = np.load(tmp_path / "d.npz")
    assert list(z["classes"]) == ["crimson", "green", "blue", "bird"]
    assert list(z["classes"][z["y"]]).count("bird") == 1
    tasks = p.labelstudio_tasks()
    names = {t["data"]["path"]: t["annotations"][0]["result"][0]["value"]["choices"][0]
             for t in tasks if t["annotations"]}  # fmt: skip
    assert names["red/000.png"] == "crimson" and names["red/005.png"] == "bird"
    p.close()


# -- a model trained before the change -------------------------------------------------------
def test_a_model_trained_before_a_class_was_added_keeps_working(trained, tmp_path):
    old = trained.store.last_good_round(with_model=True)["checkpoint"]
    r = _run("config", trained.dir, "--add-class", "bird", "--rename-class", "red=crimson")
    assert r.exit_code == 0, r.output
    p = Project(trained.dir)
    p.add_label_rows([("red/005.png", "bird")], source="import", what="test")
    # the checkpoint keeps the names and count it was trained with
    state = torch.load(p.dir / old, map_location="cpu", weights_only=True)
    assert state["classes"] == ["red", "green", "blue"]

    # label predict: every class, the new one at 0, the rename applied, said once
    r = _run("predict", p.dir, "--top", "4", "--format", "json", "--no-progress")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["model"]["classes_added_since"] == ["bird"]
    for row in out["predictions"]:
        assert [t["class"] for t in row["top"]][-1] == "bird" and row["top"][-1]["prob"] == 0
        assert row["prediction"] in ("crimson", "green", "blue")
    assert {row["label"] for row in out["predictions"]} >= {"crimson", "bird"}
    assert "predates class(es) bird" in r.stderr and "label train" in r.stderr

    # the page's guesses (and revisit's): the model's classes only, by their new names
    guesses, why = p.guesses([i for i, _ in p.store.current_labels().items()])
    assert not why
    assert {g["label"] for gs in guesses.values() for g in gs} <= {"crimson", "green", "blue"}

    # the Labeled view / status --list labeled: a label of the new class is not ranked
    r = _run("status", p.dir, "--list", "labeled", "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    bird = [x for x in rows if x["label"] == "bird"]
    assert len(bird) == 1 and bird[0]["label_prob"] is None and bird[0]["guess"] is not None
    assert rows[-1]["label"] == "bird"  # last: never learned, so not a likely mistake
    assert all(x["label_prob"] is not None for x in rows if x["label"] != "bird")
    assert "labels of bird (added after this model was trained) are not ranked" in r.stderr

    # label next with the old model: diversity until the new class has its labels
    r = _run("next", p.dir, "--format", "json")
    assert r.exit_code == 0, r.output
    mode = p.store.rounds()[-1]["mode"]
    assert mode.startswith("a varied mix of images") and "bird: 1" in mode, mode
    assert p.store.rounds()[-1]["checkpoint"] == old
    for it in p.batch():
        assert {g["label"] for g in it["guesses"]} <= {"crimson", "green", "blue"}
    # enough labels of it, but the model still predates it: still diversity, saying why
    p.add_label_rows([("red/006.png", "bird")], source="import", what="test")
    p.run_round(train_model=False)
    mode = p.store.rounds()[-1]["mode"]
    assert "until a model is trained with bird" in mode, mode

    # export --format model and load_model: the model's 3 classes, as named now
    r = _run("export", p.dir, "--format", "model", "--out", tmp_path / "m")
    assert r.exit_code == 0, r.output
    assert "predates class(es) bird" in r.stderr
    from fishermask.label import load_model

    m = load_model(tmp_path / "m")
    assert m.classes == ["crimson", "green", "blue"]
    assert m.predict([p.root / "red/000.png"])[0] in m.classes
    assert m.info["classes_added_since"] == ["bird"]

    # the next retrain has a head of 4 classes and counts the new one
    row = p.run_round(train_model=True)
    state = torch.load(p.dir / row["checkpoint"], map_location="cpu", weights_only=True)
    assert state["classes"] == ["crimson", "green", "blue", "bird"]
    assert state["model"]["classifier.weight"].shape[0] == 4
    assert row["metrics"]["per_class"] == [2, 2, 2, 2]
    r = _run("predict", p.dir, "--format", "json", "--no-progress")
    assert json.loads(r.stdout)["model"]["classes_added_since"] == []
    assert "predates" not in r.stderr
    p.close()


def test_adding_a_class_returns_to_the_cold_start_until_it_has_its_labels(trained):
    trained.configure(min_per_class=2)
    assert "chosen by the model" in trained.run_round(train_model=True)["mode"]
    trained.configure(add_classes=["bird"])
    row = trained.run_round(train_model=True)
    assert row["mode"].startswith("a varied mix of images") and "bird: 0" in row["mode"]
    trained.add_label_rows(
        [("red/005.png", "bird"), ("red/006.png", "bird")], source="import", what="test"
    )
    row = trained.run_round(train_model=True)
    assert "chosen by the model trained on 8 labels" in row["mode"], row["mode"]


def test_batch_guesses_chosen_before_a_rename_carry_the_new_name(trained):
    before = [g["label"] for it in trained.batch() for g in it["guesses"]]
    assert "red" in before
    trained.configure(rename_classes=["red=crimson"])
    after = [g["label"] for it in trained.batch() for g in it["guesses"]]
    assert after == ["crimson" if n == "red" else n for n in before]


# -- a running server ------------------------------------------------------------------------
def test_a_running_server_follows_a_class_change(trained):
    with api_client(trained.dir) as c:
        page = c.get("/", headers=AUTH).text
        assert 'data-label="bird"' not in page
        batch = c.get("/api/batch", headers=AUTH).json()
        image_id = batch["items"][0]["image_id"]
        # `label config` in another process while the server runs
        r = _run("config", trained.dir, "--add-class", "bird", "--rename-class", "red=crimson")
        assert r.exit_code == 0, r.output
        st = c.get("/api/status", headers=AUTH).json()
        assert st["classes"] == ["crimson", "green", "blue", "bird"]
        assert st["per_class"]["bird"] == 0
        page = c.get("/", headers=AUTH).text
        assert 'data-label="bird"' in page and 'data-label="crimson"' in page
        assert c.get("/api/batch", headers=AUTH).json()["classes"][-1] == "bird"
        # a label of the new class is saved as that class
        r = c.post("/api/labels", json={"image_id": image_id, "label": "bird"}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert trained.store.current_labels()[image_id] == 3
        # a page loaded before the rename: refused, nothing saved, with the fix
        r = c.post("/api/labels", json={"image_id": image_id, "label": "red"}, headers=AUTH)
        assert r.status_code == 409
        assert "'red' was renamed to 'crimson'" in r.json()["error"]
        assert "reload the page" in r.json()["error"]
        assert trained.store.current_labels()[image_id] == 3
        # the Labeled view with the old model and a label of the new class
        r = c.get("/api/labeled", headers=AUTH)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert items[-1]["label"] == "bird" and items[-1]["label_prob"] is None
        assert c.get("/api/labeled?label=bird", headers=AUTH).json()["total"] == 1
        # the Labeled view's class filter of a page loaded before the rename: said so
        r = c.get("/api/labeled?label=red", headers=AUTH)
        assert r.status_code == 400
        assert r.json()["error"].endswith(
            "classes: crimson, green, blue, bird ('red' was renamed to 'crimson')."
        ), r.json()["error"]
        r = c.get("/api/predictions?top=4", headers=AUTH)
        assert r.status_code == 200 and r.json()["model"]["classes_added_since"] == ["bird"]
        r = c.get("/api/export.csv", headers=AUTH)
        assert r.status_code == 200 and "crimson" in r.text and "bird" in r.text


# -- what `label config --add-class` says of the next batches ---------------------------------
def test_add_class_says_batches_go_back_to_the_cold_start_naming_the_short_classes(trained):
    """The project was out of the cold start (every class had its 2 labels, a model chose
    the batch): the new class sends it back, and the line says so, with the class short."""
    assert "chosen by the model" in trained.run_round(train_model=False)["mode"]
    r = _run("config", trained.dir, "--add-class", "bird")
    assert r.exit_code == 0, r.output
    said = " ".join(r.stderr.split())
    assert "from the next batch on, batches go back to a varied mix of images (cold start)" in said
    assert "until every class has 2 labels (short now: bird 0)" in said, said


def test_add_class_in_a_cold_start_says_batches_stay_so(project):
    """No labels yet: batches were a varied mix already and stay so; the line names every
    class still short, not only the new one."""
    label_truth(project, 1)
    r = _run("config", project.dir, "--add-class", "bird")
    assert r.exit_code == 0, r.output
    said = " ".join(r.stderr.split())
    assert "batches stay a varied mix of images (cold start)" in said, said
    assert "(short now: red 1, green 1, blue 1, bird 0)" in said, said
    assert "go back" not in said


def test_add_class_when_every_image_was_seen_says_no_batch_is_left(project):
    """Every image labeled, skipped or unsure: no batch will be chosen, diverse or not; the
    line says how to give the new class its labels instead."""
    label_truth(project, 8)  # every image of the folder
    r = _run("config", project.dir, "--add-class", "bird")
    assert r.exit_code == 0, r.output
    said = " ".join(r.stderr.split())
    assert "cold start" not in said and "varied mix" not in said, said
    assert "every image has been seen, so no batch is left to choose" in said, said
    assert "`label add`" in said and "Labeled view" in said
