"""Projects: init checks, label files, rounds (cold start, accuracy), recovery, export/import."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from fishermask.errors import ConfigError
from fishermask.label.project import Project, wilson
from tests.label.conftest import CLASSES, TINY, label_truth


def test_wilson_matches_scipy():
    from scipy.stats import binomtest

    for k, n in ((0, 10), (7, 10), (45, 50), (1, 3)):
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-6)


def test_init_rejects_bad_input(tmp_path, folder):
    for classes, msg in (("a", "at least 2"), ("a,a", "twice"), ("a,,b", "empty")):
        with pytest.raises(ConfigError, match=msg):
            Project.init(tmp_path / "p", folder, classes, **TINY)
    with pytest.raises(ConfigError, match="nope: no such folder"):
        Project.init(tmp_path / "p", tmp_path / "nope", "a,b", **TINY)
    with pytest.raises(ConfigError, match="Unknown strategy"):
        Project.init(tmp_path / "p", folder, "a,b", **{**TINY, "strategy": "nope"})
    Project.init(tmp_path / "p", folder, "a,b", **TINY).close()
    with pytest.raises(ConfigError, match="already a labeling project"):
        Project.init(tmp_path / "p", folder, "a,b", **TINY)


def test_first_batch_is_a_diverse_cold_start(project):
    q = project.store.queue()
    assert len(q) == 6 and len({r["image_id"] for r in q}) == 6
    assert project.status()["mode"].startswith(
        "a varied mix of images, picked by how they look (no model yet), until every class "
        "has 2 labels"
    )


def test_label_files_are_checked_before_writing(project, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nred/000.png,red\nred/001.png,purple\nnope.png,red\n")
    with pytest.raises(ConfigError, match="nothing was written"):
        project.add_label_rows(project.read_csv_labels(bad), source="import", what="bad.csv")
    assert project.store.history() == []
    (tmp_path / "h.csv").write_text("file,class\nred/000.png,red\n")
    with pytest.raises(ConfigError, match="header"):
        project.read_csv_labels(tmp_path / "h.csv")
    good = tmp_path / "good.csv"
    good.write_text(f"path,label\nred/000.png,red\n{project.root / 'blue/001.png'},blue\n")
    assert project.add_label_rows(project.read_csv_labels(good), source="import", what="g") == (
        2,
        0,
    )
    assert project.add_label_rows(project.read_csv_labels(good), source="import", what="g") == (
        0,
        2,
    )
    assert all(r.source == "import" for r in project.store.history())


def test_round_trains_reports_accuracy_and_leaves_cold_start(project):
    label_truth(project, 7)  # 21 labels: 5-fold cross-validation
    row = project.run_round(train_model=True)
    m = row["metrics"]
    assert m["method"] == "5-fold cross-validation" and m["n_eval"] == 21
    assert 0 <= m["low"] <= m["accuracy"] <= m["high"] <= 1
    assert m["per_class"] == [7, 7, 7]
    # `label status` names them (the list was unnamed); the list stays for its readers
    acc = project.status()["accuracy"]
    assert acc["per_class"] == [7, 7, 7]
    assert acc["per_class_by_name"] == {"red": 7, "green": 7, "blue": 7}
    assert (project.dir / row["checkpoint"]).is_file()
    assert row["mode"] == (  # with what the batch is in plain words
        "chosen by the model trained on 21 labels: the images that would teach it most "
        "(method: fishermask)"
    )
    q = project.batch()
    assert len(q) == 3  # only 3 images are left unlabeled
    assert all(it["guesses"] and it["state"] is None for it in q)


def test_cold_start_until_every_class_has_enough(project):
    project.add_label_rows(
        [("red/000.png", "red"), ("red/001.png", "red"), ("green/000.png", "green")],
        source="human",
        what="t",
    )
    row = project.run_round(train_model=True)
    assert row["mode"].startswith("a varied mix of images, picked as the model sees them")
    assert "blue: 0" in row["mode"] and "green: 1" in row["mode"]
    # the mode line stays on the page while the batch is labeled (the counts go up): it says
    # the counts are those of when the batch was chosen, not 'now'
    assert "(when this batch was chosen: green: 1, blue: 0)" in row["mode"]


def test_interrupted_round_falls_back_to_the_last_good_model(project):
    label_truth(project, 2)
    good = project.run_round(train_model=True)
    queue = project.store.queue()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    rid = project.store.start_round("fishermask", dead.pid)
    project.store.progress(rid, "training on every label", 3, 10)
    assert project.recover() == [rid]
    assert project.store.round(rid)["status"] == "interrupted"
    assert project.needs_restart()
    assert project.store.queue() == queue
    assert project.store.last_good_round(with_model=True)["id"] == good["id"]
    project.run_round(train_model=True)
    assert not project.needs_restart()


def test_exports_and_labelstudio_round_trip(project, tmp_path, folder):
    label_truth(project, 3)
    skip_id = project.store.image_ids_by_path()["green/007.png"]
    project.store.add_label(skip_id, "skip")
    project.run_round(train_model=True)
    labels = {p: c for _, p, c in project.labeled_rows()}
    assert len(labels) == 9

    assert project.export("csv", tmp_path / "l.csv") == 9
    lines = (tmp_path / "l.csv").read_text().splitlines()
    assert lines[0] == "path,label" and len(lines) == 10

    assert project.export("npz", tmp_path / "l.npz") == 9
    z = np.load(tmp_path / "l.npz")
    assert z["x"].shape == (9, 3, 8, 8) and list(z["classes"]) == list(CLASSES)
    assert {p: CLASSES[y] for p, y in zip(z["paths"], z["y"], strict=True)} == labels

    assert project.export("imagefolder", tmp_path / "folder") == 9
    assert sorted(p.name for p in (tmp_path / "folder" / "red").iterdir()) == [
        "red__000.png",
        "red__001.png",
        "red__002.png",
    ]
    assert project.export("imagefolder", tmp_path / "folder") == 9  # an earlier: replaced
    (tmp_path / "folder" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="neither empty nor an earlier"):
        project.export("imagefolder", tmp_path / "folder")

    n = project.export("labelstudio", tmp_path / "ls.json")
    tasks = json.loads((tmp_path / "ls.json").read_text())
    assert n == len(tasks) == 24
    done = [t for t in tasks if t["annotations"]]
    assert len(done) == 9
    res = done[0]["annotations"][0]["result"][0]
    assert res["type"] == "choices" and res["value"]["choices"][0] in CLASSES
    assert all(0 <= t["predictions"][0]["score"] <= 1 for t in tasks)
    assert tasks[0]["data"]["image"].startswith("/data/local-files/?d=")

    fresh = Project.init(tmp_path / "fresh", folder, ",".join(CLASSES), **TINY)
    rows = fresh.read_labelstudio(tmp_path / "ls.json")
    assert fresh.add_label_rows(rows, source="import", what="ls") == (9, 0)
    assert {p: c for _, p, c in fresh.labeled_rows()} == labels
    # the same without our `data.path` key: matched through data.image alone
    for t in tasks:
        del t["data"]["path"]
    (tmp_path / "ls2.json").write_text(json.dumps(tasks))
    other = Project.init(tmp_path / "other", folder, ",".join(CLASSES), **TINY)
    other.add_label_rows(other.read_labelstudio(tmp_path / "ls2.json"), source="import", what="x")
    assert {p: c for _, p, c in other.labeled_rows()} == labels
    fresh.close()
    other.close()


def test_labelstudio_import_of_a_label_studio_style_export(project, tmp_path):
    tasks = [
        {
            "id": 1,
            "data": {"image": "/data/upload/3/1a2b3c4d-000.png"},  # ambiguous basename
            "annotations": [
                {
                    "result": [
                        {
                            "type": "choices",
                            "value": {"choices": ["red"]},
                            "from_name": "c",
                            "to_name": "i",
                        }
                    ]
                }
            ],
        },
        {
            "id": 2,
            "data": {"image": "/data/local-files/?d=photos/blue/003.png"},
            "annotations": [
                {
                    "result": [{"type": "choices", "value": {"choices": ["green"]}}],
                    "created_at": "2024-01-01T00:00:00Z",
                },
                {
                    "result": [{"type": "choices", "value": {"choices": ["blue"]}}],
                    "created_at": "2024-01-02T00:00:00Z",
                },
                {
                    "result": [{"type": "choices", "value": {"choices": ["red"]}}],
                    "was_cancelled": True,
                    "created_at": "2024-01-03T00:00:00Z",
                },
            ],
        },
        {"id": 3, "data": {"image": "x.png"}, "annotations": []},
    ]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    with pytest.raises(
        ConfigError, match=r"task 1 \('/data/upload/3/1a2b3c4d-000.png'\) matches 3"
    ):
        project.read_labelstudio(tmp_path / "ls.json")
    assert project.store.history() == []
    (tmp_path / "ls.json").write_text(json.dumps(tasks[1:]))
    # photos/ is not the image folder's name (images/): taken only when --prefix says so
    with pytest.raises(ConfigError, match=r"under 'photos/'.*`--prefix photos/`"):
        project.read_labelstudio(tmp_path / "ls.json")
    project.add_label_rows(
        project.read_labelstudio(tmp_path / "ls.json", prefix="photos/"), source="import", what="ls"
    )
    assert {p: c for _, p, c in project.labeled_rows()} == {"blue/003.png": "blue"}


def test_labelstudio_import_refuses_a_task_with_several_choices(project, tmp_path):
    """A multi-choice answer (or two <Choices> in one annotation) used to import its first
    choice silently; an older annotation with several choices does not matter."""

    def ann(*choices, when="2024-01-02T00:00:00Z"):
        res = [{"type": "choices", "value": {"choices": list(choices)}}]
        return {"result": res, "created_at": when}

    older = ann("red", "green", when="2024-01-01T00:00:00Z")
    ok = {"id": 1, "data": {"path": "red/000.png"}, "annotations": [older, ann("red")]}
    two = {"id": 2, "data": {"path": "blue/001.png"}, "annotations": [ann("blue", "green")]}
    split = ann("blue")
    split["result"].append({"type": "choices", "value": {"choices": ["red"]}})
    apart = {"id": 3, "data": {"path": "blue/002.png"}, "annotations": [split]}
    for bad, names in ((two, "blue, green"), (apart, "blue, red")):
        (tmp_path / "ls.json").write_text(json.dumps([ok, bad]))
        with pytest.raises(ConfigError, match=rf"task {bad['id']} .* has 2 choices \({names}\)"):
            project.read_labelstudio(tmp_path / "ls.json")
    (tmp_path / "ls.json").write_text(json.dumps([ok]))
    assert project.read_labelstudio(tmp_path / "ls.json") == [("red/000.png", "red")]
    # Label Studio's JSON-MIN export has no tasks: say which export to use
    (tmp_path / "min.json").write_text(
        json.dumps([{"image": "/data/x.png", "choice": "red", "annotator": 1, "id": 1}])
    )
    with pytest.raises(ConfigError, match="JSON-MIN or CSV export; export the project as JSON"):
        project.read_labelstudio(tmp_path / "min.json")


def test_query_pool_is_validated(tmp_path, folder):
    for bad, msg in ((-1, "must be 0"), (2.5, "must be 0"), (True, "must be 0"), (3, "smaller")):
        with pytest.raises(ConfigError, match=msg):
            Project.init(tmp_path / "p", folder, ",".join(CLASSES), **TINY, query_pool=bad)
    assert not (tmp_path / "p").exists()  # nothing was created


def _project(tmp_path, folder, **kw):
    p = Project.init(tmp_path / "pq", folder, ",".join(CLASSES), **{**TINY, **kw})
    p.run_round(train_model=False)
    return p


def test_round_scores_a_random_subsample_and_records_it(tmp_path, folder):
    """The strategy sees `query_pool` random unseen images (the round's own draw), and the
    project's choice is fishermask.query's on that subsample (same model, seeds)."""
    import fishermask
    from fishermask.experiments.runner import generator

    p = _project(tmp_path, folder, query_pool=8)
    label_truth(p, 3)  # 9 labels; 15 images unseen
    unseen = sorted(set(p.images()[1]) - set(p.store.current()))
    row = p.run_round(train_model=True)
    assert row["metrics"]["query"]["scored"] == 8
    assert {k: row["metrics"]["query"][k] for k in ("query_pool", "unseen")} == {
        "query_pool": 8,
        "unseen": 15,
    }
    assert "from 8 images drawn at random of the 15 not yet shown" in row["mode"]
    assert p.status()["round"]["query"] == row["metrics"]["query"]
    draw = generator(0, row["id"], "candidates")
    subsample = sorted(unseen[i] for i in torch.randperm(15, generator=draw)[:8].tolist())
    queued = [q["image_id"] for q in p.store.queue()]
    assert len(queued) == 6 and set(queued) <= set(subsample)

    x, ids = p.images()
    model, aux, norm = p.load_model(row)
    lab = sorted(p.store.current_labels())
    expect = fishermask.query(
        model,
        x,
        labeled=[ids.index(i) for i in lab],
        labels=[p.store.current_labels()[i] for i in lab],
        budget=6,
        candidates=[ids.index(i) for i in subsample],
        normalizer=norm,
        seed=generator(0, row["id"], "query"),
        aux=aux,
        **p.settings["strategy_options"],
    )
    assert [ids[i] for i in expect.indices.tolist()] == queued
    p.close()

    every = _project(tmp_path / "all", folder, query_pool=0)
    label_truth(every, 3)
    row = every.run_round(train_model=True)
    assert row["metrics"]["query"] == row["metrics"]["query"] | {"scored": 15, "unseen": 15}
    assert "drawn at random" not in row["mode"]
    every.close()


def test_batch_is_committed_before_the_estimate_and_the_estimate_is_honest(project):
    """One training before the batch; the estimate's models never see their held-out labels."""
    from fishermask.label.project import fold_of

    label_truth(project, 7)  # 21 labels: 5-fold cross-validation after the batch
    fits = []
    real_fit = project._fit

    def spy(x, y, norm, round_id, purpose, on_epoch):
        r = project.store.round(round_id)
        fits.append((purpose, len(y), r["status"], r["metrics"].get("estimating")))
        return real_fit(x, y, norm, round_id, purpose, on_epoch)

    project._fit = spy
    row = project.run_round(train_model=True)
    folds = [fold_of(i) for i in sorted(project.store.current_labels())]
    assert fits[0] == (0, 21, "running", None)  # the query model: every label, batch not yet
    assert [f[0] for f in fits[1:]] == [1 + k for k in range(5) if 0 < folds.count(k) < 21]
    for purpose, n, status, estimating in fits[1:]:
        assert n == 21 - folds.count(purpose - 1)  # fold `purpose - 1` is left out
        assert status == "done" and estimating  # the batch was already committed
    assert row["status"] == "done" and "estimating" not in row["metrics"]
    assert row["metrics"]["n_eval"] == 21
    assert project.status()["estimating"] is None


def test_an_estimate_cut_short_leaves_the_batch_and_says_not_estimated(project, monkeypatch):
    label_truth(project, 7)

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(project, "estimate_accuracy", stop)
    with pytest.raises(KeyboardInterrupt):
        project.run_round(train_model=True)
    row = project.store.rounds()[-1]
    assert row["status"] == "done" and row["checkpoint"] and project.store.queue()
    assert row["metrics"]["method"].startswith("not estimated")
    assert "estimating" not in row["metrics"]
    # a worker killed while estimating (its pid gone): recover() says so
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    rid = project.store.start_round("fishermask", dead.pid)
    project.store.finish_round(
        rid, status="done", metrics={"accuracy": None, "estimating": True}, checkpoint=None
    )
    assert project.status()["estimating"] == rid
    assert project.recover() == []
    m = project.store.round(rid)["metrics"]
    assert "estimating" not in m and m["method"].startswith("not estimated: the estimate was")
    assert project.status()["estimating"] is None


def test_recover_keeps_the_checkpoint_a_live_round_is_writing(project):
    """recover() runs on every status poll; it removes leftover temporary checkpoints only
    when no round is running (a live worker may be writing one)."""
    import os

    (project.dir / "models").mkdir(exist_ok=True)
    tmp = project.dir / "models" / ".round-00009.pt.abc.tmp"
    tmp.write_bytes(b"partial")
    rid = project.store.start_round("fishermask", os.getpid())
    project.recover()
    assert tmp.exists()
    project.store.finish_round(rid, status="failed")
    project.recover()
    assert not tmp.exists()


def test_status_says_why_there_is_no_accuracy_estimate_yet(project):
    """With fewer labels than an estimate needs, the round records why; the status (and so the
    page's 'Model' panel) must say so instead of only 'no accuracy estimate yet'."""
    label_truth(project, 2)
    project.run_round(train_model=True)
    acc = project.status()["accuracy"]
    assert acc is not None and acc["accuracy"] is None
    assert acc["method"] == "not estimated: needs 20 labels in at least 2 classes (has 6 in 3)"


def test_labelstudio_tasks_of_other_folders_are_not_matched_by_their_ends(project, tmp_path):
    """A Label Studio project often serves several folders (train/, test/): a task of
    train/red/000.png must not label this project's red/000.png because the path ends alike.
    Different folders before the matched paths are refused; --prefix picks this project's."""

    def task(i, ref, label):
        res = [{"type": "choices", "value": {"choices": [label]}}]
        return {"id": i, "data": {"image": f"/data/local-files/?d={ref}"}, "annotations": [
            {"result": res}
        ]}  # fmt: skip

    tasks = [  # this project's image folder is images/
        task(1, "imgs/train/red/000.png", "green"),  # another folder's red/000.png
        task(2, "imgs/images/blue/001.png", "blue"),
        task(3, "imgs/images/red/002.png", "red"),
    ]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    with pytest.raises(
        ConfigError,
        match=r"under 2 different folders \('imgs/images/' \(2 tasks\), 'imgs/train/' \(1 task\)\)"
        r".*nothing was written.*`--prefix imgs/images/`",
    ):
        project.read_labelstudio(tmp_path / "ls.json")
    left: list[str] = []
    rows = project.read_labelstudio(tmp_path / "ls.json", prefix="/imgs/images", left_out=left)
    assert rows == [("blue/001.png", "blue"), ("red/002.png", "red")]
    assert left == ["imgs/train/red/000.png"]
    assert project.read_labelstudio(tmp_path / "ls.json", prefix="imgs/train/") == [
        ("red/000.png", "green")
    ]
    # one folder throughout (the usual case) needs no --prefix
    (tmp_path / "one.json").write_text(json.dumps(tasks[1:]))
    assert project.read_labelstudio(tmp_path / "one.json") == rows


def test_labelstudio_tasks_all_under_another_folder_are_refused_not_matched(tmp_path):
    """An export whose tasks all sit under one other folder (train/red/000.png) was matched
    to a project made from test/ by the ends of the paths: train's labels went silently onto
    test's images. A single folder not named as the image folder is refused (nothing
    written); `--prefix` accepts it; the image folder's own name, or none, is matched."""
    from tests.label.conftest import make_folder

    folder = make_folder(tmp_path / "data" / "test")
    p = Project.init(tmp_path / "proj", folder, ",".join(CLASSES), **TINY)

    def export(prefix):
        res = [{"type": "choices", "value": {"choices": ["green"]}}]
        tasks = [
            {"id": i, "data": {"image": f"/data/local-files/?d={prefix}{rel}"},
             "annotations": [{"result": res}]}
            for i, rel in enumerate(("red/000.png", "blue/001.png"), start=1)
        ]  # fmt: skip
        out = tmp_path / f"ls-{prefix.replace('/', '_')}.json"
        out.write_text(json.dumps(tasks))
        return out

    want = [("red/000.png", "green"), ("blue/001.png", "green")]
    for other in ("train/", "cifar/train/", "test/train/"):
        with pytest.raises(ConfigError) as e:
            p.read_labelstudio(export(other))
        msg = str(e.value)
        assert f"under {other!r} (2 tasks, e.g. '{other}red/000.png' taken as 'red/000.png')" in msg
        assert f"image folder is {folder.resolve()}, not 'train'" in msg
        assert "nothing was written" in msg and f"`--prefix {other}`" in msg
        assert p.read_labelstudio(export(other), prefix=other) == want
    for same in ("test/", "cifar/test/", ""):
        assert p.read_labelstudio(export(same)) == want
    assert p.store.history() == []
    p.close()


def test_every_built_in_strategy_says_its_batch_in_plain_words():
    """The page's mode line says what each built-in strategy's batch is; a strategy added to
    the registry without a phrase here would be named only."""
    from fishermask.label.project import IN_PLAIN_WORDS
    from fishermask.strategies import registry

    assert sorted(IN_PLAIN_WORDS) == sorted(registry.available())
