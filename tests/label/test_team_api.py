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
    assert item["url"].endswith(f"?token={client.token['alice']}")  # not the owner's
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
    assert [(h.annotator, h.kind) for h in client.project.store.history(item["image_id"])] == [
        ("alice", "label"),
        ("bob", "label"),
        (None, "skip"),
    ]
    b = client.get("/api/batch", headers=client.as_["bob"]).json()["items"][0]
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
    assert r.text.splitlines() == ["path,label,annotator", f"{iid['path']},red,alice"]


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
