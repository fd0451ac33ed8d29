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

    monkeypatch.setattr(client.project.store, "add_labels", full)
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


def test_the_server_prints_no_token_of_a_request_and_refuses_a_rebound_host(project):
    """The real server (`label serve`, bound to 127.0.0.1): its terminal shows the owner's token
    once, in the URL it prints, and nothing of the requests (no access log: a request's URL
    holds its token), bad ones included; a request whose Host names another machine (DNS
    rebinding) is refused even with the right token."""
    import re
    import signal
    import socket
    import subprocess

    import httpx

    from tests.label.test_kill import start_server

    project.close()
    proc, line, _ = start_server(project.dir)
    base, token = re.search(r"(http://[^/]+)/\?token=(\S+)", line).groups()
    try:
        with httpx.Client(base_url=base, timeout=10) as c:
            for path in ("/", "/static/app.js", "/api/images/1", "/api/images/999"):
                assert c.get(path, params={"token": token}).status_code in (200, 404)
            assert c.get("/api/status", params={"token": "wrong-guess-123"}).status_code == 401
            r = c.post("/api/labels", params={"token": token}, content=b"{not json")
            assert r.status_code == 400
            r = c.get("/api/status", params={"token": token}, headers={"Host": "evil.example"})
            assert r.status_code == 403 and "not this machine" in r.json()["error"]
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(f"GARBAGE /?token={token} NOT-HTTP\r\n\r\n".encode())
            s.recv(1000)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
    assert token not in rest and "wrong-guess-123" not in rest, rest


def test_two_annotators_labeling_one_image_at_once_keep_every_acknowledged_label(project):
    """Two annotators hammer the same image at the same moment: every 200 that wrote (not a
    repeat onto one's own current label, which writes nothing) is a row of its own in the
    database, the image's label is the newest one, and the two show as a
    disagreement."""
    import threading

    from fishermask.label.team import annotator_token
    from tests.label.conftest import api_client

    with api_client(project.dir, ("alice", "bob")) as c:
        image = c.get("/api/batch", headers=AUTH).json()["items"][0]["image_id"]
        acks: dict[str, list[int]] = {}
        start = threading.Barrier(2)

        def label(name: str, cls: str) -> None:
            h = {"Authorization": f"Bearer {annotator_token(TOKEN, name)}"}
            start.wait()
            out = []
            for _ in range(15):
                r = c.post("/api/labels", headers=h, json={"image_id": image, "label": cls})
                assert r.status_code == 200, r.text
                if not r.json()["already"]:  # a repeat onto one's own current label: no row
                    out.append(r.json()["label_id"])
            acks[name] = out

        threads = [
            threading.Thread(target=label, args=a) for a in (("alice", "red"), ("bob", "blue"))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = acks["alice"] + acks["bob"]
        assert len(set(ids)) == len(ids) >= 2
        assert {h.id for h in c.project.store.history()} >= set(ids)
        newest = max(ids)
        state = c.get("/api/batch", headers=AUTH).json()["items"][0]["state"]
        assert state["label_id"] == newest
        assert state["by"] == ("alice" if newest in acks["alice"] else "bob")
        assert c.get("/api/status", headers=AUTH).json()["disagreements"] == 1


def test_serving_to_other_machines_warns_that_the_token_travels_unencrypted(project):
    import os
    import signal
    import subprocess
    import sys

    from tests.label.test_kill import ROOT, stop_server

    project.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "fishermask.cli", "label", "serve", str(project.dir)]
    proc = subprocess.Popen(
        [*cmd, "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        # SIGINT at its default, as in a terminal: a background shell (CI, nohup) starts
        # children with it ignored, and stop_server's Ctrl-C then waited its 60 s for nothing
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        lines = []
        assert proc.stdout is not None
        while not any(x.startswith("labeling page:") for x in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
    finally:  # how fast it exits is not this test's point (a loaded machine takes seconds)
        stop_server(proc, timeout=60)
    warning = next(x for x in lines if x.startswith("warning:"))
    assert "reachable from other machines" in warning and "unencrypted" in warning


@pytest.mark.parametrize(
    ("headers", "content"),
    [
        # what a page of another site can send without a preflight: a form, or text/plain
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"image_id=1&label=red"),
        ({"Content-Type": "text/plain"}, b'{"image_id": 1, "label": "red"}'),
        # with the browser's cookies and an Origin: the token is never a cookie
        (
            {"Content-Type": "text/plain", "Origin": "http://evil.example", "Cookie": "token=x"},
            b'{"image_id": 1, "label": "red"}',
        ),
    ],
)
def test_a_cross_site_post_without_the_token_writes_nothing(client, headers, content):
    for path in ("/api/labels", "/api/next", "/api/revisit"):
        r = client.post(path, headers=headers, content=content)
        assert r.status_code == 401
        assert "access-control-allow-origin" not in r.headers  # no CORS: answers stay unread
    assert len(client.project.store.history()) == 0
    assert len(client.project.store.rounds()) == 1  # the fixture's, nothing started


def test_no_answer_puts_the_token_into_a_url_and_images_may_come_from_blob_urls(client):
    """The page's image URLs, its script and style and its CSV link carried the token, which
    then landed in server and proxy logs and in the browser's history of each image. Only the
    first URL (printed by `label serve`) has it now; the page sends it in a header."""
    page = client.get("/", params={"token": TOKEN})
    assert page.status_code == 200
    html = page.text.replace(f'"token": "{TOKEN}"', "")  # the page's settings hold it, once
    assert TOKEN not in html and "token=" not in html
    client.post("/api/labels", headers=AUTH, json={"image_id": 1, "label": "red"})
    for path in ("/api/batch", "/api/labeled"):
        items = client.get(path, headers=AUTH).json()["items"]
        assert items and all("token" not in it["url"] for it in items), path
    csp = page.headers["content-security-policy"]
    # the page shows images it fetched (with the header) from blob: URLs, and nothing else new
    assert "img-src 'self' blob:;" in csp and csp.count("blob:") == 1 and "data:" not in csp


def test_static_files_need_no_token_and_hold_nothing_of_the_project(client):
    for path in ("/static/app.js", "/static/style.css", "/static/reopen.js"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert TOKEN not in r.text and str(client.project.dir) not in r.text
    # outside /static, every route still needs the token (in a header, or ?token= for scripts)
    assert client.get("/static/../api/status").status_code == 401
    assert client.get("/api/status", params={"token": TOKEN}).status_code == 200
    assert client.get("/api/images/1", params={"token": TOKEN}).status_code == 200


def test_the_page_without_a_token_is_a_401_page_that_can_reopen_this_tab(client):
    r = client.get("/")
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
    assert '<script src="/static/reopen.js"></script>' in r.text
    assert "open the URL that `fishermask label serve`" in r.text
    # a bookmark, or an address copied from the page to a colleague, has no token: the page
    # says why, and that each person has a URL of their own (it only said "missing or wrong")
    text = " ".join(r.text.split())
    assert "a bookmark or an address copied from the page's address bar has no token" in text
    assert "`label serve --annotators NAME`" in text
    assert "default-src 'none'" in r.headers["content-security-policy"]
    # it has the labeling page's look (its style sheet needs no token: a plain link), and
    # nothing of the project (it was unstyled plain text)
    assert '<link rel="stylesheet" href="/static/style.css">' in r.text
    assert "<header><h1>fishermask label</h1></header>" in r.text
    assert str(client.project.dir) not in r.text and TOKEN not in r.text
    # the API's refusals stay JSON
    assert client.get("/api/status").json()["error"].startswith("missing or wrong access token")


def test_no_path_under_static_reaches_the_api_without_a_token(project):
    """/static/ is served without a token: a path that climbs out of it (as sent on the wire,
    not normalised by a client) must not reach a route of the API."""
    import re
    import socket

    from tests.label.test_kill import start_server, stop_server

    project.close()
    proc, line, _ = start_server(project.dir)
    port = int(re.search(r":(\d+)/", line).group(1))
    try:
        for path in (
            "/static/../api/status",
            "/static/%2e%2e/api/status",
            "/static/..%2fapi/batch",
            "/static//../api/export.csv",
        ):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(
                    f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
                )
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            status = data.split(b"\r\n", 1)[0]
            assert status in (b"HTTP/1.1 404 Not Found", b"HTTP/1.1 401 Unauthorized"), (path, data)
            assert b"path,label" not in data and b'"items"' not in data and b'"labeled"' not in data
    finally:
        stop_server(proc)


def test_the_apis_401_says_where_the_owner_and_an_annotator_get_their_token(client):
    """A script or an annotator's tool refused with 401 read only 'printed by `fishermask
    label serve`': an annotator never sees what serve prints. The line says it for both,
    as the page does: the owner's URL, or the one serve printed for each annotator, whom the
    owner gives theirs; and how to send it."""
    r = client.get("/api/status", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert r.json()["error"] == (
        "missing or wrong access token: send the token of your URL as an Authorization: "
        "Bearer header (or ?token=...); the owner's is in the URL `fishermask label serve` "
        "printed first, an annotator's in the one it printed for them (an annotator: ask the "
        "owner for yours; a restart makes new tokens unless serve was given --token)"
    )


def test_favicon_is_204_without_a_token(client):
    """A browser asks for /favicon.ico by itself, without the page's token: it was a 401, a
    red error in the browser's console on every page load. It reveals nothing: 204, no body,
    for anyone; any other path still needs the token."""
    for method in ("GET", "HEAD"):
        r = client.request(method, "/favicon.ico")
        assert r.status_code == 204 and r.content == b"", (method, r.status_code)
    assert client.post("/favicon.ico").status_code == 401
    assert client.get("/favicon.ico/../api/status").status_code == 401
    assert client.get("/favicon.icox").status_code == 401
