"""The JSON API with FastAPI's test client: token, labels, undo, batch, images, bad requests."""

from __future__ import annotations

import os

import pytest

from tests.label.conftest import AUTH, CLASSES, TOKEN, wait_for_round


def _rows(client):
    return len(client.project.store.history())


def test_every_request_needs_the_token(client):
    for path in (
        "/",
        "/api/batch",
        "/api/status",
        "/api/export.csv",
        "/api/images/1",
    ):
        assert client.get(path).status_code == 401
        assert client.get(path, params={"token": "wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/api/labels", json={"image_id": 1, "label": "red"}).status_code == 401
    assert client.get("/api/status", params={"token": TOKEN}).status_code == 200
    assert client.get("/api/status", headers=AUTH).status_code == 200
    page = client.get("/", params={"token": TOKEN})
    assert page.status_code == 200 and all(c in page.text for c in CLASSES)
    assert _rows(client) == 0


def test_label_undo_and_status(client):
    item = client.get("/api/batch", headers=AUTH).json()["items"][0]
    assert item["url"] == f"/api/images/{item['image_id']}"  # no token in a URL
    r = client.post(
        "/api/labels", headers=AUTH, json={"image_id": item["image_id"], "label": "red"}
    )
    assert r.status_code == 200
    lid = r.json()["label_id"]
    assert client.project.store.current_labels() == {item["image_id"]: 0}  # committed
    s = client.get("/api/status", headers=AUTH).json()
    assert s["labeled"] == 1 and s["per_class"]["red"] == 1
    b = client.get("/api/batch", headers=AUTH).json()["items"][0]
    assert b["state"] == {"label_id": lid, "kind": "label", "label": "red", "by": "owner"}
    r = client.post(
        "/api/labels", headers=AUTH, json={"image_id": item["image_id"], "kind": "skip"}
    )
    assert r.status_code == 200
    assert client.get("/api/status", headers=AUTH).json()["skipped"] == 1
    assert (
        client.post("/api/undo", headers=AUTH, json={"label_id": r.json()["label_id"]}).status_code
        == 200
    )
    assert client.project.store.current_labels() == {item["image_id"]: 0}
    csv = client.get("/api/export.csv", headers=AUTH)
    assert csv.status_code == 200 and csv.text.splitlines() == ["path,label", f"{item['path']},red"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"image_id": 1, "label": "purple"}, 400, "not one of the project's classes"),
        ({"image_id": 1}, 400, "`label` is missing: give one of the classes (red, green, blue)"),
        ({"image_id": 99999, "label": "red"}, 404, "no image with id 99999"),
        ({"image_id": "1", "label": "red"}, 400, "image_id"),
        ({"image_id": True, "label": "red"}, 400, "image_id"),
        ({"label": "red"}, 400, "image_id"),
        ({"image_id": 1, "label": "red", "path": "/etc/passwd"}, 400, "unknown field"),
        ({"image_id": 1, "kind": "delete"}, 400, "kind"),
        ({"image_id": 1, "kind": "skip", "label": "red"}, 400, "carries no label"),
        ({"image_id": 1, "label": "red", "client": "x" * 100}, 400, "client"),
        ([1, 2], 400, "JSON object"),
    ],
)
def test_bad_labels_are_4xx_and_write_nothing(client, body, status, message):
    r = client.post("/api/labels", headers=AUTH, json=body)
    assert r.status_code == status and message in r.json()["error"]
    assert _rows(client) == 0


def test_malformed_and_oversized_bodies(client):
    r = client.post("/api/labels", headers=AUTH, content=b"{not json")
    assert r.status_code == 400
    r = client.post(
        "/api/labels", headers=AUTH, content=b'{"image_id": 1, "label": "' + b"r" * 5000 + b'"}'
    )
    assert r.status_code == 413

    def chunks():  # no Content-Length: the endpoint counts the streamed bytes
        for _ in range(10):
            yield b" " * 1000

    r = client.post("/api/labels", headers=AUTH, content=chunks())
    assert r.status_code == 413
    assert client.post("/api/undo", headers=AUTH, json={"label_id": 424242}).status_code == 404
    assert client.post("/api/undo", headers=AUTH, json={"x": 1}).status_code == 400
    assert _rows(client) == 0


def test_images_are_served_by_id_inside_the_root_only(client, tmp_path):
    store = client.project.store
    row = store.image(1)
    r = client.get("/api/images/1", headers=AUTH)
    assert r.status_code == 200 and r.content == (client.project.root / row.path).read_bytes()
    assert r.headers["content-type"] == "image/png"
    assert client.get("/api/images/999", headers=AUTH).status_code == 404
    assert client.get("/api/images/..%2F..%2Fetc%2Fpasswd", headers=AUTH).status_code in (404, 422)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"secret")
    target = client.project.root / row.path
    target.unlink()
    os.symlink(secret, target)  # swapped for a link leading out of the folder after the scan
    r = client.get("/api/images/1", headers=AUTH)
    assert r.status_code == 403 and b"secret" not in r.content


def test_a_bad_path_parameter_uses_the_api_error_shape(client):
    r = client.get("/api/images/abc", headers=AUTH)
    assert r.status_code == 422
    body = r.json()
    assert "detail" not in body
    assert "image_id" in body["error"] and "whole numbers" in body["error"]


def test_next_batch_runs_in_a_worker_while_labels_keep_saving(client):
    from tests.label.conftest import label_truth

    label_truth(client.project, 2)
    before = client.get("/api/status", headers=AUTH).json()["queue_round"]
    r = client.post("/api/next", headers=AUTH)
    assert r.status_code == 202
    assert client.post("/api/next", headers=AUTH).status_code == 409
    saved = client.post("/api/labels", headers=AUTH, json={"image_id": 24, "label": "blue"})
    assert saved.status_code == 200  # the page stays usable during the retrain
    s = wait_for_round(client)
    assert s["round"]["status"] == "done", s
    assert s["queue_round"] != before
    assert s["mode"].startswith("chosen by the model trained on ")
    assert s["mode"].endswith("(method: fishermask)")
    items = client.get("/api/batch", headers=AUTH).json()["items"]
    assert items and all(it["guesses"] for it in items)


def test_next_batch_stops_a_worker_that_is_only_estimating(client):
    """A new round does not wait for the previous round's accuracy estimate: that worker is
    stopped and its round recorded as not estimated."""
    import subprocess
    import sys

    from tests.label.conftest import label_truth

    label_truth(client.project, 2)
    store = client.project.store
    worker = client.app.state.worker
    estimating = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    rid = store.start_round("fishermask", estimating.pid)
    store.finish_round(rid, status="done", metrics={"accuracy": None, "estimating": True})
    worker.proc = estimating
    assert client.get("/api/status", headers=AUTH).json()["estimating"] == rid
    assert client.post("/api/next", headers=AUTH).status_code == 202
    assert estimating.poll() is not None  # stopped before the new round started
    s = client.get("/api/status", headers=AUTH).json()
    assert s["estimating"] is None and s["training"]
    assert store.round(rid)["metrics"]["method"].startswith("not estimated")
    wait_for_round(client)


def test_classes_past_the_shortcut_keys_have_no_empty_key_box(tmp_path, folder):
    """Classes after the 32nd have no shortcut key; their buttons showed an empty key box."""
    from fishermask.label.project import Project
    from fishermask.label.server import shortcut_keys
    from tests.label.conftest import TINY, api_client

    names = [f"c{i}" for i in range(40)]
    assert shortcut_keys(40)[-1] == ""
    Project.init(tmp_path / "many", folder, ",".join(names), **TINY).close()
    with api_client(tmp_path / "many") as c:
        page = c.get("/", headers=AUTH).text
    assert "<kbd></kbd>" not in page
    assert 'data-label="c39" data-key=""' in page and "<kbd>m</kbd> c31" in page
