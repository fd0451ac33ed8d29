"""How a team resolves a disagreement: the owner's deciding label (``label decide``, ``label add
--decide``, ``POST /api/labels`` with ``"decide": true``), listed and exported as decided; and a
skip or unsure never replaces another annotator's label (409 through the API)."""

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


def _disagree(project) -> int:
    """alice labels red/000.png red, bob blue: one open disagreement; its image id."""
    s = project.store
    image_id = s.image_ids_by_path()["red/000.png"]
    s.add_label(image_id, "label", 0, annotator="alice")
    s.add_label(image_id, "label", 2, annotator="bob")
    return image_id


def _status(project_dir):
    r = _run("status", project_dir)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_the_owner_decides_a_disagreement_with_the_class_it_has(project, tmp_path):
    """bob's blue is the image's label (latest wins); the owner agreeing with it had no way to
    say so: `label add` with the current class said 'already so' and the disagreement stayed
    open for ever. `label decide` records the owner's deciding label, the image agrees, and
    the listing and the export say decided; a later label of an annotator opens it again."""
    image_id = _disagree(project)
    project.close()
    plain = tmp_path / "plain.csv"
    plain.write_text("path,label\nred/000.png,blue\n")
    r = _run("add", project.dir, plain)
    assert (
        r.exit_code == 0 and "added 0 labels (1 image already had that label)" in r.output
    )  # as before
    assert _status(project.dir)["disagreements"] == 1

    r = _run("decide", project.dir, "red/000.png", "blue")
    assert r.exit_code == 0, r.output
    assert " ".join(r.output.split()) == (
        f"decided 1 image: the owner's label, shown as decided in `fishermask "
        f"label status {project.dir} --list disagreements`; 0 disagreements still open."
    )
    st = _status(project.dir)
    assert (st["disagreements"], st["decided"], st["labeled"]) == (0, 1, 1)
    r = _run("decide", project.dir, "red/000.png", "blue")  # once is enough
    assert (
        r.exit_code == 0 and "decided 0 images: 1 was the owner's decision already" in r.output
    ), r.output
    r = _run("status", project.dir, "--list", "disagreements")
    assert r.stdout.splitlines() == [  # the sides; the decision is the current label
        "path,current,status,alice,bob",
        "red/000.png,blue,decided,red,blue",
    ]
    out = tmp_path / "labels.csv"
    r = _run("export", project.dir, "--format", "csv", "--out", out, "--annotators")
    assert r.exit_code == 0, r.output
    assert list(csv.reader(io.StringIO(out.read_text()))) == [
        ["path", "label", "annotator", "decided"],
        ["red/000.png", "blue", "owner", "decided"],
    ]

    from fishermask.label.project import Project

    p = Project(project.dir)
    try:
        (decision,) = [r for r in p.store.history(image_id) if r.source == "decision"]
        assert decision.annotator is None and decision.class_id == 2  # the owner's, blue
        p.store.add_label(image_id, "label", 0, annotator="bob")  # bob changes his mind: red
        assert p.store.label_counts()["disagreements"] == 1  # owner blue, alice and bob red
        assert p.disagreements()[0]["status"] == "open"
    finally:
        p.close()


def test_label_add_decide_decides_many_and_refuses_bad_rows(project, tmp_path):
    _disagree(project)
    s = project.store
    other = s.image_ids_by_path()["green/000.png"]
    s.add_label(other, "label", 1, annotator="alice")
    s.add_label(other, "label", 0, annotator="bob")
    project.close()
    rows = tmp_path / "decisions.csv"
    rows.write_text("path,label\nred/000.png,red\ngreen/000.png,purple\n")
    r = _run("add", project.dir, rows, "--decide")
    assert r.exit_code == 2 and "label 'purple' is not one of" in r.output
    assert "nothing was written" in r.output
    assert _status(project.dir)["disagreements"] == 2
    rows.write_text("path,label\nred/000.png,red\n")
    r = _run("add", project.dir, rows, "--decide")
    assert r.exit_code == 0 and "decided 1 image: the owner's label" in r.output, r.output
    assert "1 disagreement still open" in r.output
    st = _status(project.dir)
    assert (st["disagreements"], st["decided"]) == (1, 1)
    r = _run("add", project.dir, "--from-folders", "--decide")
    assert r.exit_code == 2 and "--decide applies to a CSV of decisions" in r.output
    r = _run("status", project.dir, "--list", "disagreements", "--format", "json")
    assert [(d["path"], d["current"], d["status"]) for d in json.loads(r.stdout)] == [
        ("green/000.png", "red", "open"),
        ("red/000.png", "red", "decided"),
    ]


# -- the API -----------------------------------------------------------------------------------
@pytest.fixture
def client(project):
    """A server with annotators alice and bob: ``client.as_[name]`` the headers of each
    one's token (``owner`` too)."""
    from fishermask.label.team import annotator_token

    with api_client(project.dir, ("alice", "bob")) as c:
        token = {"owner": TOKEN} | {a: annotator_token(TOKEN, a) for a in ("alice", "bob")}
        c.as_ = {n: {"Authorization": f"Bearer {t}"} for n, t in token.items()}
        yield c


def _post(client, who, **body):
    return client.post("/api/labels", headers=client.as_[who], json=body)


def test_the_owners_page_may_decide_and_an_annotators_may_not(client):
    item = client.get("/api/batch", headers=client.as_["alice"]).json()["items"][0]
    iid = item["image_id"]
    assert _post(client, "alice", image_id=iid, label="red").status_code == 200
    assert _post(client, "bob", image_id=iid, label="blue").status_code == 200
    r = _post(client, "bob", image_id=iid, label="blue", decide=True)
    assert r.status_code == 403 and r.json()["error"].startswith("only the owner decides")
    r = _post(client, "owner", image_id=iid, kind="skip", decide=True)
    assert r.status_code == 400 and "a skip decides nothing" in r.json()["error"]
    r = _post(client, "owner", image_id=iid, label="red", decide="yes")
    assert r.status_code == 400 and "`decide` must be true or false" in r.json()["error"]
    r = _post(client, "owner", image_id=iid, label="red", decide=True)
    assert r.status_code == 200 and r.json()["decided"] is True and r.json()["by"] == "owner"
    st = client.get("/api/status", headers=client.as_["bob"]).json()
    assert (st["disagreements"], st["decided"]) == (0, 1)
    labeled = client.get("/api/labeled", headers=client.as_["alice"]).json()["items"]
    assert [(it["label"], it["by"], it["source"]) for it in labeled] == [
        ("red", "owner", "decision")
    ]


def test_a_skip_or_unsure_never_replaces_another_annotators_label(client):
    """alice labels an image red; bob's skip or unsure through the API replaced her label (latest
    wins): the image counted as skipped, her red left the counts, the rounds and the exports
    (the page moves on from an image someone did, the API did not). Refused now (409, one line
    with what to do); her label stays. One's own label may still be set aside, and the
    owner's skip is refused too, with the undo that removes the label."""
    items = client.get("/api/batch", headers=client.as_["alice"]).json()["items"]
    iid, other = items[0]["image_id"], items[1]["image_id"]
    path = items[0]["path"]
    label_id = _post(client, "alice", image_id=iid, label="red").json()["label_id"]
    for kind in ("skip", "unsure"):
        r = _post(client, "bob", image_id=iid, kind=kind)
        assert r.status_code == 409, r.text
        word = "a skip" if kind == "skip" else "an unsure"
        assert r.json()["error"] == (
            f"{path} is labeled red by alice: {word} would replace that label, so nothing was "
            "saved; if you see another class, label it so (a disagreement, which the owner "
            "decides), or leave it as it is."
        )
    r = _post(client, "owner", image_id=iid, kind="skip")
    assert r.status_code == 409 and "is labeled red by alice" in r.json()["error"]
    # the owner's page cannot send POST /api/undo: the command comes first (and the API's)
    project_dir = client.project.dir
    assert (
        f"to set it aside anyway, undo that label first: `fishermask label undo {project_dir} "
        f"{label_id}` (or POST /api/undo with its label_id {label_id}), then set it aside, or "
        "leave it as it is." in r.json()["error"]
    ), r.json()["error"]
    st = client.get("/api/status", headers=client.as_["owner"]).json()
    assert (st["labeled"], st["skipped"], st["unsure"]) == (1, 0, 0)
    # bob may label it otherwise (a disagreement); a skip of his after that would still
    # erase her label (his is the image's, hers is not): refused too; his undo gives it back
    blue = _post(client, "bob", image_id=iid, label="blue").json()["label_id"]
    r = _post(client, "bob", image_id=iid, kind="unsure")
    assert r.status_code == 409 and "is labeled red by alice" in r.json()["error"]
    client.post("/api/undo", headers=client.as_["bob"], json={"label_id": blue})
    st = client.get("/api/status", headers=client.as_["owner"]).json()
    assert (st["labeled"], st["unsure"], st["per_class"]["red"]) == (1, 0, 1)
    # alice's own label, and an image nobody labeled: set aside as before
    assert _post(client, "alice", image_id=other, label="green").status_code == 200
    assert _post(client, "alice", image_id=other, kind="skip").status_code == 200
    assert _post(client, "bob", image_id=other, kind="unsure").status_code == 200


def test_label_decide_words_its_errors_for_the_one_image(project):
    """`label decide` reused the CSV checks, so its errors read 'label decide: row 1: ...'
    though it has no rows: now they name the image and the class as typed."""
    _disagree(project)
    project.close()
    r = _run("decide", project.dir, "red/999.png", "red")
    assert r.exit_code == 2
    out = " ".join(r.output.split())
    assert "row 1" not in out, out
    assert out.startswith(
        "error: label decide: 'red/999.png' is not an image of this project; paths are "
        "relative to the image folder"
    ) and out.endswith("; nothing was written."), out
    r = _run("decide", project.dir, "red/000.png", "purple")
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and "row 1" not in out, out
    assert "label decide: label 'purple' is not one of red, green, blue" in out, out


def test_decisions_on_images_without_a_disagreement_are_counted_and_named(project, tmp_path):
    """`label add --decide` recorded a row on an image nobody disagreed on as a decision
    without a word (a wrong path in decisions.csv, or a disagreement resolved meanwhile): the
    line now says how many such rows were recorded as decisions anyway, and names them; the
    disagreement's row is counted as before. `label decide` says it too."""
    _disagree(project)
    project.close()
    rows = tmp_path / "decisions.csv"
    rows.write_text("path,label\nred/000.png,red\ngreen/001.png,green\nblue/002.png,blue\n")
    r = _run("add", project.dir, rows, "--decide")
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert out.startswith("decided 3 images: the owner's label"), out
    assert (
        "2 of them had no disagreement between annotators (blue/002.png, green/001.png): "
        "recorded as the owner's decision anyway" in out
    ), out
    r = _run("decide", project.dir, "red/003.png", "red")
    out = " ".join(r.output.split())
    assert r.exit_code == 0 and (
        "red/003.png had no disagreement between annotators: recorded as the owner's decision "
        "anyway" in out
    ), out
    r = _run("decide", project.dir, "red/000.png", "blue")  # a disagreement: no such note
    assert r.exit_code == 0 and "no disagreement" not in r.output, r.output


def test_the_labeled_view_lists_the_disagreements_for_the_owner_only(client):
    """`GET /api/labeled?disagreements=open` (the owner's page's "disagreements only"): the
    images whose annotators' labels differ, not decided, each saying who gave which label;
    `all` the decided ones too; an annotator's token is refused (403) and its items say
    nothing of the others' labels."""
    items = client.get("/api/batch", headers=client.as_["alice"]).json()["items"]
    iid, other = items[0]["image_id"], items[1]["image_id"]
    _post(client, "alice", image_id=iid, label="red")
    _post(client, "bob", image_id=iid, label="blue")
    _post(client, "alice", image_id=other, label="green")

    def page(who, **params):
        return client.get("/api/labeled", headers=client.as_[who], params=params)

    r = page("owner", disagreements="open")
    assert r.status_code == 200, r.text
    (it,) = r.json()["items"]
    assert it["image_id"] == iid and it["label"] == "blue"
    assert it["disagreement"] == {"status": "open", "labels": {"alice": "red", "bob": "blue"}}
    assert r.json()["note"].startswith("only the images whose annotators' labels differ")
    mine = {x["image_id"]: x["disagreement"] for x in page("owner").json()["items"]}
    assert mine == {iid: it["disagreement"], other: None}
    assert _post(client, "owner", image_id=iid, label="red", decide=True).status_code == 200
    assert page("owner", disagreements="open").json()["items"] == []
    (it,) = page("owner", disagreements="all").json()["items"]
    assert it["disagreement"]["status"] == "decided" and it["source"] == "decision"
    r = page("owner", disagreements="yes")
    assert r.status_code == 400 and "disagreements='yes': use open or all" in r.json()["error"]
    r = page("alice", disagreements="open")
    assert r.status_code == 403 and "the list of disagreements" in r.json()["error"]
    assert all("disagreement" not in x for x in page("alice").json()["items"])


def test_deciding_a_disagreement_the_owner_was_a_side_of_counts_it_as_decided(project):
    """The owner's own label is one side (alice red, the owner blue): the decision replaced
    the owner's label as their side, so the labels no longer differed and the disagreement
    vanished from `decided` and the listing (a decision by anyone else counted). A decision
    is not a side: the owner's side stays their blue, and the disagreement counts and lists
    as decided, in the status counts, the listing and the API's counts alike; the owner's
    undo of the decision opens it again."""
    from typer.testing import CliRunner

    from fishermask.cli import app

    image_id = project.store.image_ids_by_path()["red/000.png"]
    project.store.add_label(image_id, "label", 0, annotator="alice")
    project.store.add_label(image_id, "label", 2)  # the owner's own: blue
    project.close()
    r = CliRunner().invoke(app, ["label", "decide", str(project.dir), "red/000.png", "red"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "shown as decided" in out and "0 disagreements still open" in out, out
    st = _status(project.dir)
    assert (st["disagreements"], st["decided"]) == (0, 1)
    r = CliRunner().invoke(app, ["label", "status", str(project.dir), "--list", "disagreements"])
    assert r.stdout.splitlines() == [
        "path,current,status,alice,owner",
        "red/000.png,red,decided,red,blue",
    ]

    from fishermask.label.project import Project

    p = Project(project.dir)
    try:
        (decision,) = [x for x in p.store.history(image_id) if x.source == "decision"]
        p.store.undo(decision.id)
        assert p.store.label_counts()["disagreements"] == 1  # the owner's blue again
        assert [d["status"] for d in p.disagreements()] == ["open"]
    finally:
        p.close()


def test_the_same_label_again_by_the_same_person_writes_nothing(client, project):
    """alice posting red on an image she labeled red wrote a history row each time (the page
    no longer sends one; the API did): a repeat is a success that says it was labeled so
    already, with the current label's id, and writes no row. Another person's same class,
    and the owner's decision of the class it has, are still written."""
    iid = client.get("/api/batch", headers=client.as_["alice"]).json()["items"][0]["image_id"]
    first = _post(client, "alice", image_id=iid, label="red")
    assert first.status_code == 200 and first.json()["already"] is False
    again = _post(client, "alice", image_id=iid, label="red")
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["already"] is True and body["label_id"] == first.json()["label_id"]
    assert body["note"].endswith("is labeled red by alice already; nothing was written")
    assert len(project.store.history(iid)) == 1
    assert _post(client, "bob", image_id=iid, label="red").json()["already"] is False
    assert _post(client, "alice", image_id=iid, label="red").json()["already"] is False  # bob's
    d = _post(client, "owner", image_id=iid, label="red", decide=True).json()
    assert d["already"] is False and d["decided"] is True
    d = _post(client, "owner", image_id=iid, label="red", decide=True).json()
    assert d["already"] is True and "is decided red by owner already" in d["note"]
    assert len(project.store.history(iid)) == 4
    assert _post(client, "alice", image_id=iid, kind="skip").status_code == 409  # unchanged


def test_a_repeat_answers_the_id_it_repeats_even_when_a_label_lands_right_after(
    client, project, monkeypatch
):
    """The answer's label_id of a repeat was read after the write's transaction: bob's label
    landing in between made alice's answer name bob's row (which her undo would then undo)."""
    from fishermask.label.store import Store

    iid = client.get("/api/batch", headers=client.as_["alice"]).json()["items"][0]["image_id"]
    first = _post(client, "alice", image_id=iid, label="red").json()
    real = Store.add_labels
    blue = project.classes.index("blue")

    def then_bob(self, actions, **kw):
        ids = real(self, actions, **kw)
        if kw.get("annotator") == "alice" and not ids:  # the repeat: bob labels right after
            real(self, [(iid, "label", blue)], annotator="bob")
        return ids

    monkeypatch.setattr(Store, "add_labels", then_bob)
    again = _post(client, "alice", image_id=iid, label="red").json()
    assert again["already"] is True and again["label_id"] == first["label_id"], again
    assert len(project.store.history(iid)) == 2  # alice's, then bob's


def test_the_batch_names_a_removed_class_in_a_disagreement_as_removed(client, project):
    """The owner's Batch view named an annotator's label of a class removed since by its
    plain name (`alice red`), as if red were still a class; the Labeled view and `label status
    --list disagreements` say `red (removed)`."""
    from fishermask.label.project import Project

    owner = client.as_["owner"]
    items = client.get("/api/batch", headers=owner).json()["items"]
    iid = items[0]["image_id"]
    _post(client, "alice", image_id=iid, label="red")
    _post(client, "bob", image_id=iid, label="blue")  # the image's label: blue
    other = Project(project.dir)
    try:
        reds = [i for i, c in other.store.current().items() if c[1] == "label" and c[2] == 0]
        for i in reds:  # no current label may carry a class that is removed
            other.store.add_label(i, "label", 1)
        other.configure(remove_classes=["red"])
    finally:
        other.close()
    (it,) = [
        x for x in client.get("/api/batch", headers=owner).json()["items"] if x["image_id"] == iid
    ]
    assert it["disagreement"] == {
        "status": "open",
        "labels": {"alice": "red (removed)", "bob": "blue"},
    }


def test_a_decision_without_a_disagreement_says_so_through_the_api(client):
    """`"decide": true` on an image whose annotators agree was recorded without a word (the
    command says so): the answer says there was no disagreement and what a plain label does;
    a decision of a disagreement says it is decided."""
    items = client.get("/api/batch", headers=client.as_["alice"]).json()["items"]
    calm, split = items[0]["image_id"], items[1]["image_id"]
    _post(client, "alice", image_id=calm, label="red")
    _post(client, "alice", image_id=split, label="red")
    _post(client, "bob", image_id=split, label="blue")
    r = _post(client, "owner", image_id=calm, label="blue", decide=True).json()
    assert r["disagreement"] is None and r["note"].startswith(
        "this image had no disagreement between annotators: recorded as the owner's decision"
    )
    r = _post(client, "owner", image_id=split, label="blue", decide=True).json()
    assert r["disagreement"] == "decided" and "note" not in r


def test_disagreements_only_lists_what_the_status_list_lists(client, project):
    """A disagreement whose current action is a skip (given before a skip on another's label
    was refused) was in `label status --list disagreements` but not in the Labeled view's
    "disagreements only", which listed labeled images only: both list it now, the item's
    kind says skip and its label is None."""
    from fishermask.label.project import Project

    s = project.store
    ids = s.image_ids_by_path()
    red, blue = ids["red/000.png"], ids["blue/000.png"]
    for image_id in (red, blue):
        s.add_label(image_id, "label", 0, annotator="alice")
        s.add_label(image_id, "label", 2, annotator="bob")
    s.add_label(red, "skip")  # the owner's, written as before the 409 rule
    listed = Project(project.dir)
    try:
        expected = {d["path"]: d["current"] for d in listed.disagreements()}
    finally:
        listed.close()
    assert expected == {"red/000.png": "skipped", "blue/000.png": "blue"}
    for which in ("open", "all"):
        page = client.get(
            "/api/labeled", headers=client.as_["owner"], params={"disagreements": which}
        ).json()
        got = {it["path"]: (it["kind"], it["label"]) for it in page["items"]}
        assert got == {"red/000.png": ("skip", None), "blue/000.png": ("label", "blue")}, which
        assert page["total"] == 2
    plain = client.get("/api/labeled", headers=client.as_["owner"]).json()["items"]
    assert sorted(it["path"] for it in plain) == ["blue/000.png"]  # labeled images only


def test_the_same_decision_again_says_nothing_was_written(project):
    """`label decide` of an image on which the owner had decided that class already wrote
    nothing ('decided 0 images (1 already so)'), yet went on, for an image without a
    disagreement, that it was 'recorded as the owner's decision anyway'."""
    project.close()
    r = _run("decide", project.dir, "red/003.png", "red")
    assert r.exit_code == 0 and "recorded as the owner's decision anyway" in r.output, r.output
    n = len(_run("history", project.dir, "red/003.png").stdout.splitlines())
    r = _run("decide", project.dir, "red/003.png", "red")
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    assert said.startswith(
        "decided 0 images: 1 was the owner's decision already, nothing was written"
    ), said
    assert "recorded" not in said
    assert len(_run("history", project.dir, "red/003.png").stdout.splitlines()) == n
