"""`fishermask label check`: out-of-fold probabilities (K models, each without one fold of the
labels), the confident-learning rule, and what the Labeled view and `label status --list
labeled` then rank by."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3

import numpy as np
import pytest
from typer.testing import CliRunner

from fishermask.cli import app
from fishermask.label import check as chk
from tests.label.conftest import AUTH, CLASSES, TINY, api_client, make_folder

runner = CliRunner()
#: Labels that contradict the images' folders (the classes of make_folder are their colours).
WRONG = {
    "red/000.png": "blue",
    "green/001.png": "red",
    "blue/002.png": "green",
    "red/003.png": "green",
}
#: Long enough for the quarter-width CNN to learn the colours (about 25 s for 5 folds here).
LEARNS = TINY | {"max_epochs": 100, "max_steps": 90}


def _run(*args):
    return runner.invoke(app, ["label", *map(str, args)])


def _label_all(p, names=CLASSES) -> None:
    """Label every image by its folder (class names ``names`` in CLASSES' order), then
    :data:`WRONG` (the flips)."""
    rows = [(r.path, names[CLASSES.index(r.path.split("/")[0])]) for r in p.store.images()]
    p.add_label_rows(rows, source="import", what="test")
    flips = [(k, names[CLASSES.index(v)]) for k, v in WRONG.items()]
    p.add_label_rows(flips, source="import", what="test")


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """24 images, all labeled, 4 of them wrong (:data:`WRONG`); class ``red`` is named
    ``=red`` (a spreadsheet formula unless escaped); a model trained on every label (round),
    then a 5-fold check. Read only: copy the folder to change it."""
    from fishermask.label.project import Project

    tmp = tmp_path_factory.mktemp("check")
    folder = make_folder(tmp / "images")
    names = ("=red", "green", "blue")
    p = Project.init(tmp / "proj", folder, ",".join(names), cache_dir=tmp / "cache", **LEARNS)
    p.run_round(train_model=False)
    _label_all(p, names)
    p.run_round(train_model=True)
    chk.run_check(p, 5)
    p.close()
    return tmp / "proj"


def _copy(checked, tmp_path):
    dst = tmp_path / "proj"
    shutil.copytree(checked, dst)
    return dst


def test_the_rule_is_the_plain_loop_of_confident_learning():
    rng = np.random.default_rng(0)
    for _ in range(20):
        probs = rng.dirichlet(np.ones(4) * 0.5, size=30)  # [N, C]
        labels = rng.integers(0, 3, size=30)  # class 3 never labeled: never suggested
        flagged, suggested = chk.label_issues(probs, labels)
        ref_f, ref_s = chk.reference_label_issues(probs, labels)
        assert flagged.tolist() == ref_f and suggested.tolist() == ref_s
        assert 3 not in suggested.tolist()
    # by hand: t = [0.625, 0.6]; image 2 (labeled 0) has p_1 = 0.65 >= 0.6, p_0 < 0.625
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.35, 0.65], [0.5, 0.5]])
    labels = np.array([0, 1, 0, 1])
    assert chk.thresholds(probs, labels).tolist() == pytest.approx([0.625, 0.6])
    f, s = chk.label_issues(probs, labels)
    assert f.tolist() == [False, False, True, False] and s.tolist() == [-1, -1, 1, -1]


def test_folds_are_stratified_deterministic_and_keep_copies_together():
    rng = np.random.default_rng(1)
    labeled = {i: int(rng.integers(0, 3)) for i in range(1, 200)}
    copies = {150: 3, 151: 3, 160: 40}  # 150, 151 copy image 3; 160 copies 40
    folds = chk.check_folds(labeled, copies, 5, seed=7)
    assert folds == chk.check_folds(labeled, copies, 5, seed=7)
    assert folds != chk.check_folds(labeled, copies, 5, seed=8)
    assert folds[150] == folds[151] == folds[3] and folds[160] == folds[40]
    originals = {i: c for i, c in labeled.items() if i not in copies}
    for c in range(3):
        per_fold = [
            sum(1 for i, f in folds.items() if f == k and originals.get(i) == c) for k in range(5)
        ]
        assert max(per_fold) - min(per_fold) <= 1, per_fold


def test_the_check_flags_the_flipped_labels(checked, tmp_path):
    """Measured: the 4 flips are the 4 flags (recall 4/4, no false flag of the 20 right
    labels), the lowest out-of-fold probabilities of their labels; asserted with a margin."""
    from fishermask.label.predict import committed_classifier, probabilities
    from fishermask.label.project import Project

    p = Project(_copy(checked, tmp_path))
    try:
        check = chk.latest_check(p)
        rows, m = chk.issue_rows(p, check)
        # the round's model, trained on every label (the flips too), as the view ranked before
        _, model, norm = committed_classifier(p)
        x, ids = p.images()
        by_path = {r.path: r.id for r in p.store.images()}
        flips = [by_path[k] for k in WRONG]
        seen = probabilities(model, norm, x, [ids.index(i) for i in flips]).double().numpy()
    finally:
        p.close()
    # that model partly fitted the flips: measured p(label) 0.13-0.23 against 0.01-0.07 out
    # of fold, and the rule on its probabilities flagged 1 of the 4
    in_sample = [seen[n, check.label[i]] for n, i in enumerate(flips)]
    out_of_fold = [check.probs[i][check.label[i]] for i in flips]
    assert np.mean(in_sample) > 2 * np.mean(out_of_fold), (in_sample, out_of_fold)
    assert m == 24 and check.info["folds"] == 5
    flagged = {r["path"] for r in rows}
    assert len(flagged & set(WRONG)) >= 3  # recall >= 3/4 (measured 4/4)
    assert len(flagged - set(WRONG)) <= 2  # false flags <= 2 of 20 (measured 0)
    for r in rows:
        if r["path"] in WRONG:
            assert r["suggested"].lstrip("=") == r["path"].split("/")[0]
    probs = [r["label_prob"] for r in rows]
    assert probs == sorted(probs)


def test_each_image_is_scored_by_the_model_that_did_not_train_on_it(tmp_path, monkeypatch):
    """Instrumented: the pixels each fold's model trains on and the images it scores are
    disjoint, every labeled image is scored once, and byte-for-byte copies (one labeled as
    another class) are in the fold of the image they copy."""
    from fishermask.label import predict
    from fishermask.label.project import Project

    folder = make_folder(tmp_path / "images")
    shutil.copy(folder / "red" / "000.png", folder / "red" / "copy.png")
    shutil.copy(folder / "red" / "000.png", folder / "green" / "copy-of-red.png")
    shutil.copy(folder / "blue" / "005.png", folder / "blue" / "copy.png")
    p = Project.init(tmp_path / "proj", folder, ",".join(CLASSES), **TINY)
    p.run_round(train_model=False)
    _label_all(p)
    trained, scored = [], []
    fit, probabilities = Project._fit, predict.probabilities

    def spy_fit(self, x, y, *args, **kw):
        trained.append({hashlib.sha256(bytes(im.numpy().tobytes())).hexdigest() for im in x})
        return fit(self, x, y, *args, **kw)

    def spy_probs(model, norm, x, positions, **kw):
        scored.append(
            {hashlib.sha256(bytes(x[q].numpy().tobytes())).hexdigest() for q in positions}
        )
        return probabilities(model, norm, x, positions, **kw)

    monkeypatch.setattr(Project, "_fit", spy_fit)
    monkeypatch.setattr(predict, "probabilities", spy_probs)
    try:
        chk.run_check(p, 4)
        check = chk.latest_check(p)
        by_path = {r.path: r.id for r in p.store.images()}
    finally:
        p.close()
    assert len(trained) == len(scored) == 4
    for train_set, test_set in zip(trained, scored, strict=True):
        assert train_set and test_set and not train_set & test_set
    assert len(check.probs) == 27 and sorted(check.fold.values()).count(0) >= 5
    red = check.fold[by_path["red/000.png"]]
    assert (
        check.fold[by_path["red/copy.png"]] == check.fold[by_path["green/copy-of-red.png"]] == red
    )
    assert check.fold[by_path["blue/copy.png"]] == check.fold[by_path["blue/005.png"]]


def test_two_checks_give_the_same_probabilities(project):
    _label_all(project)
    first = chk.run_check(project, 3)
    a = chk.latest_check(project)
    second = chk.run_check(project, 3)
    b = chk.latest_check(project)
    assert second != first and b.info["id"] == second
    assert a.probs.keys() == b.probs.keys()
    for i in a.probs:
        assert a.probs[i].tolist() == b.probs[i].tolist()
    assert a.fold == b.fold


def test_the_labeled_view_ranks_by_the_check_and_a_relabel_falls_back(checked, tmp_path):
    proj = _copy(checked, tmp_path)
    with api_client(proj) as c:
        r = c.get("/api/labeled", headers=AUTH, params={"per_page": 50}).json()
        assert r["check"]["folds"] == 5 and r["check"]["current"] == 24
        assert "out-of-fold probabilities from the label check of" in r["note"]
        assert "for all 24 labels" in r["note"]
        items = r["items"]
        assert {it["prob_from"] for it in items} == {"check"}
        top = [it["path"] for it in items if it["flagged"]]
        assert set(top) <= {it["path"] for it in items[: len(top)]}  # flagged ones first
        fix = next(it for it in items if it["path"] == "green/001.png")
        assert fix["flagged"] and fix["suggested"] == "green"
        saved = c.post(
            "/api/labels",
            headers=AUTH,
            json={"image_id": fix["image_id"], "kind": "label", "label": "green"},
        )
        assert saved.status_code == 200, saved.text
        r = c.get("/api/labeled", headers=AUTH, params={"per_page": 50}).json()
        assert "for 23 of 24 labels" in r["note"]
        assert (
            "the model of round" in r["note"]
            and "for the one labeled or changed since" in r["note"]
        )
        again = next(it for it in r["items"] if it["path"] == "green/001.png")
        assert again["prob_from"] == "model" and again["flagged"] is None
        assert again["suggested"] is None
    # the command line's list says the same
    out = _run("status", proj, "--list", "labeled")
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    by = {row["path"]: row for row in rows}
    assert by["green/001.png"]["prob_from"] == "model" and by["green/001.png"]["flagged"] == ""
    assert by["blue/002.png"]["prob_from"] == "check" and by["blue/002.png"]["flagged"] == "yes"
    assert by["blue/002.png"]["suggested"] == "blue"
    assert "for 23 of 24 labels" in out.stderr


def test_check_latest_csv_is_spreadsheet_safe_and_counts(checked, tmp_path):
    proj = _copy(checked, tmp_path)
    r = _run("check", proj, "--latest")
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["path", "label", "suggested", "label_prob", "suggested_prob", "by", "when"]
    cells = [cell for row in rows[1:] for cell in row[1:3]]
    assert "'=red" in cells and "=red" not in cells  # the formula escaped
    n = len(rows) - 1
    assert f"{n} of 24 labels flagged as possibly wrong" in r.stderr and "Labeled view" in r.stderr
    # measured: 83.3 %, 20 of the 24 (the 4 flips are predicted as their true colour)
    agree = re.search(r"the check's models predict ([0-9.]+) % of the labels", r.stderr)
    assert agree is not None and 70 <= float(agree.group(1)) <= 84, r.stderr
    j = _run("check", proj, "--latest", "--format", "json", "--out", tmp_path / "i.json")
    assert j.exit_code == 0, j.output
    data = json.loads((tmp_path / "i.json").read_text())
    assert [d["path"] for d in data] == [row[0] for row in rows[1:]]
    assert any(d["label"] == "=red" or d["suggested"] == "=red" for d in data)


def test_check_command_prints_one_line_per_fold(project):
    _label_all(project)
    project.close()
    r = _run("check", project.dir, "--folds", "3", "--format", "json")
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("fold ")]
    assert [ln.split(":")[0] for ln in lines] == ["fold 1/3", "fold 2/3", "fold 3/3"]
    assert "labels flagged as possibly wrong" in r.stderr.splitlines()[-2]
    assert "out of fold, the check's models predict" in r.stderr.splitlines()[-1]
    json.loads(r.stdout)


def test_a_check_from_the_command_line_records_its_progress_for_the_page(project):
    """The page shows a running check's progress from its row (`GET /api/status` `check`),
    also for a check run with `label check` ("a check run from the command line is shown
    too"); only the server's worker wrote it, so the page said 'starting', 0 of 0, until a
    command-line check ended."""
    _label_all(project)
    seen = []

    def report(phase, done, total):  # the command's own bar: the row is written first
        row = project.store.check_row()
        seen.append((phase, row["status"], row["phase"], row["done"], row["total"]))

    chk.run_check(project, 2, report)
    folds = [x for x in seen if x[0].startswith("fold ")]
    assert [x[0].split(":")[0] for x in folds][:1] == ["fold 1/2"] and folds, seen
    for phase, status, recorded, _done, total in seen:
        assert status == "running" and recorded == phase and total >= 1, seen
    assert folds[-1][0].startswith("fold 2/2") and folds[-1][3] == folds[-1][4], seen
    row = project.store.check_row()
    assert row["status"] == "done" and row["phase"].startswith("fold 2/2"), row


def test_refusals_too_few_labels_and_a_round_running(project):
    project.add_label_rows(
        [("red/000.png", "red"), ("red/001.png", "red"), ("green/000.png", "green")],
        source="import",
        what="test",
    )
    dir_ = project.dir
    r = _run("check", dir_)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    assert "at least 2 labeled images in every class" in r.stderr and "'green' 1" in r.stderr
    project.add_label_rows([("green/001.png", "green")], source="import", what="test")
    r = _run("check", dir_)
    assert r.exit_code == 2 and "--folds 5 needs at least 5 labeled images" in r.stderr
    assert "has 4" in r.stderr
    r = _run("check", dir_, "--folds", "1")
    assert r.exit_code == 2 and "must be 2 to 20" in r.stderr
    assert project.store.latest_check() is None
    # a round running (this live process's): the check is refused, nothing recorded
    rid = project.store.start_round("random", os.getpid())
    r = _run("check", dir_, "--folds", "2")
    assert r.exit_code == 2 and f"a retrain is already running (round {rid}" in r.stderr
    project.store.finish_round(rid, status="done")
    n_checks = project.store.query("SELECT COUNT(*) AS n FROM label_checks")[0]["n"]
    assert n_checks == 0


def test_a_round_is_refused_while_a_check_runs(project):
    from fishermask.errors import ConfigError
    from fishermask.label.store import CheckRunning

    label = project.store
    check_id, _, _ = label.start_check(5, os.getpid())  # as a live check process does
    with pytest.raises(CheckRunning, match=f"a label check is running \\(check {check_id}"):
        label.start_round("random", os.getpid())
    with pytest.raises(ConfigError, match="a label check is running"):
        project.run_round(train_model=True)
    with api_client(project.dir) as c:
        r = c.post("/api/next", headers=AUTH)
        assert r.status_code == 409 and "a label check is running" in r.json()["error"]
    # a check whose process died blocks nothing, and the next check marks it interrupted
    label.query("UPDATE label_checks SET pid_start = 'gone' WHERE id = ?", (check_id,))
    rid = label.start_round("random", os.getpid())
    label.finish_round(rid, status="done")
    label.start_check(5, os.getpid())
    status = label.query("SELECT status FROM label_checks WHERE id = ?", (check_id,))[0]["status"]
    assert status == "interrupted"


def test_an_older_project_gets_the_check_tables(project):
    path = project.store.path
    dir_ = project.dir
    project.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE label_checks")
    db.execute("DROP TABLE check_probs")
    db.commit()
    db.close()
    r = _run("check", dir_, "--latest")
    assert r.exit_code == 2 and "no label check yet" in r.stderr, r.output
    db = sqlite3.connect(path)
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert {"label_checks", "check_probs"} <= names


def test_the_page_marks_the_flagged_tiles(checked, tmp_path, browser):
    """The Labeled view's tiles of the labels the check flags carry a marker with the
    suggested class (and the selected line says it); the others none."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.label import test_browser as tb

    dst = _copy(checked, tmp_path)
    proc, line, _ = tb.start_server(dst)  # every image labeled: no batch to wait for
    try:
        browser.get(re.search(r"http://\S+", line).group(0))
        wait = WebDriverWait(browser, 60)
        wait.until(lambda d: d.find_elements(By.ID, "tab-labeled"))
        browser.find_element(By.ID, "tab-labeled").click()

        def tiles(d) -> list[list]:  # [path, flagged, marker text] per tile
            return d.execute_script(
                "return [...document.querySelectorAll('#grid button.tile')].map((t) => "
                "[t.title.split(' ')[0], t.classList.contains('flagged'), "
                "(t.querySelector('.flag') || {}).textContent || null])"
            )

        wait.until(lambda d: len(tiles(d)) == 24)
        marked = {path: text for path, flagged, text in tiles(browser) if flagged}
        assert set(marked) & set(WRONG) and len(marked) <= 6
        assert marked.get("green/001.png") == "\u2691 green?"
        assert all(text is None for path, flagged, text in tiles(browser) if not flagged)
        note = browser.find_element(By.ID, "browse-note").text
        assert "out-of-fold probabilities from the label check" in note
        browser.find_elements(By.CSS_SELECTOR, "#grid button.tile.flagged")[0].click()
        wait.until(
            lambda d: "the label check suggests" in d.find_element(By.ID, "browse-selected").text
        )
    finally:
        tb.stop_server(proc)


def test_serve_does_not_restart_an_interrupted_retrain_while_a_check_runs(project):
    """`label serve` restarts an interrupted retrain; while a check runs it says why not and
    serves (it stopped with a traceback of CheckRunning otherwise)."""
    import subprocess
    import sys

    from tests.label import test_kill as tk

    _label_all(project)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    rid = project.store.start_round("fishermask", dead.pid)  # killed mid-way
    assert project.recover() == [rid]
    project.store.start_check(5, os.getpid())  # this live process is "the check"
    project.close()
    proc, line, out = tk.start_server(project.dir)
    try:
        assert "labeling page: http://" in line
        assert "not restarted now: a label check is running" in out, out
    finally:
        tk.stop_server(proc)
    from fishermask.label.project import Project

    p = Project(project.dir)
    assert p.store.rounds()[-1]["id"] == rid  # no new round
    p.close()


def test_a_class_added_or_renamed_after_the_check(checked, tmp_path):
    """The check's probabilities have one per class of its time: a class added since is never
    suggested (and its labels are newer than the check); a renamed class is named by its new
    name, in the list and in the Labeled view."""
    proj = _copy(checked, tmp_path)
    r = _run("config", proj, "--add-class", "purple", "--rename-class", "green=lime")
    assert r.exit_code == 0, r.output
    r = _run("check", proj, "--latest", "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert any(d["suggested"] == "lime" for d in data)
    assert not any("purple" in (d["label"], d["suggested"]) for d in data)
    assert "green" not in {d["suggested"] for d in data} | {d["label"] for d in data}
    with api_client(proj) as c:
        res = c.get("/api/labeled", headers=AUTH, params={"per_page": 50}).json()
        assert res["check"]["current"] == 24 and "for all 24 labels" in res["note"]
        fix = next(it for it in res["items"] if it["path"] == "green/001.png")
        assert fix["suggested"] == "lime" and fix["flagged"]


def test_check_says_when_its_models_are_too_weak_for_the_flags(checked, tmp_path, monkeypatch):
    """595 of 1 000 CIFAR-10 labels were 'labels that look wrong' when the models predicted
    43 % of them (13 % of the flagged were flips): the command now says the flags cannot be
    trusted then. Here the models predict 83.3 %: the threshold is raised above it."""
    import fishermask.label.check as check

    proj = _copy(checked, tmp_path)
    r = _run("check", proj, "--latest")
    assert r.exit_code == 0 and "too weak" not in r.stderr, r.output
    monkeypatch.setattr(check, "WEAK_CHECK", 0.9)
    r = _run("check", proj, "--latest")
    assert r.exit_code == 0, r.output
    last = r.stderr.splitlines()[-1]
    assert last.startswith("out of fold, the check's models predict only 83.3 % of the labels")
    assert "too weak for the flags to tell right labels from wrong ones" in last


def test_status_says_what_the_latest_check_found(checked, tmp_path):
    """`label status` said nothing of a check: neither that one ran nor what it flagged."""
    proj = _copy(checked, tmp_path)
    latest = _run("check", proj, "--latest", "--format", "json")
    assert latest.exit_code == 0, latest.output
    issues = json.loads(latest.stdout)
    r = _run("status", proj)
    assert r.exit_code == 0, r.output
    st = json.loads(r.stdout)["check"]
    agree = re.search(r"predict (?:only )?([0-9.]+) % of the labels", latest.stderr)
    assert agree is not None
    assert (st["folds"], st["scored"], st["current"]) == (5, 24, 24)
    assert st["flagged"] == len(issues) and f"{st['flagged']} of 24 labels" in latest.stderr
    assert round(100 * st["agreement"], 1) == float(agree.group(1))
    # a label changed since the check: no longer current, nor counted as flagged
    fixed = issues[0]
    (tmp_path / "fix.csv").write_text(f"path,label\n{fixed['path']},{fixed['suggested']}\n")
    assert _run("add", proj, tmp_path / "fix.csv").exit_code == 0
    st = json.loads(_run("status", proj).stdout)["check"]
    assert (st["current"], st["flagged"]) == (23, len(issues) - 1)


def test_status_on_a_terminal_says_what_the_latest_check_found(checked, tmp_path):
    """`label status`'s short summary (a terminal, `--format text`) said nothing of a check,
    which only its JSON had: it now has a line with the check's time, what it flagged, how
    often its models were right and how to list the flags."""
    proj = _copy(checked, tmp_path)
    st = json.loads(_run("status", proj).stdout)["check"]
    r = _run("status", proj, "--format", "text")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stdout.splitlines() if x.startswith("label check of "))
    assert f"UTC (5 models): {st['flagged']} of 24 labels flagged as possibly wrong (" in line
    assert f"its models predicted {100 * st['agreement']:.1f} % of the labels out of fold" in line
    assert line.endswith(f"`fishermask label check {proj} --latest` lists them"), line
    assert "changed since" not in line
    issues = json.loads(_run("check", proj, "--latest", "--format", "json").stdout)
    fixed = issues[0]
    (tmp_path / "fix.csv").write_text(f"path,label\n{fixed['path']},{fixed['suggested']}\n")
    assert _run("add", proj, tmp_path / "fix.csv").exit_code == 0
    r = _run("status", proj, "--format", "text")
    assert f"{st['flagged'] - 1} of 23 labels flagged" in r.stdout
    assert ", 1 label changed since;" in r.stdout


@pytest.mark.parametrize(
    "when",
    [
        "2020-02-29T04:53:42Z",  # as check_summary writes it
        "2020-02-29T04:53:42.123456Z",
        "2020-02-29T05:53:42+01:00",
        "2020-02-29T04:53:42",
    ],
)
def test_status_shows_the_checks_time_in_utc_however_it_is_written(project, monkeypatch, when):
    """The check's time reached the status line through one strptime format: with
    microseconds or an offset the command stopped with a ValueError traceback."""
    project.close()
    summary = {"id": 1, "when": when, "folds": 5, "scored": 4, "current": 4, "flagged": 1}
    monkeypatch.setattr(chk, "check_summary", lambda p: {**summary, "agreement": 0.9})
    r = _run("status", project.dir, "--format", "text")
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stdout.splitlines() if x.startswith("label check of "))
    assert line.startswith("label check of 2020-02-29 04:53 UTC (5 models): 1 of 4 labels"), line


def test_status_before_any_check_has_none(project):
    project.close()
    r = _run("status", project.dir)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["check"] is None


def test_a_label_that_is_the_most_probable_confident_class_is_not_an_issue():
    """Image 0 (labeled 0, p = [0.45, 0.40, 0.15], t = [0.40, 0.40, 0.60]) reaches the
    thresholds of classes 0 and 1 and is more probable in its own: the confident joint counts
    it on its diagonal (Northcutt et al. 2021, Sec. 3.1: the argmax over every class at or
    above its threshold), so it is no issue. It was flagged 'suggested 1': any other class at
    its threshold flagged a label, which on flat (weak-model) probabilities flagged many right
    labels more (sklearn digits, 10 % flipped: 222 flags against 182, the same 131 flips)."""
    probs = np.array(
        [
            [0.45, 0.40, 0.15],
            [0.35, 0.30, 0.35],
            [0.30, 0.40, 0.30],
            [0.30, 0.40, 0.30],
            [0.2, 0.2, 0.6],
            [0.2, 0.2, 0.6],
        ]
    )
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert chk.thresholds(probs, labels).tolist() == pytest.approx([0.40, 0.40, 0.60])
    for flagged, suggested in (
        chk.label_issues(probs, labels),
        chk.reference_label_issues(probs, labels),
    ):
        assert list(flagged) == [False] * 6 and list(suggested) == [-1] * 6


def test_a_running_check_blocks_a_round_without_proc(project, monkeypatch):
    """Without /proc (macOS) no process identity is recorded, and a running check was taken
    for a dead one: a round (and a second check) started beside it."""
    import fishermask.label.store as st

    monkeypatch.setattr(st, "proc_start", lambda pid: None)
    monkeypatch.setattr(st, "has_proc", lambda: False)
    project.store.start_check(5, os.getpid())
    with pytest.raises(st.CheckRunning):
        project.store.start_round("fishermask", os.getpid())


def test_a_class_added_and_labeled_after_the_check_opened_the_project(project):
    """The check trained with the classes read when it opened the project: a class added and
    used meanwhile (another process) stopped it with torch's 'Target 3 is out of bounds'."""
    from fishermask.label.project import Project

    rows = [(r.path, r.path.split("/")[0]) for r in project.store.images()]
    project.add_label_rows(rows, source="import", what="test")
    other = Project(project.dir)  # meanwhile, `label config` or the page
    other.configure(add_classes=["zzz"])
    other.add_label_rows([(r, "zzz") for r, _ in rows[:2]], source="import", what="test")
    chk.run_check(project, 2)
    check = chk.latest_check(project)
    assert check is not None and all(len(p) == len(CLASSES) + 1 for p in check.probs.values())


def test_next_batch_during_a_check_leaves_the_last_rounds_estimate_running(project):
    """The server's worker stopped a finished round's held-out estimate (its process) before
    the round it was asked for was refused because a check runs: the estimate was lost
    ('not estimated') for a round that never started."""
    import subprocess
    import sys

    from fishermask.label.server import Worker
    from fishermask.label.store import CheckRunning

    worker = Worker(project)
    estimate = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worker.proc = estimate  # as after a round: its worker process still estimating
    try:
        project.store.start_check(5, os.getpid())
        with pytest.raises(CheckRunning):
            worker.start()
        assert estimate.poll() is None  # still running
    finally:
        estimate.kill()
        estimate.wait()


def test_a_class_nobody_labeled_is_never_the_checks_guess(project):
    """The check's models have an output for every class, one without labels too; weak ones
    gave it enough probability to be the Labeled view's guess (0.27 for a class with no
    label) and to lower the share of labels they predict."""
    rows = [(r.path, r.path.split("/")[0]) for r in project.store.images()]
    project.add_label_rows(
        [(path, c) for path, c in rows if c != "blue"], source="import", what="test"
    )
    chk.run_check(project, 2)
    check = chk.latest_check(project)
    assert check is not None
    blue = CLASSES.index("blue")
    assert all(p[blue] == 0.0 and p.sum() == pytest.approx(1.0) for p in check.probs.values())
    assert blue not in check.suggested.values()
