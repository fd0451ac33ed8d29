"""A label check started from the page (`POST /api/check`): run by a worker process, followed
in `GET /api/status`, refused in one line as `label check` is, and safe to kill."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time

import httpx
import pytest
from typer.testing import CliRunner

from fishermask.cli import app
from fishermask.label import check as chk
from fishermask.label.store import DB_NAME
from tests.label.conftest import AUTH, CLASSES, TOKEN, api_client
from tests.label.test_check import _label_all
from tests.label.test_kill import start_server, stop_server

runner = CliRunner()


def _checks(project_dir) -> list[tuple]:
    """``(id, status, n_labels)`` of every check, and the rows of each in ``check_probs``."""
    with sqlite3.connect(project_dir / DB_NAME) as c:
        checks = c.execute("SELECT id, status, n_labels FROM label_checks ORDER BY id").fetchall()
        rows = dict(c.execute("SELECT check_id, COUNT(*) FROM check_probs GROUP BY check_id"))
    return [(i, status, n, rows.get(i, 0)) for i, status, n in checks]


def _wait_check(get, until, timeout: float = 120.0) -> dict:
    """Poll ``GET /api/status`` (``get(path)``: the JSON) until ``until(check)`` holds for its
    ``check``; that check."""
    deadline = time.time() + timeout
    while True:
        c = get("/api/status")["check"]
        if until(c) or time.time() > deadline:
            assert until(c), c
            return c
        time.sleep(0.2)


def test_a_check_from_the_page_runs_in_a_worker_and_the_labeled_view_follows(project):
    _label_all(project)
    with api_client(project.dir) as c:
        get = lambda path: c.get(path, headers=AUTH).json()  # noqa: E731
        assert get("/api/status")["check"] is None
        r = c.post("/api/check", headers=AUTH, json={"folds": 2})
        assert r.status_code == 202, r.text
        check_id = r.json()["check_id"]
        row = c.project.store.check_row(check_id)
        # handed over to a worker process: the server is not the one training
        assert row["status"] == "running" and row["pid"] != os.getpid()
        assert get("/api/status")["check"]["status"] == "running"  # the server answers
        done = _wait_check(get, lambda ch: ch["status"] != "running")
        assert done["status"] == "done", done
        row = c.project.store.check_row(check_id)
        # its progress, as `label check` reports it: the last fold, every epoch done
        assert row["phase"].startswith("fold 2/2: training on") and row["done"] == row["total"] > 0
        res = done["result"]
        assert res["id"] == check_id and res["current"] == 24
        assert res["line"] == f"{res['flagged']} of 24 labels flagged as possibly wrong " + (
            f"({100 * res['flagged'] / 24:.1f} %)"
        )
        assert (res["weak"] is not None) == (res["agreement"] < chk.WEAK_CHECK)
        assert re.fullmatch(r"\d\d:\d\d UTC", res["when"])
        page = get("/api/labeled?per_page=200")
        assert "out-of-fold probabilities from the label check" in page["note"]
        assert {it["prob_from"] for it in page["items"]} == {"check"}
        flagged = {it["path"] for it in page["items"] if it["flagged"]}
        assert len(flagged) == res["flagged"]
        only = get("/api/labeled?per_page=200&flagged=true")
        assert {it["path"] for it in only["items"]} == flagged and only["total"] == len(flagged)
        assert only["note"].startswith("only the labels the label check of ")
        # a fix of a flagged label: no longer the check's (as `label status` counts)
        fix = next(it for it in page["items"] if it["flagged"])
        other = next(k for k in CLASSES if k != fix["label"])
        r = c.post("/api/labels", headers=AUTH, json={"image_id": fix["image_id"], "label": other})
        assert r.status_code == 200, r.text
        res = get("/api/status")["check"]["result"]
        assert (res["current"], res["flagged"]) == (23, len(flagged) - 1)
        summary = chk.check_summary(c.project)
        assert (summary["current"], summary["flagged"]) == (23, len(flagged) - 1)
    assert _checks(project.dir) == [(check_id, "done", 24, 24)]


def test_flagged_only_before_any_check_lists_nothing_and_says_why(project):
    _label_all(project)
    with api_client(project.dir) as c:
        r = c.get("/api/labeled?flagged=true", headers=AUTH).json()
        assert r["total"] == 0 and r["items"] == []
        assert r["note"].startswith("no label check yet, so nothing is flagged")
        r = c.get("/api/labeled?flagged=maybe", headers=AUTH)
        assert r.status_code == 422 and "flagged" in r.json()["error"]


def test_the_page_check_is_refused_in_one_line_and_records_nothing(project):
    store = project.store
    with api_client(project.dir) as c:

        def refused(status: int, text: str, **kw) -> None:
            r = c.post("/api/check", **kw)
            assert r.status_code == status, r.text
            msg = r.json()["error"]
            assert text in msg and "\n" not in msg, msg

        refused(401, "missing or wrong access token")  # no token: nothing looked at
        refused(400, "`folds` must be a whole number from 2 to 20", headers=AUTH, json={"folds": 1})
        refused(400, "`folds` must be", headers=AUTH, json={"folds": "5"})
        refused(400, "allowed: folds", headers=AUTH, json={"k": 5})
        refused(400, "body must be JSON", headers=AUTH, content=b"{")
        # too few labels: check_enough's message, worded for the page's button (no --folds)
        refused(409, "a label check needs labels in at least 2 classes (has 0)", headers=AUTH)
        project.add_label_rows(
            [(f"{k}/00{i}.png", k) for k in CLASSES[:2] for i in range(2)],
            source="import",
            what="test",
        )
        refused(
            409,
            "a label check (5 models) needs at least 5 labeled images (distinct files; has 4); "
            "label more images first.",
            headers=AUTH,
        )
        refused(409, "folds 5 needs at least 5 labeled images", headers=AUTH, json={"folds": 5})
        # a round running (this live process's, as `label next` records one)
        rid = store.start_round("random", os.getpid())
        refused(
            409, f"a retrain is running (round {rid}); start the label check when", headers=AUTH
        )
        store.finish_round(rid, status="done")
        # a check running (this live process's, as `label check` records one)
        cid, _, _ = store.start_check(2, os.getpid())
        refused(409, f"a label check is running (check {cid}, process {os.getpid()})", headers=AUTH)
        store.finish_check(cid, status="failed", message="test")
        # an image missing: refused here, as "next batch" is, not a check failing in the worker
        gone = "blue/007.png"
        (project.root / gone).rename(project.root / "moved.png")
        refused(409, f"{gone} of this project is missing", headers=AUTH, json={"folds": 2})
        (project.root / "moved.png").rename(project.root / gone)
        assert c.post("/api/check", headers=AUTH, json={"folds": 2}).status_code == 202
        _wait_check(lambda p: c.get(p, headers=AUTH).json(), lambda ch: ch["status"] != "running")
    assert [status for _, status, _, _ in _checks(project.dir)] == ["failed", "done"]


def test_a_round_and_the_cli_check_are_refused_while_a_page_check_runs(project):
    _label_all(project)
    with api_client(project.dir) as c:
        r = c.post("/api/check", headers=AUTH, json={"folds": 2})
        assert r.status_code == 202, r.text
        check_id = r.json()["check_id"]
        pid = c.project.store.check_row(check_id)["pid"]
        assert pid != os.getpid()  # the worker's
        # (the worker takes seconds to import torch alone: still running below)
        msg = f"a label check is running (check {check_id}, process {pid}); wait for it"
        r = c.post("/api/next", headers=AUTH)
        assert r.status_code == 409 and r.json()["error"].startswith(msg), r.text
        r = runner.invoke(app, ["label", "check", str(project.dir), "--folds", "2"])
        assert r.exit_code == 2 and msg in r.stderr, r.output
        assert len(r.stderr.strip().splitlines()) == 1, r.output
        r = c.post("/api/check", headers=AUTH)  # a second page, or this one again
        assert r.status_code == 409 and r.json()["error"].startswith(msg), r.text
        assert c.get("/api/status", headers=AUTH).json()["check"]["status"] == "running"
        _wait_check(lambda p: c.get(p, headers=AUTH).json(), lambda ch: ch["status"] == "done")
        assert c.post("/api/next", headers=AUTH).status_code == 202  # once it is done
    assert _checks(project.dir) == [(check_id, "done", 24, 24)]


def test_an_annotator_may_check_unless_only_the_owner_trains(project):
    """The rights of the rounds: under --owner-only-queue only the owner; otherwise an
    annotator too, the batch not done included (a check replaces no batch)."""
    from fishermask.label import team
    from tests.label.conftest import label_truth

    label_truth(project, 2)  # 6 labels; the batch has images nobody has done
    alice = {"Authorization": f"Bearer {team.annotator_token(TOKEN, 'alice')}"}
    with api_client(project.dir, ("alice",), owner_only_queue=True) as c:
        you = c.get("/api/status", headers=alice).json()["you"]
        assert you["can_check"] is False and you["why_check"] == team.OWNER_ONLY_CHECK
        r = c.post("/api/check", headers=alice, json={"folds": 2})
        assert r.status_code == 403 and r.json()["error"] == team.OWNER_ONLY_CHECK
        assert c.get("/api/status", headers=AUTH).json()["you"]["can_check"] is True
    assert _checks(project.dir) == []
    with api_client(project.dir, ("alice",)) as c:
        s = c.get("/api/status", headers=alice).json()
        assert s["batch_left"] > 0 and s["you"]["can_queue"] is False
        assert s["you"]["can_check"] is True
        r = c.post("/api/check", headers=alice, json={"folds": 2})
        assert r.status_code == 202, r.text
        ch = c.get("/api/status", headers=AUTH).json()["check"]
        assert ch["started_by"] == "alice"
        _wait_check(lambda p: c.get(p, headers=AUTH).json(), lambda ch: ch["status"] != "running")


def _server(project):
    project.close()
    proc, line, _ = start_server(project.dir)
    base, token = re.search(r"(http://[^/]+)/\?token=(\S+)", line).groups()
    return proc, httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})


def test_sigkill_of_the_check_process_keeps_nothing_and_the_next_check_and_round_work(project):
    _label_all(project)
    proc, http = _server(project)
    try:
        get = lambda path: http.get(path, timeout=30).json()  # noqa: E731
        r = http.post("/api/check", json={"folds": 2}, timeout=30)
        assert r.status_code == 202, r.text
        first = r.json()["check_id"]
        ch = _wait_check(get, lambda ch: ch["phase"] != "starting")  # the worker is at it
        with sqlite3.connect(project.dir / DB_NAME) as db:
            pid = db.execute("SELECT pid FROM label_checks WHERE id = ?", (first,)).fetchone()[0]
        assert pid not in (proc.pid, os.getpid())
        os.kill(pid, signal.SIGKILL)
        ch = _wait_check(get, lambda ch: ch["status"] != "running")
        assert ch["id"] == first and ch["status"] == "interrupted", ch
        assert ch["message"] == "its process stopped before it finished"
        assert _checks(project.dir) == [(first, "interrupted", 0, 0)]  # nothing half-written
        r = http.post("/api/check", json={"folds": 2}, timeout=30)
        assert r.status_code == 202, r.text
        second = r.json()["check_id"]
        ch = _wait_check(get, lambda ch: ch["status"] != "running")
        assert ch["id"] == second and ch["status"] == "done", ch
        assert http.post("/api/next", timeout=30).status_code == 202
        s = get("/api/status")
        deadline = time.time() + 120
        while s["training"] and time.time() < deadline:
            time.sleep(0.3)
            s = get("/api/status")
        assert s["round"]["status"] == "done", s["round"]
    finally:
        http.close()
        stop_server(proc)
    assert _checks(project.dir) == [(first, "interrupted", 0, 0), (second, "done", 24, 24)]


def test_sigkill_of_the_server_mid_check_leaves_a_whole_check_and_the_next_serve_works(project):
    """The server killed: its check's worker finishes the check (its rows come in one
    transaction, at its end); the next server shows it, and a round works after it."""
    _label_all(project)
    proc, http = _server(project)
    try:
        r = http.post("/api/check", json={"folds": 2}, timeout=30)
        assert r.status_code == 202, r.text
        check_id = r.json()["check_id"]
        os.kill(proc.pid, signal.SIGKILL)  # no shutdown of any kind
        proc.wait()
    finally:
        http.close()
    # at any moment the check has every row or none
    seen = set()
    deadline = time.time() + 120
    while time.time() < deadline:
        (row,) = _checks(project.dir)
        seen.add(row[1:])
        if row[1] != "running":
            break
        time.sleep(0.05)
    assert seen <= {("running", 0, 0), ("done", 24, 24)}, seen
    assert row == (check_id, "done", 24, 24)
    proc, http = _server(project)
    try:
        s = http.get("/api/status", timeout=30).json()
        assert s["check"]["status"] == "done" and s["check"]["result"]["id"] == check_id
        assert http.post("/api/next", timeout=30).status_code == 202
    finally:
        http.close()
        stop_server(proc)


def test_ctrl_c_of_the_server_stops_its_check_and_says_so(project):
    _label_all(project)
    proc, http = _server(project)
    try:
        r = http.post("/api/check", json={"folds": 2}, timeout=30)
        assert r.status_code == 202, r.text
        check_id = r.json()["check_id"]
    finally:
        http.close()
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert time.time() - t0 < 15
    assert f"label check {check_id} was stopped (nothing of it is kept" in out, out
    assert _checks(project.dir) == [(check_id, "interrupted", 0, 0)]  # closed as it stopped


def test_the_check_command_reports_the_check_it_ran(project, monkeypatch):
    """`label check` read the latest finished check after its own: one that another process
    finished meanwhile was reported (its folds, time and flags) as this one's."""
    _label_all(project)
    real = chk.run_check

    def and_another(p, folds=chk.FOLDS, report=None, **kw):
        mine = real(p, folds, report, **kw)
        other, _, _ = p.store.start_check(3, os.getpid())  # finished just after it
        rows = [
            (r["image_id"], r["label_id"], r["label"], r["fold"], r["probs"])
            for r in p.store.check_probs(mine)
        ]
        p.store.finish_check(other, status="done", rows=rows)
        return mine

    monkeypatch.setattr(chk, "run_check", and_another)
    r = runner.invoke(app, ["label", "check", str(project.dir), "--folds", "2"])
    assert r.exit_code == 0, r.output
    assert ", 2 folds)." in r.stderr and ", 3 folds)" not in r.stderr, r.stderr


def test_times_are_utc_and_say_so(monkeypatch):
    """The check's time (UTC) and a server's start in the refusal of a second one (local
    time) were two clocks: both UTC now, labeled."""
    from pathlib import Path

    from fishermask.label import serve_lock

    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30: no local hour equals UTC's
    time.tzset()
    try:
        now = time.time()
        utc = time.strftime("%H:%M UTC", time.gmtime(now))
        msg = serve_lock._served_message(Path("p"), {"pid": 1, "since": now})
        assert f"since {utc})" in msg, msg
        check = chk.Check({"started": now}, {}, {}, {}, {}, {}, {})
        assert check.when == utc
        day = now - 3 * 86400
        assert chk.Check({"started": day}, {}, {}, {}, {}, {}, {}).when == time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime(day)
        )
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("weak", [True, False])
def test_the_result_line_says_when_the_models_are_too_weak(weak):
    line = chk.weak_line(chk.WEAK_CHECK - 0.01 if weak else chk.WEAK_CHECK)
    assert (line is not None) == weak
    if weak:
        assert line.startswith("out of fold, the check's models predict only 79.0 %")
    assert chk.flagged_line(3, 24) == "3 of 24 labels flagged as possibly wrong (12.5 %)"


@pytest.mark.parametrize(
    ("flagged", "current", "line"),
    [
        (1, 1, "1 of 1 label flagged as possibly wrong (100.0 %)"),  # it said '1 labels'
        (0, 1, "0 of 1 label flagged as possibly wrong (0.0 %)"),
        (0, 0, "0 of 0 labels flagged as possibly wrong (0.0 %)"),
        (2, 2, "2 of 2 labels flagged as possibly wrong (100.0 %)"),
    ],
)
def test_the_result_line_counts_one_label_as_one(flagged, current, line):
    assert chk.flagged_line(flagged, current) == line


def test_a_check_table_of_the_first_label_check_gets_its_progress_columns(project):
    """A project checked by the first `label check` (no progress columns) is opened, shown
    and checked from the page as any (its table lacked `phase`: every status poll failed)."""
    from fishermask.label.project import Project

    _label_all(project)
    chk.run_check(project, 2)
    project.close()
    with sqlite3.connect(project.dir / DB_NAME) as db:
        for col in ("phase", "done", "total", "started_by"):
            db.execute(f"ALTER TABLE label_checks DROP COLUMN {col}")
    p = Project(project.dir)
    assert p.store.check_row()["status"] == "done"
    p.close()
    with api_client(project.dir) as c:
        ch = c.get("/api/status", headers=AUTH).json()["check"]
        assert ch["status"] == "done" and ch["result"]["current"] == 24


def test_two_status_polls_at_once_around_a_new_label_both_answer(project, monkeypatch):
    """The check's summary was kept per (check, last label) in a dict each poll cleared when
    its key was new, then read back: a poll that had just stored its own summary and read it
    after another poll (a label given in between) cleared the dict failed with a KeyError
    (500). Polls run in threads of their own; here the second one runs in the first's gap."""
    from fishermask.label import server

    _label_all(project)
    chk.run_check(project, 2)
    first = next(r.path for r in project.store.images())
    with api_client(project.dir) as c:
        real = server.utc_clock
        inner: list[int] = []

        def meanwhile(t, now=None):
            if not inner:  # the first poll, its summary stored: another poll, a label before
                inner.append(0)
                image_id = c.project.store.image_ids_by_path()[first]
                for label in ("green", "blue"):
                    r = c.post(
                        "/api/labels", headers=AUTH, json={"image_id": image_id, "label": label}
                    )
                    assert r.status_code == 200, r.text
                    inner.append(c.get("/api/status", headers=AUTH).status_code)
            return real(t, now)

        monkeypatch.setattr(server, "utc_clock", meanwhile)
        r = c.get("/api/status", headers=AUTH)
        assert inner[1:] == [200, 200]
        assert r.status_code == 200, r.text
        assert r.json()["check"]["result"]["current"] == 24  # as it read before the labels
        later = c.get("/api/status", headers=AUTH).json()["check"]["result"]
        assert later["current"] == 23  # the relabeled image is no longer the check's
