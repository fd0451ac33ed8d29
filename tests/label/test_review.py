"""Reviewing the labels given (GET /api/labeled, the page's "Labeled" view): paging, filters,
likely mistakes first by a real trained model, and a fix through POST /api/labels that the
history, undo and the export follow, under the team's rules."""

from __future__ import annotations

import shutil

import pytest

from tests.label.conftest import AUTH, CLASSES, TINY, TOKEN, api_client, label_truth, make_folder

#: Labels that contradict the images' folders (the classes of make_folder are their colours).
WRONG = {"red/000.png": "blue", "green/001.png": "red"}


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    """A project whose model (trained long enough to learn the colours) saw 18 labels, two of
    them wrong (:data:`WRONG`); once per module, read only (copy it to change it)."""
    from fishermask.label.project import Project

    tmp = tmp_path_factory.mktemp("review")
    folder = make_folder(tmp / "images")
    p = Project.init(
        tmp / "proj",
        folder,
        ",".join(CLASSES),
        cache_dir=tmp / "cache",
        **(TINY | {"max_epochs": 100, "max_steps": 60}),
    )
    p.run_round(train_model=False)
    label_truth(p, 6)
    p.add_label_rows(list(WRONG.items()), source="import", what="test")
    row = p.run_round(train_model=True)
    p.close()
    return tmp / "proj", row


def _all(client, **params) -> list[dict]:
    """Every item of GET /api/labeled with ``params``, page after page."""
    out, page = [], 1
    while True:
        r = client.get("/api/labeled", headers=AUTH, params=params | {"page": page})
        assert r.status_code == 200, r.text
        out += r.json()["items"]
        if page >= r.json()["pages"]:
            return out
        page += 1


def test_likely_mistakes_first_by_the_models_probability_of_the_label(ranked):
    proj, row = ranked
    with api_client(proj) as c:
        r = c.get("/api/labeled", headers=AUTH).json()
        assert r["sort"] == "mistakes" and r["total"] == 18
        assert r["model"] == {"round": row["id"], "n_labels": 18}
        assert r["note"].startswith(f"likely mistakes first: the model of round {row['id']}")
        items = r["items"]
        # the two wrong labels are the ones the model finds least probable
        assert {it["path"]: it["label"] for it in items[:2]} == WRONG
        probs = [it["label_prob"] for it in items]
        assert probs == sorted(probs)
        assert [it["guess"]["label"] for it in items[:2]] == [p.split("/")[0] for p in WRONG]
        assert not any(it["newer_than_model"] for it in items)
        # the same model and probabilities as GET /api/predictions (label predict)
        pred = c.get(
            "/api/predictions", headers=AUTH, params={"images": "labeled", "top": 3}
        ).json()
        assert pred["model"]["round"] == r["model"]["round"]
        given = {
            p["path"]: next(t["prob"] for t in p["top"] if t["class"] == p["label"])
            for p in pred["predictions"]
        }
        for it in items:
            assert it["label_prob"] == pytest.approx(given[it["path"]], abs=1e-4)


def test_pages_and_filters(ranked):
    proj, _ = ranked
    with api_client(proj) as c:
        whole = c.get("/api/labeled", headers=AUTH, params={"per_page": 200}).json()["items"]
        r = c.get("/api/labeled", headers=AUTH, params={"per_page": 5, "page": 4}).json()
        assert (r["total"], r["pages"], r["page"], len(r["items"])) == (18, 4, 4, 3)
        paged = _all(c, per_page=5)
        assert [it["image_id"] for it in paged] == [it["image_id"] for it in whole]
        past = c.get("/api/labeled", headers=AUTH, params={"per_page": 5, "page": 9}).json()
        assert past["items"] == [] and past["total"] == 18
        blue = _all(c, label="blue", per_page=4)
        assert len(blue) == 7 and {it["label"] for it in blue} == {"blue"}
        assert blue[0]["path"] == "red/000.png"  # the wrong one first within its class too
        newest = _all(c, sort="newest")
        assert newest[0]["path"] == "green/001.png"  # the last label given
        assert [it["label_id"] for it in newest] == sorted(
            (it["label_id"] for it in newest), reverse=True
        )
        assert _all(c, by="owner") == whole and _all(c, by="owner", label="red") == [
            it for it in whole if it["label"] == "red"
        ]


def test_without_a_model_it_says_so_and_shows_the_newest_first(client, project):
    label_truth(project, 2)
    r = client.get("/api/labeled", headers=AUTH).json()
    assert r["sort"] == "newest" and r["model"] is None and r["total"] == 6
    assert r["note"].startswith("no trained model yet, so newest first")
    assert "\n" not in r["note"]
    assert [it["path"] for it in r["items"]][:2] == ["blue/001.png", "blue/000.png"]
    assert r["items"][0]["label_prob"] is None and r["items"][0]["guess"] is None
    iid = r["items"][0]["image_id"]
    assert r["items"][0]["url"] == f"/api/images/{iid}"  # no token in a URL
    assert r["items"][0]["thumb"] == f"/api/images/{iid}?size=thumb"
    assert client.get("/api/labeled").status_code == 401


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"label": "purple"}, "label='purple' is not one of the project's classes: red, green"),
        ({"sort": "oldest"}, "sort='oldest': use one of mistakes, newest."),
        ({"page": "0"}, "page='0': must be a whole number, 1 or more."),
        ({"page": "two"}, "page='two': must be a whole number, 1 or more."),
        ({"per_page": "500"}, "per_page='500': must be a whole number, 1 to 200."),
        ({"by": "carol"}, "by='carol' names no annotator; use one of owner."),
    ],
)
def test_bad_parameters_are_one_line_400(client, params, says):
    r = client.get("/api/labeled", headers=AUTH, params=params)
    assert r.status_code == 400 and r.json()["error"].startswith(says)
    assert "\n" not in r.json()["error"]


def test_a_fix_is_a_label_in_the_history_undo_and_export(client, project):
    """A labeled image outside the batch is fixed through POST /api/labels: a new row of the
    history (the first kept), shown by the view and the export; undo restores the first."""
    label_truth(project, 2)
    batch = {it["image_id"] for it in client.get("/api/batch", headers=AUTH).json()["items"]}
    item = next(
        it
        for it in client.get("/api/labeled", headers=AUTH).json()["items"]
        if it["image_id"] not in batch
    )
    wrong = next(c for c in CLASSES if c != item["label"])
    r = client.post(
        "/api/labels", headers=AUTH, json={"image_id": item["image_id"], "label": wrong}
    )
    assert r.status_code == 200 and r.json()["by"] == "owner"
    fixed = r.json()["label_id"]
    hist = project.store.history(item["image_id"])
    assert [(h.kind, CLASSES[h.class_id]) for h in hist] == [
        ("label", item["label"]),
        ("label", wrong),
    ]
    now = client.get("/api/labeled", headers=AUTH, params={"sort": "newest"}).json()["items"][0]
    assert (now["image_id"], now["label"], now["label_id"]) == (item["image_id"], wrong, fixed)
    export = client.get("/api/export.csv", headers=AUTH).text.splitlines()
    assert f"{item['path']},{wrong}" in export and f"{item['path']},{item['label']}" not in export
    assert client.post("/api/undo", headers=AUTH, json={"label_id": fixed}).status_code == 200
    export = client.get("/api/export.csv", headers=AUTH).text.splitlines()
    assert f"{item['path']},{item['label']}" in export
    assert len(project.store.history(item["image_id"])) == 3  # label, fix, undo: all kept
    # an unknown image or class writes nothing, with one line
    r = client.post("/api/labels", headers=AUTH, json={"image_id": 9999, "label": "red"})
    assert r.status_code == 404 and r.json()["error"] == "no image with id 9999"
    r = client.post(
        "/api/labels", headers=AUTH, json={"image_id": item["image_id"], "label": "purple"}
    )
    assert r.status_code == 400 and "not one of the project's classes" in r.json()["error"]
    assert len(project.store.history(item["image_id"])) == 3


def test_a_fix_moves_down_the_ranking_without_a_new_model(ranked, tmp_path):
    proj, _ = ranked
    shutil.copytree(proj, tmp_path / "proj")
    with api_client(tmp_path / "proj") as c:
        first = c.get("/api/labeled", headers=AUTH).json()["items"][0]
        fix = first["guess"]["label"]
        c.post("/api/labels", headers=AUTH, json={"image_id": first["image_id"], "label": fix})
        items = c.get("/api/labeled", headers=AUTH, params={"per_page": 200}).json()["items"]
        again = next(it for it in items if it["image_id"] == first["image_id"])
        assert again["label"] == fix and again["label_prob"] == first["guess"]["prob"]
        assert again["newer_than_model"] is True and items[0]["image_id"] != first["image_id"]


def test_annotators_fix_as_themselves_and_undo_only_their_own(project):
    from fishermask.label.team import annotator_token

    label_truth(project, 2)
    as_ = {"owner": AUTH} | {
        a: {"Authorization": f"Bearer {annotator_token(TOKEN, a)}"} for a in ("alice", "bob")
    }
    with api_client(project.dir, ("alice", "bob")) as c:
        r = c.get("/api/labeled", headers=as_["alice"]).json()
        assert r["annotators"] == ["alice", "bob", "owner"]  # the choices of the page's filter
        item = r["items"][0]
        assert "token" not in item["url"] and "token" not in item["thumb"]
        wrong = next(c for c in CLASSES if c != item["label"])
        fix = c.post(
            "/api/labels", headers=as_["alice"], json={"image_id": item["image_id"], "label": wrong}
        ).json()
        assert fix["by"] == "alice"
        mine = c.get("/api/labeled", headers=as_["bob"], params={"by": "alice"}).json()
        assert [(it["image_id"], it["label"], it["by"]) for it in mine["items"]] == [
            (item["image_id"], wrong, "alice")
        ]
        owners = c.get("/api/labeled", headers=AUTH, params={"by": "owner"}).json()
        assert owners["total"] == 5
        # the owner's label and alice's fix differ: a disagreement until they agree
        assert c.get("/api/status", headers=AUTH).json()["disagreements"] == 1
        r = c.post("/api/undo", headers=as_["bob"], json={"label_id": fix["label_id"]})
        assert r.status_code == 403 and "can undo only their own" in r.json()["error"]
        r = c.post("/api/undo", headers=as_["alice"], json={"label_id": item["label_id"]})
        assert r.status_code == 403  # the owner's label is not alice's to undo
        r = c.post("/api/undo", headers=as_["alice"], json={"label_id": fix["label_id"]})
        assert r.status_code == 200
        back = c.get("/api/labeled", headers=AUTH, params={"sort": "newest"}).json()["items"]
        assert {it["image_id"]: it["label"] for it in back}[item["image_id"]] == item["label"]


def _run(*args):
    from typer.testing import CliRunner

    from fishermask.cli import app

    return CliRunner().invoke(app, ["label", *map(str, args)])


def test_status_list_labeled_then_label_add_fixes_from_the_same_file(ranked, tmp_path):
    """`label status --list labeled`: the page's list, likely mistakes first, as csv whose
    first columns `label add` reads back: an edited label is a fix, the rest "already so"."""
    proj, row = ranked
    shutil.copytree(proj, tmp_path / "proj")
    r = _run("status", tmp_path / "proj", "--list", "labeled")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    # prob_from, flagged, suggested: from a `label check` (empty without one)
    assert lines[0] == "path,label,by,when,label_prob,guess,guess_prob,prob_from,flagged,suggested"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 18 and {x[0]: x[1] for x in rows[:2]} == WRONG
    assert [float(x[4]) for x in rows] == sorted(float(x[4]) for x in rows)
    assert rows[0][2] == "owner" and rows[0][3].endswith("Z")
    assert f"likely mistakes first: the model of round {row['id']}" in r.stderr
    assert "fishermask label add" in r.stderr
    edited = tmp_path / "fixes.csv"
    rows[0][1] = rows[0][5]  # the model's guess
    edited.write_text("\n".join([lines[0], *(",".join(x) for x in rows)]) + "\n")
    r = _run("add", tmp_path / "proj", edited)
    assert r.exit_code == 0 and "added 1 label (17 images already had that label)" in r.stdout
    r = _run("export", tmp_path / "proj", "--format", "csv", "--out", tmp_path / "out.csv")
    assert r.exit_code == 0, r.output
    assert f"{rows[0][0]},{rows[0][5]}" in (tmp_path / "out.csv").read_text().splitlines()


def test_status_list_labeled_without_labels_and_bad_input(project):
    project.close()
    r = _run("status", project.dir, "--list", "labeled", "--format", "json")
    assert r.exit_code == 0 and r.stdout == "[]\n" and "no image is labeled yet" in r.stderr
    r = _run("status", project.dir, "--list", "labeled,unsure")
    assert r.exit_code == 2 and "list labeled on their own (--list labeled)" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_a_model_that_cannot_be_read_falls_back_to_newest_first_saying_why(ranked, tmp_path):
    proj, row = ranked
    shutil.copytree(proj, tmp_path / "proj")
    (tmp_path / "proj" / row["checkpoint"]).write_bytes(b"cut short")
    with api_client(tmp_path / "proj") as c:
        r = c.get("/api/labeled", headers=AUTH).json()
        assert r["sort"] == "newest" and r["model"] is None
        assert r["note"].startswith("newest first: the model cannot rank the labels now: ")
        assert "cannot read the latest model" in r["note"] and "\n" not in r["note"]
        assert r["items"][0]["path"] == "green/001.png"
