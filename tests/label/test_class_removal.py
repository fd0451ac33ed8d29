"""`label config --remove-class`: a class merged into another (its images relabeled with
`label add`) leaves the project. It keeps its id and name (labels and history name it by id),
and from then on nothing offers, counts, predicts, suggests or exports it; the cold start no
longer waits for it."""

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
from tests.label.conftest import AUTH, CLASSES, api_client, label_truth, stored_config

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, ["label", *map(str, args)])


def _merge_blue_into_green(p, tmp_path) -> None:
    """Relabel every image currently labeled blue as green the README's way: `label status
    --list labeled` to a CSV, its label column edited, given back to `label add`."""
    r = _run("status", p.dir, "--list", "labeled")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    col = lines[0].split(",").index("label")
    edited = [
        ",".join("green" if k == col and v == "blue" else v for k, v in enumerate(x.split(",")))
        for x in lines
    ]
    csv = tmp_path / "labeled.csv"
    csv.write_text("\n".join(edited) + "\n")
    r = _run("add", p.dir, csv)
    assert r.exit_code == 0, r.output
    assert all(c != "blue" for _, _, c in p.labeled_rows())


# -- the change itself -----------------------------------------------------------------------
def test_removal_is_refused_while_an_image_still_carries_the_class(trained):
    before = stored_config(trained)
    r = _run("config", trained.dir, "--remove-class", "blue")
    assert r.exit_code == 2, r.output
    line = " ".join(r.stderr.split())
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--remove-class 'blue': 2 images still carry it" in line
    assert f"relabel them first: `fishermask label status {trained.dir} --list labeled" in line
    assert f"change blue in its label column, then `fishermask label add {trained.dir}" in line
    assert stored_config(trained) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--remove-class", "pink"], "'pink': not one of the project's classes (red, green, blue)"),
        (["--remove-class", ""], "--remove-class '' has an empty class name"),
        (["--remove-class", "blue,,green"], "has an empty class name"),
        (["--remove-class", "green,blue"], "would leave 1 class; a classifier needs at least 2"),
        (["--remove-class", "red", "--remove-class", "green,blue"], "would leave 0 classes"),
        (["--add-class", "bird", "--remove-class", "bird"], "added or renamed in the same"),
        (["--rename-class", "blue=navy", "--remove-class", "navy"], "added or renamed in the"),
    ],
)
def test_bad_removals_fail_with_one_line_and_write_nothing(project, args, message):
    before = stored_config(project)
    r = _run("config", project.dir, "--batch", "4", *args)
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.stderr.split()), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert stored_config(project) == before


def test_removal_keeps_every_id_and_is_recorded(project):
    label_truth(project, 1)
    # relabel the blue one red: blue is left without a label
    project.add_label_rows([("blue/000.png", "red")], source="import", what="test")
    ids = project.store.current_labels()
    r = _run("config", project.dir, "--remove-class", "blue")
    assert r.exit_code == 0, r.output
    assert "classes removed: blue (now: red, green)" in r.stdout
    p = Project(project.dir)
    assert p.classes == ["red", "green", "blue"]  # by id, the removed one included
    assert p.removed == {2} and p.current_classes == ["red", "green"]
    assert p.store.current_labels() == ids
    (h,) = p.store.settings_history()
    assert h["changes"] == {"removed_classes": [[], ["blue"]]}
    shown = _run("config", p.dir).stdout
    assert "classes: red,green (" in shown and "removed classes: blue" in shown
    st = json.loads(_run("status", p.dir).stdout)
    assert st["classes"] == ["red", "green"] and st["per_class"] == {"red": 2, "green": 1}
    # removed twice: refused, naming it
    r = _run("config", p.dir, "--remove-class", "blue")
    assert r.exit_code == 2 and "(it was removed already)" in r.stderr
    # a class added later gets a new id, never the removed one's
    p.configure(add_classes=["bird"])
    assert p.classes == ["red", "green", "blue", "bird"] and p.class_id("bird") == 3
    p.close()


def test_a_removed_class_s_name_is_not_given_to_another_and_it_cannot_be_renamed(project):
    project.configure(remove_classes=["blue"])
    before = stored_config(project)
    msg = "'blue' is the name of a removed class (--remove-class); a page, script or CSV"
    for change in (dict(add_classes=["blue"]), dict(rename_classes=["green=blue"])):
        with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            project.configure(**change)
    with pytest.raises(ConfigError, match="class 'blue' was removed"):
        project.configure(rename_classes=["blue=navy"])
    assert stored_config(project) == before


def test_refused_while_a_round_or_a_check_runs(project):
    rid = project.store.start_round("fishermask", os.getpid())  # alive: this process
    before = stored_config(project)
    r = _run("config", project.dir, "--remove-class", "blue")
    assert r.exit_code == 2 and f"round {rid} is running" in r.stderr
    assert stored_config(project) == before
    project.store.finish_round(rid, status="done")
    cid, _, _ = project.store.start_check(2, os.getpid())
    r = _run("config", project.dir, "--remove-class", "blue")
    assert r.exit_code == 2, r.output
    assert "a label check is running" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert stored_config(project) == before
    project.store.finish_check(cid, status="failed")
    assert _run("config", project.dir, "--remove-class", "blue").exit_code == 0


def test_labels_of_a_removed_class_are_refused_and_an_undo_cannot_bring_one_back(project):
    label_truth(project, 1)
    ids = project.store.image_ids_by_path()
    project.add_label_rows([("blue/000.png", "green")], source="import", what="test")
    relabel = project.store.current()[ids["blue/000.png"]][0]
    project.configure(remove_classes=["blue"])
    before = stored_config(project)
    with pytest.raises(ConfigError, match="class 'blue' was removed by `fishermask label config"):
        project.add_label_rows([("red/005.png", "blue")], source="import", what="test")
    with pytest.raises(ConfigError, match="is not one of the project's classes: red, green"):
        project.class_id("blue")
    (project.dir / "x.csv").write_text("path,label\nred/005.png,blue\n")
    r = _run("add", project.dir, project.dir / "x.csv")
    assert r.exit_code == 2 and "is not one of red, green" in r.stderr
    assert "'blue' was removed" in r.stderr
    # undoing the relabel would make blue the image's label again
    from fishermask.label.store import ClassRemoved

    with pytest.raises(ClassRemoved, match="earlier label 'blue', a class removed since"):
        project.store.undo(relabel)
    assert stored_config(project) == before


# -- downstream --------------------------------------------------------------------------------
def test_the_merge_end_to_end(trained, tmp_path):
    """classes red, green, blue trained; every blue image relabeled green; blue removed:
    the next batch uses the strategy (no cold start waiting for blue), the page has no key
    for blue, the exports have no blue, nothing predicts or guesses blue."""
    p = trained
    p.configure(min_per_class=2)
    old = p.store.last_good_round(with_model=True)["checkpoint"]
    _merge_blue_into_green(p, tmp_path)
    # the stuck cold start this fixes: blue has 0 labels, fewer than --min-per-class
    r = _run("next", p.dir, "--format", "json")
    assert r.exit_code == 0, r.output
    mode = p.store.rounds()[-1]["mode"]
    assert mode.startswith("a varied mix of images") and "blue: 0" in mode, mode

    r = _run("config", p.dir, "--remove-class", "blue")
    assert r.exit_code == 0, r.output
    assert "at probability 0" in r.stderr
    p = Project(p.dir)

    # label next with the model trained before: the strategy, no cold start
    r = _run("next", p.dir, "--format", "json")
    assert r.exit_code == 0, r.output
    row = p.store.rounds()[-1]
    assert row["mode"].startswith("chosen by the model"), row["mode"]
    assert row["mode"].endswith("(method: fishermask)"), row["mode"]
    assert row["checkpoint"] == old
    for it in p.batch():  # its guesses: never blue (2 classes left: at most 2 guesses)
        assert {g["label"] for g in it["guesses"]} <= {"red", "green"} and it["guesses"]

    # the page: no key, no button, no filter for blue
    with api_client(p.dir) as c:
        page = c.get("/", headers=AUTH).text
        assert 'data-label="blue"' not in page and 'value="blue"' not in page
        assert 'data-label="green"' in page

    # exports: current classes only
    p.export("imagefolder", tmp_path / "tree")
    assert sorted(x.name for x in (tmp_path / "tree").iterdir() if x.is_dir()) == ["green", "red"]
    assert len(list((tmp_path / "tree" / "green").iterdir())) == 4
    p.export("npz", tmp_path / "d.npz")
    z = np.load(tmp_path / "d.npz")
    assert list(z["classes"]) == ["red", "green"]
    names = dict(zip(z["paths"], z["classes"][z["y"]], strict=True))
    assert names["blue/000.png"] == "green" and names["red/000.png"] == "red"
    for t in p.labelstudio_tasks():
        for a in t["annotations"] + t.get("predictions", []):
            assert a["result"][0]["value"]["choices"][0] in ("red", "green")
    assert {line.split(",")[1] for line in p.export_csv_text().split()[1:]} == {"red", "green"}

    # label predict with the model trained before: blue dropped, the rest renormalised
    r = _run("predict", p.dir, "--top", "2", "--format", "json", "--no-progress")
    assert r.exit_code == 0, r.output
    for row in json.loads(r.stdout)["predictions"]:
        assert [t["class"] for t in row["top"]] != [] and row["prediction"] != "blue"
        assert {t["class"] for t in row["top"]} == {"red", "green"}
        assert sum(t["prob"] for t in row["top"]) == pytest.approx(1.0, abs=1e-3)
    r = _run("predict", p.dir, "--top", "3", "--no-progress")
    assert r.exit_code == 2 and "the project has 2 classes" in r.stderr

    # status --list labeled: the current labels (none is blue), guesses never blue
    r = _run("status", p.dir, "--list", "labeled", "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {x["label"] for x in rows} == {"red", "green"}
    assert {x["guess"] for x in rows} <= {"red", "green"}
    assert all(x["label_prob"] is not None for x in rows)

    # export --format model: the current classes' outputs only
    r = _run("export", p.dir, "--format", "model", "--out", tmp_path / "m")
    assert r.exit_code == 0, r.output
    from fishermask.label import load_model

    m = load_model(tmp_path / "m")
    assert m.classes == ["red", "green"]
    assert m.predict_proba([p.root / "blue/000.png"]).shape == (1, 2)

    # the next retrain: the same ids (3 outputs), blue's masked; no blue counted
    row = p.run_round(train_model=True)
    state = torch.load(p.dir / row["checkpoint"], map_location="cpu", weights_only=True)
    assert state["model"]["classifier.weight"].shape[0] == 3
    assert row["metrics"]["per_class"] == [2, 4, 0]
    assert "chosen by the model trained on 6 labels" in row["mode"], row["mode"]
    st = p.status()
    assert st["accuracy"]["per_class_by_name"] == {"red": 2, "green": 4}
    assert st["per_class"] == {"red": 2, "green": 4}
    guesses, _ = p.guesses([r.id for r in p.store.images()])
    assert all(g["label"] != "blue" for gs in guesses.values() for g in gs)
    _, model, _, norm = p.latest_model()
    x, _ = p.images()
    from fishermask.training.trainer import predict

    probs, _ = predict(model, x, norm)
    assert float(probs[:, 2].max()) == 0.0  # the removed output: probability 0 exactly
    assert torch.allclose(probs.sum(1), torch.ones(len(probs)))
    p.close()


def test_a_batch_chosen_before_the_removal_does_not_guess_the_class(trained, tmp_path):
    before = [g["label"] for it in trained.batch() for g in it["guesses"]]
    assert "blue" in before
    _merge_blue_into_green(trained, tmp_path)
    trained.configure(remove_classes=["blue"])
    after = [[g["label"] for g in it["guesses"]] for it in trained.batch()]
    assert all("blue" not in gs and gs for gs in after)


def test_a_check_made_before_the_removal_never_suggests_the_class(project):
    """A label check's out-of-fold probabilities stay as stored; read after the removal, the
    removed class is dropped (the rest renormalised) and never suggested."""
    from fishermask.label import check as chk

    label_truth(project, 3)
    ids = project.store.image_ids_by_path()
    cur = project.store.current()
    cid, _, _ = project.store.start_check(2, os.getpid())
    rows = []
    for path, image_id in ids.items():
        if image_id not in cur:
            continue
        y = CLASSES.index(path.split("/")[0])
        probs = [0.05, 0.05, 0.05]
        probs[y] = 0.1
        probs[2 if y != 2 else 0] += 0.75  # every label looks like blue (or red, for blue's)
        rows.append((image_id, cur[image_id][0], y, image_id % 2, probs))
    project.store.finish_check(cid, status="done", rows=rows)
    before = chk.latest_check(project)
    assert 2 in before.suggested.values()  # blue suggested for the red and green labels
    # every blue label relabeled red, blue removed
    project.add_label_rows(
        [(f"blue/{i:03d}.png", "red") for i in range(3)], source="import", what="test"
    )
    project.configure(remove_classes=["blue"])
    after = chk.latest_check(project)
    assert 2 not in after.suggested.values()
    assert all(float(p[2]) == 0.0 and abs(float(p.sum()) - 1) < 1e-9 for p in after.probs.values())
    issues, _ = chk.issue_rows(project, after)
    assert all(r["suggested"] != "blue" for r in issues)


# -- a running server --------------------------------------------------------------------------
def test_a_running_server_follows_a_removal(trained, tmp_path):
    with api_client(trained.dir) as c:
        page = c.get("/", headers=AUTH).text
        assert 'data-label="blue"' in page
        image_id = c.get("/api/batch", headers=AUTH).json()["items"][0]["image_id"]
        # in another process while the server runs: merge, then remove
        _merge_blue_into_green(trained, tmp_path)
        r = _run("config", trained.dir, "--remove-class", "blue")
        assert r.exit_code == 0, r.output
        st = c.get("/api/status", headers=AUTH).json()
        assert st["classes"] == ["red", "green"] and "blue" not in st["per_class"]
        page = c.get("/", headers=AUTH).text
        assert 'data-label="blue"' not in page and 'data-label="red"' in page
        batch = c.get("/api/batch", headers=AUTH).json()
        assert batch["classes"] == ["red", "green"]
        assert all(g["label"] != "blue" for it in batch["items"] for g in it["guesses"])
        # a page loaded before the removal: refused, nothing saved, with the fix
        n = len(trained.store.history())
        r = c.post("/api/labels", json={"image_id": image_id, "label": "blue"}, headers=AUTH)
        assert r.status_code == 409, r.text
        assert "'blue' was removed" in r.json()["error"] and "reload the page" in r.json()["error"]
        assert len(trained.store.history()) == n
        r = c.post("/api/labels", json={"image_id": image_id, "label": "green"}, headers=AUTH)
        assert r.status_code == 200, r.text
        # the Labeled view: no blue filter, no blue guess or label
        r = c.get("/api/labeled?label=blue", headers=AUTH)
        assert r.status_code == 400 and "not one of the project's classes" in r.json()["error"]
        assert "class 'blue' was removed by `fishermask label config" in r.json()["error"]
        items = c.get("/api/labeled", headers=AUTH).json()["items"]
        assert {it["label"] for it in items} == {"red", "green"}
        assert all(it["guess"]["label"] != "blue" for it in items)
        r = c.get("/api/predictions?top=2", headers=AUTH)
        assert r.status_code == 200
        assert all(row["prediction"] != "blue" for row in r.json()["predictions"])
        assert c.get("/api/predictions?top=3", headers=AUTH).status_code == 400
        # an undo that would bring blue back: 409, nothing undone
        ids = trained.store.image_ids_by_path()
        relabel = trained.store.current()[ids["blue/000.png"]][0]
        r = c.post("/api/undo", json={"label_id": relabel}, headers=AUTH)
        assert r.status_code == 409 and "a class removed since" in r.json()["error"]
        assert trained.store.current()[ids["blue/000.png"]][0] == relabel


def test_the_labeled_view_never_guesses_a_removed_class_of_an_older_model(trained, tmp_path):
    """The tiny model rarely makes blue its top class; here the model trained before the
    removal gives blue 0.9 for every image: the Labeled view drops it and renormalises."""
    from fishermask.label import review

    class BlueModel(review.LabelProbabilities):
        def get(self, project, image_ids):
            info, p = super().get(project, image_ids)
            return info, {i: np.array([0.06, 0.04, 0.9]) for i in p}

    _merge_blue_into_green(trained, tmp_path)
    trained.configure(remove_classes=["blue"])
    out = review.labeled_page(trained, BlueModel(), per_page=None)
    assert out["items"] and {it["guess"]["label"] for it in out["items"]} == {"red"}
    for it in out["items"]:
        assert it["label_prob"] == (0.6 if it["label"] == "red" else 0.4)
        assert it["guess"]["prob"] == 0.6


def test_an_annotator_s_own_label_of_a_removed_class_is_named_removed(project):
    """alice labeled an image blue; the owner merged blue into green (relabeling it): alice's
    own label stays hers, in the history, named as a removed class in the disagreements."""
    ids = project.store.image_ids_by_path()
    project.store.add_label(ids["blue/000.png"], "label", 2, annotator="alice")
    project.add_label_rows([("blue/000.png", "green")], source="import", what="merge")
    project.configure(remove_classes=["blue"])
    (row,) = project.disagreements()
    assert row["current"] == "green"
    assert row["labels"] == {"alice": "blue (removed)", "owner": "green"}
