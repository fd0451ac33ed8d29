"""Found by a security review of `label serve` (as an attacker and as a careless user): each
request gets the answer the README promises, never a 500 or a page that runs injected code."""

from __future__ import annotations

import pytest

from tests.label.conftest import AUTH, TOKEN


@pytest.mark.parametrize(
    ("method", "path", "auth"),
    [
        ("GET", "/", True),
        ("GET", "/api/status", True),
        ("GET", "/api/batch", True),
        ("GET", "/api/export.csv", True),
        ("GET", "/api/images/1", True),
        ("GET", "/static/app.js", True),
        ("GET", "/api/status", False),  # the refusal too
        ("POST", "/api/labels", False),
    ],
)
def test_every_answer_carries_the_security_headers(client, method, path, auth):
    r = client.request(method, path, headers=AUTH if auth else {})
    assert r.status_code == (200 if auth else 401)
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    # the page's URL carries the token: no Referer anywhere
    assert r.headers["referrer-policy"] == "no-referrer"
    cached = path.startswith(("/static/", "/api/images/"))
    assert (r.headers.get("cache-control") == "no-store") != cached


def test_the_page_has_no_inline_script(client):
    # the Content-Security-Policy (script-src 'self') would block one: settings are JSON data
    page = client.get("/", params={"token": TOKEN}).text
    assert "<script>" not in page
    assert '<script id="fm-config" type="application/json">' in page


@pytest.mark.parametrize("path", ["/api/labels", "/api/undo", "/api/revisit"])
def test_json_nested_too_deeply_is_400_not_500(client, path):
    # 2000 levels fit in the 4 KiB limit and made json.loads raise RecursionError (a 500)
    r = client.post(path, headers=AUTH, content=b"[" * 2000 + b"]" * 2000)
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    assert len(client.project.store.history()) == 0


def test_a_read_only_database_is_one_clear_503_and_nothing_is_saved(client, capsys):
    # what a read-only project folder does to SQLite (root ignores file modes, so the
    # connection is made read-only instead): the error was a 500 "Internal Server Error"
    r = client.post("/api/labels", headers=AUTH, json={"image_id": 1, "label": "red"})
    label_id = r.json()["label_id"]
    client.project.store._conn.execute("PRAGMA query_only = 1")
    for path, body in (
        ("/api/labels", {"image_id": 2, "label": "red"}),
        ("/api/undo", {"label_id": label_id}),
        ("/api/next", None),
    ):
        r = client.post(path, headers=AUTH, json=body)
        assert r.status_code == 503, (path, r.text)
        assert "readonly" in r.json()["error"] and "nothing was saved" in r.json()["error"]
        assert f"{path}: the project database failed" in capsys.readouterr().err
    client.project.store._conn.execute("PRAGMA query_only = 0")
    assert len(client.project.store.history()) == 1


def test_a_full_disk_is_one_clear_503(client, monkeypatch):
    import sqlite3

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(client.project.store, "add_label", full)
    r = client.post("/api/labels", headers=AUTH, json={"image_id": 1, "label": "red"})
    assert r.status_code == 503
    assert r.json()["error"].startswith("the project database failed (database or disk is full)")


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:8765", 200),
        ("localhost:8765", 200),
        ("localhost", 200),
        ("[::1]:8765", 200),
        ("127.0.0.2", 200),
        ("evil.example:8765", 403),  # DNS rebinding: another site's name, re-pointed here
        ("evil.example", 403),
        ("192.168.1.5:8765", 403),
    ],
)
def test_a_local_server_answers_only_hosts_of_this_machine(project, host, status):
    from tests.label.conftest import api_client

    with api_client(project.dir, local_only=True) as c:
        r = c.get("/api/status", headers={**AUTH, "Host": host})
        assert r.status_code == status, r.text
        if status == 403:
            assert "is not this machine" in r.json()["error"] and TOKEN not in r.text
    with api_client(project.dir) as c:  # --host 0.0.0.0: any name may reach it
        assert c.get("/api/status", headers={**AUTH, "Host": host}).status_code == 200
