"""The JSON API of a labeling team: each annotator's token, attribution, own-undo (403)."""

from __future__ import annotations

import pytest

from tests.label.conftest import TOKEN, api_client


def _run(*args):
    from typer.testing import CliRunner

    from fishermask.cli import app

    return CliRunner().invoke(app, ["label", *[str(a) for a in args]])


def test_serve_refuses_bad_annotators_in_one_line(project):
    project.close()
    r = _run("serve", project.dir, "--annotators", "alice,owner", "--port", "0")
    assert r.exit_code == 2 and "'owner' is the name of the owner's token" in r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("token", "annotators", "says"),
    [
        ("a+b&c-0123456789abcdefghij", (), "use letters, digits, - and _ only"),
        ("labeling2026", ("--annotators", "alice"), "--token of 12 characters with --annotators"),
        # served to other machines: guesses are not limited, so the token must be long
        ("labeling2026", (), "--token of 12 characters with --host 999.0.0.1"),
    ],
)
def test_serve_refuses_a_token_unfit_for_urls_or_for_a_team(project, token, annotators, says):
    """A token with + or & broke the page (its script, style, images and export link, which
    carry the token in their URL, were 401); a short or chosen one lets an annotator find it
    offline from their own token (an HMAC keyed with it)."""
    project.close()
    # a host it cannot bind: without the check the server would fail there, not serve forever
    r = _run("serve", project.dir, "--token", token, *annotators, "--host", "999.0.0.1")
    assert r.exit_code == 2 and says in r.output and token not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_serve_takes_a_short_token_on_this_machine_only(project):
    from fishermask.label.team import check_token

    check_token("labeling2026", team=False, exposed=False)  # --host 127.0.0.1 (the default)
    check_token("x" * 22, team=False, exposed=True, host="0.0.0.0")


# -- the API -----------------------------------------------------------------------------------
@pytest.fixture
def client(project):
    """The test client of a server with annotators alice and bob: ``client.as_[name]`` the
    headers of each one's token (``owner`` too), ``client.token[name]`` the token."""
    from fishermask.label.team import annotator_token

    with api_client(project.dir, ("alice", "bob")) as c:
        c.token = {"owner": TOKEN} | {a: annotator_token(TOKEN, a) for a in ("alice", "bob")}
        c.as_ = {n: {"Authorization": f"Bearer {t}"} for n, t in c.token.items()}
        yield c


def test_each_annotator_has_a_token_and_is_recorded(client):
    item = client.get("/api/batch", headers=client.as_["alice"]).json()["items"][0]
    assert item["url"] == f"/api/images/{item['image_id']}"  # no token (the header has it)
    r = client.post(
        "/api/labels",
        headers=client.as_["alice"],
        json={"image_id": item["image_id"], "label": "red"},
    )
    assert r.status_code == 200 and r.json()["by"] == "alice"
    r = client.post(
        "/api/labels",
        headers=client.as_["bob"],
        json={"image_id": item["image_id"], "label": "blue"},
    )
    r2 = client.post(
        "/api/labels",
        headers=client.as_["owner"],
        json={"image_id": item["image_id"], "kind": "skip"},
    )
    assert r2.status_code == 409  # it would replace their labels (test_team_decide.py)
    second = client.get("/api/batch", headers=client.as_["alice"]).json()["items"][1]
    r2 = client.post(
        "/api/labels",
        headers=client.as_["owner"],
        json={"image_id": second["image_id"], "kind": "skip"},
    )
    assert [(h.annotator, h.kind) for h in client.project.store.history(item["image_id"])] == [
        ("alice", "label"),
        ("bob", "label"),
    ]
    assert [(h.annotator, h.kind) for h in client.project.store.history(second["image_id"])] == [
        (None, "skip")
    ]
    b = client.get("/api/batch", headers=client.as_["bob"]).json()["items"][1]
    assert b["state"] == {
        "label_id": r2.json()["label_id"],
        "kind": "skip",
        "label": None,
        "by": "owner",
    }
    st = client.get("/api/status", headers=client.as_["bob"]).json()
    assert st["disagreements"] == 1
    assert st["annotators"]["alice"]["labeled"] == 1 and st["annotators"]["owner"]["skipped"] == 1
    assert client.get("/api/status", params={"token": "alice"}).status_code == 401


def test_the_page_acts_with_the_token_it_was_opened_with(client):
    page = client.get("/", params={"token": client.token["bob"]})
    assert page.status_code == 200
    assert client.token["bob"] in page.text and TOKEN not in page.text
    assert '"annotator": "bob"' in page.text
    assert '"annotator": "owner"' in client.get("/", params={"token": TOKEN}).text


def test_undo_of_someone_elses_action_is_403(client):
    iid = client.get("/api/batch", headers=client.as_["alice"]).json()["items"][0]["image_id"]
    lid = client.post(
        "/api/labels", headers=client.as_["alice"], json={"image_id": iid, "label": "red"}
    ).json()["label_id"]
    r = client.post("/api/undo", headers=client.as_["bob"], json={"label_id": lid})
    assert r.status_code == 403 and "can undo only their own" in r.json()["error"]
    assert len(client.project.store.history()) == 1
    r = client.post("/api/undo", headers=client.as_["alice"], json={"label_id": lid})
    assert r.status_code == 200
    lid = client.post(
        "/api/labels", headers=client.as_["bob"], json={"image_id": iid, "label": "red"}
    ).json()["label_id"]
    assert (
        client.post("/api/undo", headers=client.as_["owner"], json={"label_id": lid}).status_code
        == 200
    )
    assert client.project.store.current() == {}


def test_export_csv_api_with_annotators(client):
    iid = client.get("/api/batch", headers=client.as_["alice"]).json()["items"][0]
    client.post(
        "/api/labels",
        headers=client.as_["alice"],
        json={"image_id": iid["image_id"], "label": "red"},
    )
    r = client.get("/api/export.csv", headers=client.as_["owner"], params={"annotators": "true"})
    assert r.text.splitlines() == ["path,label,annotator,decided", f"{iid['path']},red,alice,"]


@pytest.mark.parametrize("name", ["alice", "bob"])
def test_export_csv_with_annotators_is_the_owners(client, name):
    """An annotator's token downloaded who gave each label across the team; now 403 with one
    line, while the plain export (path,label) stays open to every token."""
    iid = client.get("/api/batch", headers=client.as_["alice"]).json()["items"][0]
    client.post(
        "/api/labels",
        headers=client.as_["alice"],
        json={"image_id": iid["image_id"], "label": "red"},
    )
    for value in ("true", "1", "yes"):
        r = client.get("/api/export.csv", headers=client.as_[name], params={"annotators": value})
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert "owner's" in error and "\n" not in error and "alice" not in error
    r = client.get("/api/export.csv", headers=client.as_[name])
    assert r.status_code == 200 and r.text.splitlines() == ["path,label", f"{iid['path']},red"]
    r = client.get("/api/export.csv", headers=client.as_[name], params={"annotators": "false"})
    assert r.status_code == 200 and r.text.splitlines()[0] == "path,label"


def test_serve_prints_one_url_per_annotator(project):
    import json
    import re
    import urllib.request

    from tests.label.test_kill import start_server, stop_server

    project.close()
    owner_token = TOKEN + "-0123456789abcdef"  # a team's owner token: 22 characters or more
    proc, owner, _ = start_server(project.dir, "--annotators", "alice,bob", "--token", owner_token)
    try:
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        assert owner.endswith(f"/?token={owner_token}")
        urls = {}
        for name, line in zip(("alice", "bob"), lines, strict=True):
            m = re.fullmatch(rf"labeling page for {name}: (http://\S+)/\?token=(\S+)", line)
            assert m, line
            urls[name] = m.groups()
        assert urls["alice"][1] != urls["bob"][1] != owner_token
        base, tok = urls["alice"]
        item = json.load(urllib.request.urlopen(f"{base}/api/batch?token={tok}"))["items"][0]
        req = urllib.request.Request(
            f"{base}/api/labels?token={tok}",
            data=json.dumps({"image_id": item["image_id"], "label": "red"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert json.load(urllib.request.urlopen(req))["by"] == "alice"
    finally:
        stop_server(proc)
    # the same owner token gives the same annotator URLs after a restart
    proc, _, _ = start_server(project.dir, "--annotators", "alice", "--token", owner_token)
    try:
        again = proc.stdout.readline().strip()
        assert again.endswith(f"/?token={urls['alice'][1]}")
    finally:
        stop_server(proc)


# -- who may replace the batch -----------------------------------------------------------------
def _do_the_batch(client, who: str = "alice") -> None:
    """Label every image of the batch shown (as ``who``) with its folder's class."""
    for it in client.get("/api/batch", headers=client.as_[who]).json()["items"]:
        if it["state"] is None:
            r = client.post(
                "/api/labels",
                headers=client.as_[who],
                json={"image_id": it["image_id"], "label": it["path"].split("/")[0]},
            )
            assert r.status_code == 200, r.text


def test_an_annotator_cannot_replace_a_batch_others_are_labeling(client):
    """alice's next round or revisit would take the batch from under bob: 409 with one line
    naming how many images are left and the fix, nothing started, the batch as it was."""
    store = client.project.store
    items = client.get("/api/batch", headers=client.as_["bob"]).json()["items"]
    client.post(
        "/api/labels",
        headers=client.as_["bob"],
        json={"image_id": items[0]["image_id"], "kind": "unsure"},
    )
    rounds, queue = store.rounds(), store.queue()
    for path, body, fix in (
        ("/api/next", None, "ask the owner to start the next round"),
        ("/api/revisit", {"kinds": ["unsure"]}, "ask the owner to revisit"),
    ):
        r = client.post(path, headers=client.as_["alice"], json=body)
        assert r.status_code == 409
        msg = r.json()["error"]
        assert msg.startswith(
            f"the current batch still has {len(items) - 1} images nobody has labeled, skipped "
            "or marked unsure; finish them first, or " + fix
        )
        assert "\n" not in msg
    assert store.rounds() == rounds and store.queue() == queue  # nothing started or queued
    st = client.get("/api/status", headers=client.as_["alice"]).json()
    assert st["batch_left"] == len(items) - 1
    assert st["you"]["name"] == "alice" and st["you"]["can_queue"] is False
    assert st["you"]["why"].startswith(f"the current batch still has {len(items) - 1} images")
    owner = client.get("/api/status", headers=client.as_["owner"]).json()["you"]
    assert owner == {
        "name": "owner",
        "can_queue": True,
        "why": None,
        "can_check": True,
        "why_check": None,
    }

    # the owner may, over a batch not done: the revisit records who asked
    r = client.post("/api/revisit", headers=client.as_["owner"], json={"kinds": ["unsure"]})
    assert r.status_code == 200 and r.json()["queued"] == 1
    assert store.rounds()[-1]["started_by"] == "owner"
    st = client.get("/api/status", headers=client.as_["bob"]).json()
    assert st["round"]["started_by"] == "owner" and st["queue_started_by"] == "owner"
    assert client.get("/api/batch", headers=client.as_["bob"]).json()["started_by"] == "owner"
    r = client.post("/api/next", headers=client.as_["bob"])  # 1 image left: singular
    assert r.status_code == 409 and r.json()["error"].startswith(
        "the current batch still has 1 image nobody has labeled, skipped or marked unsure; "
        "finish it first"
    )


def test_an_annotator_starts_the_next_round_once_the_batch_is_done(client):
    from tests.label.conftest import wait_for_round

    _do_the_batch(client, "alice")
    st = client.get("/api/status", headers=client.as_["bob"]).json()
    assert st["batch_left"] == 0 and st["you"] == {
        "name": "bob",
        "can_queue": True,
        "why": None,
        "can_check": True,
        "why_check": None,
    }
    r = client.post("/api/next", headers=client.as_["bob"])
    assert r.status_code == 202, r.text
    st = wait_for_round(client)
    assert st["round"]["status"] == "done" and st["round"]["started_by"] == "bob"
    assert st["queue_started_by"] == "bob"
    assert client.project.store.round(r.json()["round_id"])["started_by"] == "bob"
    # the new batch has images to do: the owner may still start a round, the annotators not
    assert client.post("/api/next", headers=client.as_["alice"]).status_code == 409
    r = client.post("/api/next", headers=client.as_["owner"])
    assert r.status_code == 202, r.text
    assert wait_for_round(client)["round"]["started_by"] == "owner"


def test_owner_only_queue_refuses_annotators_even_with_the_batch_done(project):
    from fishermask.label.team import annotator_token

    with api_client(project.dir, ("alice",), owner_only_queue=True) as c:
        alice = {"Authorization": f"Bearer {annotator_token(TOKEN, 'alice')}"}
        for it in c.get("/api/batch", headers=alice).json()["items"]:
            c.post("/api/labels", headers=alice, json={"image_id": it["image_id"], "kind": "skip"})
        rounds = c.project.store.rounds()
        for path in ("/api/next", "/api/revisit"):
            r = c.post(path, headers=alice)
            assert r.status_code == 403
            assert r.json()["error"] == (
                "only the owner starts the next round or a revisit on this server (label serve "
                "--owner-only-queue); ask the owner"
            )
        assert c.project.store.rounds() == rounds
        page = c.get("/", headers=alice).text  # the page says to ask the owner once done
        assert '"owner_only_queue": true' in page and '"team": true' in page
        you = c.get("/api/status", headers=alice).json()["you"]
        assert you["can_queue"] is False and you["why"].startswith("only the owner")
        r = c.post("/api/revisit", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and r.json()["queued"] == 6
        assert c.project.store.rounds()[-1]["started_by"] == "owner"


def test_owner_only_queue_without_a_team_is_one_line(project):
    project.close()
    r = _run("serve", project.dir, "--owner-only-queue", "--host", "999.0.0.1")
    assert r.exit_code == 2 and "--owner-only-queue applies to a team" in r.output
    assert "add --annotators" in r.output and len(r.output.strip().splitlines()) == 1


def test_the_commands_start_rounds_as_the_owner(project):
    """label next and label revisit run as the owner, whatever the batch: recorded so."""
    project.close()
    r = _run("next", project.dir)
    assert r.exit_code == 0, r.output
    from fishermask.label.project import Project

    p = Project(project.dir)
    assert [r["started_by"] for r in p.store.rounds()] == ["owner", "owner"]
    p.close()


def test_next_batch_during_a_round_says_who_started_it_and_what_to_do(client):
    """'Next batch' while a round trains answered only 'a retrain is already running (round
    7)': on a team's page nothing said who started it, nor that its batch comes by itself."""
    from tests.label.conftest import wait_for_round

    r = client.post("/api/next", headers=client.as_["owner"])
    assert r.status_code == 202, r.text
    rid = r.json()["round_id"]
    try:
        r = client.post("/api/next", headers=client.as_["owner"])
        assert r.status_code == 409
        assert r.json()["error"] == (
            f"a retrain is already running (round {rid}, started by owner); its batch comes "
            "when it is done: keep labeling meanwhile"
        )
    finally:
        assert wait_for_round(client)["round"]["status"] == "done"
