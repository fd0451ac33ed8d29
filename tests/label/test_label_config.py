"""`fishermask label config`: show and change a project's settings after init."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from typer.testing import CliRunner

from fishermask.cli import app
from fishermask.errors import ConfigError
from fishermask.label.project import Project
from fishermask.label.store import DB_NAME
from tests.label.conftest import label_truth

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, ["label", *map(str, args)])


def _db(project) -> bytes:
    """Settings and history as stored (to check that a refused change wrote nothing)."""
    with sqlite3.connect(project.dir / DB_NAME) as c:
        rows = c.execute("SELECT * FROM meta ORDER BY key").fetchall()
        rows += c.execute("SELECT * FROM settings_history").fetchall()
    return json.dumps(rows).encode()


def test_without_options_prints_the_settings(project):
    r = _run("config", project.dir)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "batch: 6" in lines and "model: cnn" in lines and "budget: none" in lines
    assert "image-size: 8x8 (fixed)" in lines
    assert "classes: red,green,blue (--add-class, --rename-class, --remove-class)" in lines
    # the decoded pixels live outside the project folder: say where, so that they can be
    # found and deleted (a deleted project left them in ~/.cache/fishermask, unnamed)
    cached = [x for x in lines if x.startswith("decoded images: ")]
    assert len(cached) == 1, lines
    pid = project.settings["project_id"]
    assert cached[0].startswith(
        f"decoded images: {project.cache_dir}/.fishermask-label-{pid}-segment-* (a cache "
    )
    assert "safe to delete: decoded again when needed" in cached[0]
    assert list(project.cache_dir.glob(f".fishermask-label-{pid}-segment-*")), cached
    assert "since init" not in r.output  # no change yet
    assert _run("config", project.dir, "--batch", "4").exit_code == 0
    r = _run("config", project.dir)
    assert "1 change since init (table settings_history)." in r.output  # not '1 change(s)'


def test_changes_are_written_recorded_and_used_from_the_next_round(project):
    before = project.store.rounds()[-1]
    assert before["settings"]["batch"] == 6
    r = _run(
        "config", project.dir, "--strategy", "entropy", "--batch", "4", "--budget", "12",
        "--query-pool", "0", "--max-epochs", "2",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "batch: 6 -> 4" in r.stdout and "strategy: fishermask -> entropy" in r.stdout
    p = Project(project.dir)
    s = p.settings
    assert (s["strategy"], s["batch"], s["budget"], s["query_pool"], s["max_epochs"]) == (
        "entropy", 4, 12, 0, 2,
    )  # fmt: skip
    (h,) = p.store.settings_history()
    assert h["changes"]["batch"] == [6, 4] and h["changes"]["strategy"] == ["fishermask", "entropy"]
    assert "model" not in h["changes"]  # only what changed
    # the project already open (e.g. the server's) sees them in its status
    assert project.status()["strategy"] == "entropy" and project.counts()["budget"] == 12
    label_truth(p, 2)
    row = p.run_round(train_model=True)
    assert row["strategy"] == "entropy" and row["settings"]["batch"] == 4
    assert "(method: entropy)" in row["mode"] and len(p.store.queue()) == 4
    # the earlier round keeps the settings it ran with
    assert p.store.round(before["id"])["settings"]["strategy"] == "fishermask"
    p.close()
    r = _run("config", project.dir, "--batch", "4")
    assert r.exit_code == 0 and "nothing changed" in r.stdout
    assert len(Project(project.dir).store.settings_history()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch", "0"], "--batch 0: must be an integer >= 1"),
        (["--budget", "0"], "--budget 0: must be >= 1"),
        (["--budget", "25"], "--budget 25 is more than the project's 24 images"),
        (["--max-steps", "-1"], "--max-steps -1: must be an integer >= 0"),
        (["--width", "0"], "--width 0.0: must be > 0"),
        (["--model", "vgg"], "Unknown model 'vgg'"),
        (["--model", "linear"], "model 'linear' has no width to scale"),  # width stays 0.25
        (["--strategy", "nope"], "Unknown strategy 'nope'"),
        (["--query-pool", "3"], "--query-pool 3 is smaller than the batch (6)"),
        (["--batch", "3000"], "--query-pool 2000 is smaller than the batch (3000)"),
        (["--strategy", "fishermask:k=100000000"], "k=100000000 exceeds the model's"),
        (["--strategy", "fishermask:bogus=1"], "Unknown option(s) bogus"),
        (["--image-size", "16x16"], "--image-size cannot change"),
        (["--classes", "a,b"], "--classes cannot change: every label and saved model refers"),
        (["--images", "elsewhere"], "--images elsewhere: no such folder (looked for "),
    ],
)
def test_bad_values_fail_with_one_line_and_write_nothing(project, args, message):
    before = _db(project)
    r = _run("config", project.dir, *args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert _db(project) == before


def test_a_budget_below_the_labels_given_is_refused(project):
    from tests.label.conftest import label_truth

    label_truth(project, 2)  # 6 labels
    before = _db(project)
    r = _run("config", project.dir, "--budget", "5")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    assert "--budget 5 is below the 6 labels already given: use --budget >= 6" in r.output
    assert _db(project) == before
    r = _run("config", project.dir, "--budget", "6")
    assert r.exit_code == 0, r.output


def test_fixed_settings_say_what_to_do_instead(project):
    r = _run("config", project.dir, "--image-size", "16x16")
    assert "label export" in r.stderr and "--labels labels.csv" in r.stderr


def test_refused_while_a_round_runs_and_allowed_after(project):
    rid = project.store.start_round("fishermask", os.getpid())  # alive: this process
    before = _db(project)
    r = _run("config", project.dir, "--batch", "4")
    assert r.exit_code == 2 and f"round {rid} is running" in r.stderr
    assert _db(project) == before
    with pytest.raises(ConfigError, match="is running"):
        project.configure(batch=4)
    project.store.finish_round(rid, status="done")
    assert project.configure(batch=4) == {"batch": [6, 4]}


def test_model_change_keeps_the_last_model_usable(project):
    label_truth(project, 2)
    trained = project.run_round(train_model=True)
    project.configure(model="mlp", width=0.5)
    # querying without retraining uses the checkpoint's own architecture
    row = project.run_round(train_model=False)
    assert row["status"] == "done" and row["checkpoint"] == trained["checkpoint"]
    row = project.run_round(train_model=True)
    state = __import__("torch").load(
        project.dir / row["checkpoint"], map_location="cpu", weights_only=True
    )
    assert state["model_name"] == "mlp" and state["width"] == 0.5


def test_switch_to_a_strategy_needing_an_auxiliary_module_asks_for_a_retrain(project):
    label_truth(project, 2)
    project.run_round(train_model=True)
    project.configure(strategy="lpl")
    r = _run("next", project.dir)
    assert r.exit_code == 2 and "retrain first: fishermask label train" in r.stderr
    r = _run("train", project.dir, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "(method: lpl)" in Project(project.dir).store.rounds()[-1]["mode"]


def test_a_project_made_before_label_config_is_upgraded(project):
    with sqlite3.connect(project.dir / DB_NAME) as c:
        c.execute("ALTER TABLE rounds DROP COLUMN settings")
        c.execute("DROP TABLE settings_history")
    project.close()
    p = Project(project.dir)
    assert p.store.rounds()[-1]["settings"] == {}
    assert p.configure(batch=5) == {"batch": [6, 5]}
    assert p.run_round(train_model=False)["settings"]["batch"] == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["config", "--strategy", "entrpy"], "typiclust; did you mean 'entropy'? A strategy of"),
        (["config", "--strategy", "fishermask:sparsty=1"], "did you mean 'sparsity'?"),
        (["config", "--model", "resnt18"], "linear; did you mean 'resnet18'? A model of"),
        (["config", "--remove-class", "bleu"], "(red, green, blue); did you mean 'blue'?"),
        (["config", "--rename-class", "gren=lime"], "(red, green, blue); did you mean 'green'?"),
        (["status", "--list", "unsur"], "copies or rounds; did you mean 'unsure'?"),
    ],
)
def test_a_misspelt_name_is_suggested(project, args, message):
    before = _db(project)
    r = _run(args[0], project.dir, *args[1:])
    assert r.exit_code == 2, r.output
    assert message in " ".join(r.stderr.split()), r.stderr
    assert _db(project) == before


def test_a_misspelt_class_in_a_csv_of_labels_is_suggested(project):
    (project.dir / "x.csv").write_text("path,label\nred/000.png,gren\nred/001.png,pink\n")
    r = _run("add", project.dir, project.dir / "x.csv")
    assert r.exit_code == 2, r.output
    line = " ".join(r.stderr.split())
    assert "line 2: label 'gren' is not one of red, green, blue (did you mean 'green'?);" in line
    assert "line 3: label 'pink' is not one of red, green, blue; nothing was written." in line
    with pytest.raises(ConfigError, match=r"red, green, blue; did you mean 'green'\?$"):
        project.class_id("gren")
