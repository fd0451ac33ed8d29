"""Reads that must see one state of the project: what a page or an export combines from
several queries, while another process (a worker finishing a round, another server) writes."""

from __future__ import annotations

from fishermask.label.store import Store


def test_batch_items_and_round_id_come_from_one_state(client):
    """A batch committed between GET /api/batch's queries must not pair the old batch's items
    with the new batch's round id: the page would take the new batch as loaded and never show
    it (its polls compare only the round id)."""
    project = client.project
    project.store.add_label(project.batch()[0]["image_id"], "skip")
    old = client.get("/api/batch", params={"token": "test-token"}).json()
    other = Store(project.store.path)  # another process: its own connection
    real_queue = project.store.queue

    def queue_then_revisit():
        rows = real_queue()
        if not hasattr(queue_then_revisit, "done"):
            queue_then_revisit.done = True
            ids = [r["label_id"] for r in other.set_aside(["skip"])]
            assert other.queue_set_aside(ids, {}, mode="revisit")[0] is not None
        return rows

    project.store.queue = queue_then_revisit
    try:
        got = client.get("/api/batch", params={"token": "test-token"}).json()
    finally:
        del project.store.queue
        other.close()
    items = [it["image_id"] for it in got["items"]]
    if items == [it["image_id"] for it in old["items"]]:
        assert got["round_id"] == old["round_id"]  # the old batch, named as such
    else:
        assert got["round_id"] != old["round_id"]


def test_recover_keeps_an_estimate_that_finished_while_it_looked(project, monkeypatch):
    """The worker writes its estimate and exits between recover's read of the rounds and its
    look at the worker's pid: recover must not overwrite that estimate (and leave its held-out
    predictions under a round that says 'not estimated')."""
    import fishermask.label.project as proj

    rid = project.store.rounds()[-1]["id"]
    project.store.finish_round(rid, status="done", metrics={"estimating": True}, n_labels=3)
    project.store.set_round_pid(rid, 2**22 + 12345)  # no such process
    other = Store(project.store.path)  # the worker: its own connection
    real = proj.pid_alive

    def estimate_done_then_exit(pid, identity=None):
        metrics = {"accuracy": 0.5, "low": 0.2, "high": 0.8, "method": "k-fold"}
        other.set_estimate(rid, metrics, [(1, 0, 0, 0.9)], phase="done")
        return False  # the worker has exited

    monkeypatch.setattr(proj, "pid_alive", estimate_done_then_exit)
    try:
        project.recover()
    finally:
        monkeypatch.setattr(proj, "pid_alive", real)
        other.close()
    metrics = project.store.round(rid)["metrics"]
    assert metrics["accuracy"] == 0.5 and metrics["method"] == "k-fold"
    assert project.store.held_out(rid) == [(1, 0, 0, 0.9)]


def test_export_annotator_column_names_who_gave_that_label(project):
    """Another annotator's label committed while the export reads must not be credited with
    the label read before it: each row is a label and the annotator who gave that label."""
    image_id = project.batch()[0]["image_id"]
    project.store.add_label(image_id, "label", 0, annotator="alice")  # red
    other = Store(project.store.path)  # another server: its own connection
    real = project.store.current

    def current_then_bob():
        got = real()
        if not hasattr(current_then_bob, "done"):  # blue, just after the first read
            current_then_bob.done = other.add_label(image_id, "label", 2, annotator="bob")
        return got

    project.store.current = current_then_bob
    try:
        text = project.export_csv_text(annotators=True)
    finally:
        del project.store.current
        other.close()
    (row,) = [line.split(",")[1:3] for line in text.splitlines()[1:]]
    assert row in (["red", "alice"], ["blue", "bob"])


def test_a_failed_commit_is_rolled_back_and_the_store_stays_usable(project):
    """A COMMIT that fails (disk full, I/O error) must not leave the connection inside the
    transaction: its rows would show in this process's reads though never committed, and every
    later write would fail ('cannot start a transaction within a transaction')."""
    import sqlite3

    import pytest

    store = project.store
    image_id = project.batch()[0]["image_id"]

    class FailingCommit:
        def __init__(self, conn):
            self.conn, self.fail = conn, True

        def execute(self, sql, *args):
            if sql == "COMMIT" and self.fail:
                self.fail = False
                raise sqlite3.OperationalError("database or disk is full")
            return self.conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.conn, name)

    real = store._conn
    store._conn = FailingCommit(real)
    try:
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            store.add_label(image_id, "label", 0)
        assert image_id not in store.current()  # not committed, so not shown
        store.add_label(image_id, "label", 1)  # the next write works
    finally:
        store._conn = real
    assert store.current()[image_id][1:] == ("label", 1)
