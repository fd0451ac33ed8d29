"""The store's kept state of the current actions (what ``GET /api/status`` counts): after every
kind of change (a label, an undo, a scan's undo, forgetting, a revisit, another process's
writes, a rolled-back transaction) it equals the same derived from ``labels`` read whole."""

from __future__ import annotations

import pytest

from fishermask.label import team
from fishermask.label.store import DB_NAME, Store

# the reference: the queries the store ran on every call before it kept its state
_CURRENT = """
SELECT l.image_id, l.id, l.kind, l.class_id FROM labels l JOIN (
    SELECT image_id, MAX(id) AS id FROM labels
    WHERE kind != 'undo' AND id NOT IN (SELECT undoes FROM labels WHERE kind = 'undo')
    GROUP BY image_id
) m ON l.id = m.id
"""
_BY = (
    "SELECT l.image_id, l.annotator, l.id, l.kind, l.class_id FROM labels l JOIN ("
    "SELECT MAX(id) AS id FROM labels WHERE kind != 'undo' AND id NOT IN (SELECT "
    "undoes FROM labels WHERE kind = 'undo') GROUP BY image_id, COALESCE(annotator, '')"
    ") m ON l.id = m.id ORDER BY l.image_id, l.id"
)


def _reference(s: Store) -> tuple:
    cur = {r["image_id"]: (r["id"], r["kind"], r["class_id"]) for r in s.query(_CURRENT)}
    by = [(r["image_id"], r["annotator"], r["id"], r["kind"], r["class_id"]) for r in s.query(_BY)]
    # the owner's decisions: images whose current action is a label of source "decision"
    decisions = {
        r["image_id"]
        for r in s.query(
            f"SELECT image_id FROM labels WHERE source = 'decision' AND id IN "
            f"(SELECT id FROM ({_CURRENT}))"
        )
    }
    disagree = set(team.disagreements(by))
    kinds = [k for _, k, _ in cur.values()]
    per_class: dict[int, int] = {}
    for _, k, c in cur.values():
        if k == "label":
            per_class[c] = per_class.get(c, 0) + 1
    counts = {
        "labeled": kinds.count("label"),
        "skipped": kinds.count("skip"),
        "unsure": kinds.count("unsure"),
        "per_class": per_class,
        "annotators": team.per_annotator(by),
        "disagreements": len(disagree - decisions),
        "decided": len(disagree & decisions),
    }
    return cur, by, counts, decisions


def _check(s: Store) -> dict:
    cur, by, counts, decisions = _reference(s)
    assert s.current() == cur
    assert s.current_by_annotator() == by
    assert s.label_counts() == counts
    assert s.decisions() == decisions
    return counts


def test_kept_state_equals_the_whole_table_after_every_change(project):
    s = project.store
    ids = [r.id for r in s.images()]
    assert _check(s)["labeled"] == 0
    s.add_label(ids[0], "label", 0, annotator="ann")
    s.add_label(ids[0], "label", 1, annotator="bob")  # a disagreement
    s.add_label(ids[1], "skip", annotator="ann")
    s.add_label(ids[2], "unsure")
    c = _check(s)
    assert c["disagreements"] == 1 and c["annotators"]["ann"] == {
        "labeled": 1,
        "skipped": 1,
        "unsure": 0,
    }
    last = s.add_label(ids[0], "label", 0, annotator="bob")  # agreed again
    assert _check(s)["disagreements"] == 0
    s.undo(last, annotator="bob")  # bob's earlier label is his again: disagreement back
    assert _check(s)["disagreements"] == 1
    s.undo(s.add_label(ids[3], "label", 2))
    _check(s)
    # the owner decides it (decided, not open), undoes the decision (open), decides again,
    # and bob's later label opens it again
    decision = s.add_label(ids[0], "label", 0, source="decision")
    assert _check(s)["disagreements"] == 0 and _check(s)["decided"] == 1
    s.undo(decision)
    assert _check(s)["disagreements"] == 1 and _check(s)["decided"] == 0
    s.add_label(ids[0], "label", 1, source="decision")
    assert (_check(s)["disagreements"], _check(s)["decided"]) == (0, 1)
    s.add_label(ids[0], "label", 0, annotator="bob")
    assert (_check(s)["disagreements"], _check(s)["decided"]) == (1, 0)
    # a scan that takes new content undoes every action of the image (source scan)
    s.replace_images([dict(id=ids[1], sha256="f" * 64, bytes=1, width=8, height=8, mtime_ns=1)])
    assert _check(s)["skipped"] == 0
    # forgetting moves rows out: the count drops though MAX(id) may not
    s.add_label(ids[5], "label", 1, annotator="cat")
    s.add_label(ids[4], "label", 2, annotator="cat")
    before = _check(s)
    s.forget_images([ids[0], ids[4]], still_missing=lambda r: True)
    after = _check(s)
    assert after["disagreements"] == 0 and after["labeled"] == before["labeled"] - 2
    # a revisit queues the skipped/unsure ones; labeling them changes the counts
    project.revisit()
    for it in project.batch():
        s.add_label(it["image_id"], "label", 0, annotator="ann")
    assert _check(s)["unsure"] == 0
    # many images at once (an import): reread whole
    s.add_labels([(i, "label", 1) for i in ids[6:]], source="import")
    _check(s)
    assert project.status()["labeled"] == s.label_counts()["labeled"]


def test_another_process_writes_and_a_rollback_are_seen_right(project):
    s = project.store
    ids = [r.id for r in s.images()]
    other = Store(project.dir / DB_NAME)  # another process's connection
    try:
        s.add_label(ids[0], "label", 0, annotator="ann")
        _check(s)
        other.add_label(ids[0], "label", 2, annotator="bob")
        other.add_label(ids[1], "skip")
        assert _check(s)["disagreements"] == 1
        other.forget_images([ids[1]], still_missing=lambda r: True)
        assert _check(s)["skipped"] == 0
        # inside a write transaction that is rolled back, a state is read but not kept:
        # the id the rolled-back row had is given again, to a different action
        with pytest.raises(RuntimeError), s.transaction() as c:
            c.execute(
                "INSERT INTO labels (image_id, kind, class_id, source, created) "
                "VALUES (?, 'label', 1, 'human', 0)",
                (ids[2],),
            )
            assert s.current()[ids[2]][2] == 1
            raise RuntimeError
        other.add_label(ids[2], "label", 0)
        assert _check(s)["per_class"] == {0: 1, 2: 1}
    finally:
        other.close()
