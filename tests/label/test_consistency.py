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
