"""Using the model: `label predict`, the held-out figure at --min-prob, `label export --format
model` with `fishermask.label.load_model`, and GET /api/predictions."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fishermask.cli import app
from tests.label.conftest import AUTH, CLASSES, TINY, api_client, label_truth, make_folder

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, ["label", *map(str, args)])


def _odd_images(root: Path) -> list[str]:
    """Images that exercise the decoding: larger than the model input, transparent, grey,
    and a JPEG whose EXIF orientation turns it."""
    rng = np.random.default_rng(1)
    (root / "odd").mkdir()
    a = rng.integers(0, 256, size=(20, 30, 4), dtype=np.uint8)
    Image.fromarray(a).save(root / "odd" / "rgba.png")
    Image.fromarray(rng.integers(0, 256, size=(16, 16), dtype=np.uint8)).save(
        root / "odd" / "grey.png"
    )
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.fromarray(rng.integers(0, 256, size=(24, 40, 3), dtype=np.uint8)).save(
        root / "odd" / "turned.jpg", exif=exif.tobytes()
    )
    return ["odd/grey.png", "odd/rgba.png", "odd/turned.jpg"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project whose second round trained on 21 labels (5-fold CV estimate), once per module."""
    from fishermask.label.project import Project

    tmp = tmp_path_factory.mktemp("predict")
    folder = make_folder(tmp / "images")
    _odd_images(folder)
    p = Project.init(tmp / "proj", folder, ",".join(CLASSES), cache_dir=tmp / "cache", **TINY)
    p.run_round(train_model=False)
    label_truth(p, 7)
    row = p.run_round(train_model=True)
    assert row["metrics"]["method"] == "5-fold cross-validation"
    p.close()
    return tmp / "proj", folder, row


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_predict_writes_every_image_with_the_models_class_and_round(trained):
    proj, folder, row = trained
    r = _run("predict", proj, "--top", "2", "--no-progress")
    assert r.exit_code == 0, r.output
    rows = _csv(r.stdout)
    assert list(rows[0]) == ["path", "prediction", "prob", "label", "prediction_2", "prob_2"]
    assert len(rows) == 27 and [x["path"] for x in rows] == sorted(x["path"] for x in rows)
    for x in rows:
        assert x["prediction"] in CLASSES and x["prediction_2"] in CLASSES
        assert x["prediction"] != x["prediction_2"]
        assert 1 >= float(x["prob"]) >= float(x["prob_2"]) >= 0
    given = {x["path"]: x["label"] for x in rows if x["label"]}
    assert given == {f"{c}/{i:03d}.png": c for c in CLASSES for i in range(7)}
    assert f"model of round {row['id']} (trained on 21 labels" in r.stderr

    # the model that chose the current batch, with the rounds' preprocessing: its guesses
    # for the queued images (rounded to 4 decimals) are these predictions
    from fishermask.label.project import Project

    p = Project(proj)
    queue = p.batch()
    p.close()
    assert queue
    by_path = {x["path"]: x for x in rows}
    for it in queue:
        g = it["guesses"][0]
        assert by_path[it["path"]]["prediction"] == g["label"]
        assert float(by_path[it["path"]]["prob"]) == pytest.approx(g["prob"], abs=5.1e-5)

    r = _run("predict", proj, "--images", "unlabeled", "--no-progress")
    assert r.exit_code == 0, r.output
    unl = _csv(r.stdout)
    assert len(unl) == 6 and not any(x["label"] for x in unl)
    assert "6 unlabeled images" in r.stderr
    r = _run("predict", proj, "--images", "labeled", "--no-progress")
    assert len(_csv(r.stdout)) == 21


def test_min_prob_keeps_rows_at_or_above_and_says_how_accurate_held_out_ones_were(trained):
    proj, _, row = trained
    from fishermask.label.project import Project, wilson

    r = _run("predict", proj, "--no-progress")
    every = _csv(r.stdout)
    m = row["metrics"]  # without --min-prob: the round's own estimate
    assert (
        f"held-out: {100 * m['accuracy']:.1f} % [{100 * m['low']:.1f}, {100 * m['high']:.1f}] "
        f"of 21 held-out images correct (round {row['id']}, 5-fold cross-validation)" in r.stderr
    )
    probs = sorted(float(x["prob"]) for x in every)
    cut = probs[len(probs) // 2]  # about half the images reach it
    r = _run("predict", proj, "--min-prob", cut, "--no-progress")
    assert r.exit_code == 0, r.output
    kept = _csv(r.stdout)
    assert len(kept) == sum(q >= cut for q in probs) and all(float(x["prob"]) >= cut for x in kept)
    assert f"{len(kept)} with prob >= {cut:g}" in r.stderr

    p = Project(proj)
    held = p.store.held_out(row["id"])
    p.close()
    # every label was held out once (5-fold CV), with the accuracy the round reported
    assert len(held) == row["metrics"]["n_eval"] == 21
    assert sum(y == k for _, y, k, _ in held) / 21 == pytest.approx(row["metrics"]["accuracy"])
    top = sorted(q for *_, q in held)
    p_cut = round(top[len(top) // 2], 6)
    r = _run("predict", proj, "--min-prob", p_cut, "--no-progress")
    sel = [(y, k) for _, y, k, q in held if round(q, 6) >= p_cut]
    ok = sum(y == k for y, k in sel)
    lo, hi = wilson(ok, len(sel))
    line = [s for s in r.stderr.splitlines() if s.startswith("held-out:")]
    assert line == [
        f"held-out: {len(sel)} of 21 images have prob >= {p_cut:g}; {100 * ok / len(sel):.1f} % "
        f"[{100 * lo:.1f}, {100 * hi:.1f}] of them correct (round {row['id']}, 5-fold "
        "cross-validation)."
    ]
    # a threshold no held-out prediction reaches: no figure is made up
    r = _run("predict", proj, "--min-prob", "1", "--format", "json", "--no-progress")
    h = json.loads(r.stdout)["held_out"]
    assert h["n_at_or_above"] == 0 and h["accuracy"] is None and h["low"] is None
    assert "held-out: none of the 21 held-out images has prob >= 1" in r.stderr


def test_predict_json_and_out_file(trained, tmp_path):
    proj, _, row = trained
    out = tmp_path / "pred.json"
    r = _run("predict", proj, "--format", "json", "--top", "3", "--out", out, "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.stdout == "" and f"written to {out}" in r.stderr
    data = json.loads(out.read_text())
    assert data["model"]["round"] == row["id"] and data["model"]["n_labels"] == 21
    assert data["held_out"]["available"] and data["held_out"]["n_held_out"] == 21
    first = data["predictions"][0]
    assert set(first) == {"path", "prediction", "prob", "top", "label"}
    assert [t["class"] for t in first["top"]][0] == first["prediction"]
    assert sorted(t["class"] for t in first["top"]) == sorted(CLASSES)
    assert sum(t["prob"] for t in first["top"]) == pytest.approx(1, abs=1e-5)
    assert not list(tmp_path.glob(".*tmp"))  # written through a renamed temporary file


def test_predict_images_given_a_folder_points_to_folder(trained, tmp_path, monkeypatch):
    """`label init --images DIR` takes a folder, so `label predict PROJECT --images DIR` is the
    natural guess for new images; it said only "use one of all, unlabeled, labeled", not that
    a folder is --folder. It says so now, with the command's option, for a folder that is
    there and for a path; a word that is neither is refused as before."""
    proj, _, _ = trained
    new = tmp_path / "new photos"
    new.mkdir()
    monkeypatch.chdir(tmp_path)  # "new photos": the folder, relative
    for given in (str(new), "new photos", "photos/2026"):
        r = _run("predict", proj, "--images", given, "--no-progress")
        assert r.exit_code == 2, r.output
        assert r.output.strip() == (
            f"error: --images {given!r}: use one of all, unlabeled, labeled (the project's "
            f"images); to predict a folder of new images, give it as --folder {given!r}."
        ), r.output
    r = _run("predict", proj, "--images", "unlabelled", "--no-progress")
    assert r.exit_code == 2 and "--folder" not in r.output, r.output


def test_predict_refusals_are_one_line_and_write_nothing(trained, tmp_path, folder):
    proj, images, _ = trained
    out = tmp_path / "pred.csv"
    for args, says in (
        (("--images", "some"), "--images 'some': use one of all, unlabeled, labeled"),
        (("--min-prob", "1.5"), "--min-prob 1.5: a probability"),
        (("--top", "0"), "--top 0: must be an integer >= 1"),
        (("--top", "4"), "--top 4: the project has 3 classes"),
        (("--format", "xml"), "--format 'xml': use csv or json."),
        (("--format", "jsno"), "--format 'jsno': use csv or json; did you mean 'json'?"),
        (("--out", tmp_path), "is a folder; give a file name"),
    ):
        r = _run("predict", proj, *args, "--no-progress")
        assert r.exit_code == 2 and says in r.output, (args, r.output)
        assert "Traceback" not in r.output
    # an image missing since the scan: the project's one line, nothing written
    gone = images / "red" / "007.png"
    gone.rename(tmp_path / "away.png")
    try:
        r = _run("predict", proj, "--out", out, "--no-progress")
    finally:
        (tmp_path / "away.png").rename(gone)
    assert r.exit_code == 2 and "is missing" in r.output and "--forget-missing" in r.output
    assert not out.exists()
    # no model yet: which command trains one
    from fishermask.label.project import Project

    cold = Project.init(tmp_path / "cold", folder, ",".join(CLASSES), **TINY)
    cold.run_round(train_model=False)
    cold.close()
    for args in (("predict", tmp_path / "cold"), ("export", tmp_path / "cold")):
        extra = ("--format", "model", "--out", tmp_path / "m") if args[0] == "export" else ()
        r = _run(*args, *extra)
        assert r.exit_code == 2, r.output
        assert "has no trained model yet" in r.output
        assert f"fishermask label train {tmp_path / 'cold'}" in r.output
    assert not (tmp_path / "m").exists()


def test_held_out_figure_of_an_older_project_says_it_is_unavailable(trained, tmp_path):
    """A project written before held-out predictions were stored: its table is added when
    opened, and predict says the figure comes with the next `label train`."""
    import shutil

    proj, _, row = trained
    old = tmp_path / "old"
    shutil.copytree(proj, old)
    with sqlite3.connect(old / "project.sqlite") as db:
        db.execute("DROP TABLE held_out")
    r = _run("predict", old, "--min-prob", "0.5", "--no-progress")
    assert r.exit_code == 0, r.output
    assert (
        f"held-out: no figure for this model: round {row['id']} was estimated by an older "
        "fishermask, which did not store its held-out predictions; the next `fishermask label "
        f"train {old}` stores them." in r.stderr
    )
    with sqlite3.connect(old / "project.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM held_out").fetchone() == (0,)


def test_exported_model_predicts_as_label_predict(trained, tmp_path):
    proj, images, row = trained
    from fishermask.label import load_model

    out = tmp_path / "model"
    r = _run("export", proj, "--format", "model", "--out", out)
    assert r.exit_code == 0, r.output
    assert f"the model of round {row['id']} (cnn, 3 classes, 3x8x8" in r.output
    info = json.loads((out / "model.json").read_text())
    assert info["classes"] == list(CLASSES) and info["image_size"] == [8, 8]
    assert info["architecture"] == "cnn" and info["width"] == 0.25 and info["channels"] == 3
    assert info["held_out_accuracy"]["accuracy"] == pytest.approx(row["metrics"]["accuracy"])
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.pt"]

    data = json.loads(_run("predict", proj, "--format", "json", "--top", "3").stdout)
    want = {
        x["path"]: [dict((t["class"], t["prob"]) for t in x["top"])[c] for c in CLASSES]
        for x in data["predictions"]
    }
    model = load_model(out)
    assert model.classes == list(CLASSES)
    paths = sorted(want)
    probs = model.predict_proba([images / p for p in paths])  # [N, C]
    assert probs.shape == (27, 3)
    np.testing.assert_allclose(probs, np.array([want[p] for p in paths]), atol=2e-6)
    assert model.predict([str(images / p) for p in paths]) == [
        x["prediction"] for x in sorted(data["predictions"], key=lambda x: x["path"])
    ]
    # PIL images and uint8 arrays (H x W x Ch, or a batch) decode as the project does; a
    # JPEG opened by the caller is the one exception (documented): left out here
    pngs = [p for p in paths if p.endswith(".png")]
    pil = [Image.open(images / p) for p in pngs]
    np.testing.assert_allclose(
        model.predict_proba(pil), np.array([want[p] for p in pngs]), atol=2e-6
    )
    arrays = [np.asarray(Image.open(images / p)) for p in pngs]
    np.testing.assert_allclose(
        model.predict_proba(arrays), np.array([want[p] for p in pngs]), atol=2e-6
    )
    same = [p for p, a in zip(pngs, arrays, strict=True) if a.shape == (8, 8, 3)]
    batch = np.stack([np.asarray(Image.open(images / p)) for p in same])  # [N, 8, 8, 3]
    np.testing.assert_allclose(
        model.predict_proba(batch), np.array([want[p] for p in same]), atol=2e-6
    )

    # a second export to the same place replaces the first (after more labels, the usual
    # loop); a folder that holds anything besides the loader's files is refused
    r = _run("export", proj, "--format", "model", "--out", out)
    assert r.exit_code == 0, r.output
    assert sorted(f.name for f in out.iterdir()) == ["model.json", "model.pt"]
    assert [f.name for f in out.parent.iterdir() if f.name.startswith(".")] == []
    (out / "notes.txt").write_text("mine")
    r = _run("export", proj, "--format", "model", "--out", out)
    assert r.exit_code == 2 and "neither empty nor an earlier `label export" in r.output
    assert (out / "notes.txt").read_text() == "mine"


def test_loader_refusals_are_one_line(tmp_path):
    from fishermask.errors import FishermaskError
    from fishermask.label import load_model

    with pytest.raises(FishermaskError, match="is not an exported model"):
        load_model(tmp_path)


def test_api_predictions(trained):
    proj, _, row = trained
    with api_client(proj) as c:
        assert c.get("/api/predictions").status_code == 401
        r = c.get("/api/predictions", headers=AUTH, params={"images": "unlabeled"})
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["model"]["round"] == row["id"] and len(data["predictions"]) == 6
        cli = json.loads(_run("predict", proj, "--images", "unlabeled", "--format", "json").stdout)
        assert data["predictions"] == cli["predictions"]
        assert data["held_out"] == cli["held_out"]
        r = c.get("/api/predictions", headers=AUTH, params={"min_prob": 1.0})
        assert r.status_code == 200 and all(x["prob"] >= 1 for x in r.json()["predictions"])
        r = c.get("/api/predictions", headers=AUTH, params={"min_prob": 2})
        assert r.status_code == 400 and r.json()["error"].startswith("min_prob=2: ")
        r = c.get("/api/predictions", headers=AUTH, params={"images": "x"})
        assert r.status_code == 400


def test_api_predictions_without_a_model_is_409(client):
    r = client.get("/api/predictions", headers=AUTH)
    assert r.status_code == 409 and "no trained model yet" in r.json()["error"]


def test_api_predictions_follow_images_scanned_by_another_process(project):
    """The server's Project keeps the decoded images in memory: a `label scan` in another
    process (a new image, a changed image's content accepted) must reach its predictions, not
    leave them on the old pixels or without the new image while the CLI gives the new ones."""
    from fishermask.label.predict import predict_project
    from fishermask.label.project import Project

    label_truth(project, 4)
    project.run_round(train_model=True)
    root = project.root
    with api_client(project.dir) as c:
        before = c.get("/api/predictions", headers=AUTH).json()["predictions"]
        assert len(before) == 24
        # another process: red/007.png (unlabeled) now holds a blue image, taken by the scan;
        # a new image appears
        Image.open(root / "blue" / "007.png").save(root / "red" / "007.png")
        Image.open(root / "green" / "007.png").save(root / "green" / "new.png")
        other = Project(project.dir)
        check = other.check_files()
        assert [r.path for r in check.changed] == ["red/007.png"]
        other.accept_changed(check.changed)
        other.scan()
        want = predict_project(other).rows
        other.close()
        got = c.get("/api/predictions", headers=AUTH).json()["predictions"]
    assert [r["path"] for r in got] == [r["path"] for r in want]
    assert "green/new.png" in [r["path"] for r in got]
    assert got == want
    blue = {r["path"]: r for r in want}
    assert {r["path"]: r for r in before}["red/007.png"] != blue["red/007.png"]


def test_out_onto_the_projects_own_files_or_into_its_image_folder_is_refused(project, tmp_path):
    """`label predict --out PROJECT/project.sqlite` renamed the predictions over the project's
    database (every later command: 'database disk image is malformed'); `--out` naming an
    image replaced the image; an imagefolder export into the image folder made copies that
    the next `label scan` added as new images (duplicates of labeled ones)."""
    import hashlib

    label_truth(project, 4)
    project.run_round(train_model=True)
    proj, images = project.dir, project.root
    project.close()
    own = [
        proj / "project.sqlite",
        proj / "project.sqlite-wal",
        proj / "serve.lock",  # a new one would let a second `label serve` start
        next((proj / "models").glob("*.pt")),
        proj / "models" / "new.csv",
    ]

    def digest() -> dict[str, str]:
        return {
            str(f): hashlib.sha256(f.read_bytes()).hexdigest()
            for d in (proj, images)
            for f in sorted(d.rglob("*"))
            if f.is_file() and not f.name.startswith("project.sqlite")
        }

    before, rounds = digest(), json.loads(_run("status", proj).stdout)["round"]["id"]
    for out in own:
        for args in (
            ("predict", proj, "--no-progress"),
            ("next", proj),
            ("export", proj, "--format", "csv"),
            ("export", proj, "--format", "npz"),
            ("export", proj, "--format", "model"),
        ):
            r = _run(*args, "--out", out)
            assert r.exit_code == 2, (args, out, r.output)
            assert "is a file of the project" in r.output, (args, out, r.output)
    for args, out in (
        (("predict", proj, "--no-progress"), images / "red" / "000.png"),
        (("predict", proj, "--no-progress"), images / "red" / "new.jpg"),
        (("export", proj, "--format", "imagefolder"), images / "by-class"),
        (("export", proj, "--format", "labelstudio"), images / "tasks.png"),
    ):
        r = _run(*args, "--out", out)
        assert r.exit_code == 2, (args, out, r.output)
        assert "inside the image folder" in r.output and "label scan" in r.output, r.output
    assert digest() == before
    status = json.loads(_run("status", proj).stdout)
    assert status["round"]["id"] == rounds and status["images"] == 24
    # a file that is not an image, in the image folder, is fine (scans ignore it)
    r = _run("predict", proj, "--no-progress", "--out", images / "predictions.csv")
    assert r.exit_code == 0, r.output


def test_loader_refuses_a_model_pt_of_another_export(trained, tmp_path):
    """A folder whose model.pt is not the one its model.json was written with (copied from
    another export, or replaced by a project checkpoint) loaded silently when the shapes
    matched, predicting with other weights under this model.json's classes and normaliser;
    and a model.json edited or damaged into another architecture gave a torch traceback."""
    import shutil

    from fishermask.errors import FishermaskError
    from fishermask.label import load_model

    proj, images, _ = trained
    a = tmp_path / "a"
    assert _run("export", proj, "--format", "model", "--out", a).exit_code == 0
    info = json.loads((a / "model.json").read_text())
    assert len(info["weights_sha256"]) == 64
    load_model(a)
    mixed = tmp_path / "mixed"
    shutil.copytree(a, mixed)
    ckpt = next((proj / "models").glob("*.pt"))
    shutil.copy(ckpt, mixed / "model.pt")  # same weights' shapes, another file
    with pytest.raises(FishermaskError, match="model.pt is not the file this model.json"):
        load_model(mixed)
    wide = tmp_path / "wide"
    shutil.copytree(a, wide)
    del info["weights_sha256"]  # an export of an older fishermask: no hash to check
    del info["description_sha256"]
    info["width"] = 0.5
    (wide / "model.json").write_text(json.dumps(info))
    with pytest.raises(FishermaskError) as exc:
        load_model(wide)
    assert "do not fit the architecture" in str(exc.value) and "\n" not in str(exc.value)


def test_loader_refuses_an_edited_model_json(trained, tmp_path):
    """model.json was covered by no hash: classes reordered in it loaded silently and named
    every prediction wrongly."""
    import shutil

    from fishermask.errors import FishermaskError
    from fishermask.label import load_model

    proj, images, _ = trained
    a = tmp_path / "a"
    assert _run("export", proj, "--format", "model", "--out", a).exit_code == 0
    info = json.loads((a / "model.json").read_text())
    for key, value in (
        ("classes", info["classes"][::-1]),
        ("normalizer", {**info["normalizer"], "mean": [0.5] * len(info["normalizer"]["mean"])}),
        ("weights_sha256", "0" * 64),
    ):
        edited = tmp_path / key
        shutil.copytree(a, edited)
        (edited / "model.json").write_text(json.dumps({**info, key: value}, indent=1))
        with pytest.raises(FishermaskError) as exc:
            load_model(edited)
        msg = str(exc.value)
        assert "model.json was changed after the export" in msg and "\n" not in msg, msg
    # the layout of the file is not its content: reformatted, it loads
    compact = tmp_path / "compact"
    shutil.copytree(a, compact)
    (compact / "model.json").write_text(json.dumps(info, sort_keys=True))
    assert load_model(compact).classes == info["classes"]
    from fishermask.label.predict import description_sha256

    assert info["description_sha256"] == description_sha256(info)


def test_predict_after_a_revisit_says_the_batch_was_not_chosen_with_the_model(project):
    """After `label revisit`, predict said the model's round had chosen "the current batch"
    (a revisit batch, chosen by no model) and its JSON's queue_round was the model's round,
    not the batch's round that GET /api/status gives."""
    label_truth(project, 4)
    trained = project.run_round(train_model=True)
    ids = project.store.image_ids_by_path()
    project.store.add_label(ids["red/007.png"], "skip")
    revisit_round, _ = project.revisit()
    project.close()
    r = _run("predict", project.dir, "--format", "json", "--no-progress")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    status = json.loads(_run("status", project.dir).stdout)
    assert data["model"]["round"] == trained["id"]
    assert data["model"]["queue_round"] == revisit_round == status["queue_round"]
    assert (
        f"model of round {trained['id']} (trained on 12 labels; the current batch (round "
        f"{revisit_round}) is a revisit, not chosen with it)" in r.stderr
    )


def test_loader_takes_the_bytes_of_an_image_file(trained, tmp_path):
    """Bytes (an upload, a blob) were iterated as a sequence of ints: 'cannot predict on a
    int'. They are one encoded image file, decoded exactly as the file would be."""
    proj, images, _ = trained
    from fishermask.label import load_model

    out = tmp_path / "model"
    assert _run("export", proj, "--format", "model", "--out", out).exit_code == 0
    model = load_model(out)
    files = [images / "odd" / "turned.jpg", images / "odd" / "rgba.png"]
    blobs = [f.read_bytes() for f in files]
    np.testing.assert_array_equal(model.predict_proba(blobs), model.predict_proba(files))
    np.testing.assert_array_equal(model.predict_proba(blobs[0]), model.predict_proba(files[0]))
    from fishermask.errors import DataError

    with pytest.raises(DataError, match="not a readable image"):
        model.predict_proba(b"not an image")


def test_model_exported_while_its_accuracy_is_being_estimated_says_so(trained, tmp_path):
    """model.json's held_out_accuracy was a bare null whether the estimate was still running
    (export again later to get it) or never made; the export said nothing either way."""
    import shutil

    from fishermask.label.project import Project

    proj, _, row = trained
    copy = tmp_path / "proj"
    shutil.copytree(proj, copy)
    p = Project(copy)
    running = {"estimating": True, "accuracy": None, "method": "being estimated"}  # as run_round
    p.store.set_metrics(row["id"], row["metrics"] | running, phase="done")
    p.close()
    r = _run("export", copy, "--format", "model", "--out", tmp_path / "m")
    assert r.exit_code == 0, r.output
    assert "still being estimated" in r.output and "export again" in r.output, r.output
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert info["held_out_accuracy"] is None
    assert "still being estimated" in info["held_out_why"]
    # estimated: no reason given
    r = _run("export", proj, "--format", "model", "--out", tmp_path / "m2")
    info = json.loads((tmp_path / "m2" / "model.json").read_text())
    assert info["held_out_accuracy"]["accuracy"] is not None and info["held_out_why"] is None
    assert "being estimated" not in r.output


def test_exported_model_files_are_on_disk_before_the_folder_is_renamed(trained, tmp_path):
    """`label export --format model` renames a finished folder into place; its files must be
    flushed to disk first, or a crash just after leaves the folder with an empty model.pt."""
    import os

    from fishermask.label.predict import export_model
    from fishermask.label.project import Project

    proj, _, _ = trained
    synced: list[str] = []
    renamed: list[tuple[list[str], str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        renamed.append((list(synced), os.path.basename(dst)))
        return real_replace(src, dst)

    p = Project(proj)
    try:
        os.fsync, os.replace = fsync, replace
        export_model(p, tmp_path / "model")
    finally:
        os.fsync, os.replace = real_fsync, real_replace
        p.close()
    (before, name), *_ = [r for r in renamed if r[1] == "model"]
    assert {"model.pt", "model.json"} <= set(before)
    assert synced[-1] == tmp_path.name  # the folder holding the new name


@pytest.mark.parametrize("content", [b"cut short", b"PK\x03\x04 a zip cut short"])
def test_a_checkpoint_damaged_on_disk_is_one_line(trained, tmp_path, content):
    """A checkpoint overwritten with other bytes made torch's weights-only loader raise an
    UnpicklingError, which escaped as a traceback (a truncated zip gave the one line)."""
    import shutil

    proj, _, row = trained
    shutil.copytree(proj, tmp_path / "proj")
    (tmp_path / "proj" / row["checkpoint"]).write_bytes(content)
    r = _run("predict", tmp_path / "proj", "--no-progress")
    assert r.exit_code == 2 and "cannot read the latest model" in r.output, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_predict_folder_applies_the_model_to_a_new_folder_as_to_the_projects(trained, tmp_path):
    """'Using the model' on a folder of new images needed Python (load_model and a glob of
    your own). `label predict PROJECT --folder DIR` reads DIR as `label scan` reads the image
    folder (recursively, the same formats, EXIF turned, decoded alike) and gives each file the
    probabilities `label predict` gives the same file in the project; a file it cannot read is
    listed, the others predicted."""
    import shutil

    proj, folder, _ = trained
    new = tmp_path / "new photos"
    (new / "sub").mkdir(parents=True)
    shutil.copy(folder / "red" / "000.png", new / "a.png")
    shutil.copy(folder / "odd" / "turned.jpg", new / "sub" / "turned.jpg")
    (new / "broken.jpg").write_bytes(b"not a jpeg")
    (new / "notes.txt").write_text("ignored")
    (new / "link.png").symlink_to(new / "a.png")
    r = _run("predict", proj, "--folder", new, "--top", "2", "--no-progress")
    assert r.exit_code == 0, r.output
    rows = {x["path"]: x for x in _csv(r.stdout)}
    assert sorted(rows) == ["a.png", "sub/turned.jpg"]
    assert all(x["label"] == "" for x in rows.values())
    known = {
        x["path"]: x for x in _csv(_run("predict", proj, "--top", "2", "--no-progress").stdout)
    }
    for path, same in (("a.png", "red/000.png"), ("sub/turned.jpg", "odd/turned.jpg")):
        for k in ("prediction", "prob", "prediction_2", "prob_2"):
            assert rows[path][k] == known[same][k], (path, k)
    err = " ".join(r.stderr.split())
    assert "not read broken.jpg: not a readable image (unknown or broken format)" in err
    assert "not read link.png: the same file as a.png (a symbolic or hard link to it): " in err
    assert "predicted once, as a.png" in err and "of the project" not in err
    assert f"2 images of {new} (2 not read)" in err and "held-out" in err
    r = _run("predict", proj, "--folder", new, "--images", "unlabeled")
    assert r.exit_code == 2 and "--images" in r.stderr and "--folder" in r.stderr
    r = _run("predict", proj, "--folder", tmp_path / "nothere")
    assert r.exit_code == 2 and "nothere" in r.stderr and "not a folder" in r.stderr


def test_predict_folder_says_to_convert_a_heic_to_predict_it(trained, tmp_path):
    """`label predict --folder` listed a phone's .HEIC as `label scan` does, ending 'convert
    it ... to label it': these images are for predictions, not labels."""
    proj, _, _ = trained
    new = tmp_path / "new"
    new.mkdir()
    (new / "IMG_1.HEIC").write_bytes(b"not read")
    r = _run("predict", proj, "--folder", new, "--no-progress")
    err = " ".join(r.stderr.split())
    assert "not read IMG_1.HEIC: a .heic file, which fishermask label does not read" in err, err
    assert err.count("convert it (e.g. to JPEG or PNG) to predict it") == 1, err
    assert "to label it" not in err
