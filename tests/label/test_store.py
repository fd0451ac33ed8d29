"""The SQLite store: history rule, undo, concurrent writers, durability settings."""

from __future__ import annotations

import threading

import pytest

from fishermask.errors import ConfigError
from fishermask.label.store import SCHEMA_VERSION, Store
from tests.label.conftest import make_store


@pytest.fixture
def store(tmp_path):
    s = make_store(tmp_path / "p.sqlite", 20)
    yield s
    s.close()


def test_wal_and_full_sync(store):
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"
    assert store.query("PRAGMA synchronous")[0][0] == 2  # FULL


def test_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not a labeling project"):
        Store(tmp_path / "nope.sqlite")


def test_latest_action_wins_and_history_is_kept(store):
    first = store.add_label(1, "label", 0)
    second = store.add_label(1, "label", 1)
    assert store.current_labels() == {1: 1}
    assert [r.id for r in store.history(1)] == [first, second]
    store.add_label(2, "skip")
    assert store.current()[2][1] == "skip"
    assert 2 not in store.current_labels()


def test_undo_falls_back_to_the_previous_action(store):
    a = store.add_label(3, "label", 0)
    b = store.add_label(3, "label", 1)
    store.undo(b)
    assert store.current_labels() == {3: 0}
    store.undo(a)
    assert 3 not in store.current()
    assert store.undo(a) == store.undo(a)  # undoing twice adds nothing
    assert len(store.history(3)) == 4  # two labels, two undos: nothing deleted
    with pytest.raises(ConfigError):
        store.undo(99999)


def test_two_writers_lose_nothing(store, tmp_path):
    other = Store(tmp_path / "p.sqlite")  # a second connection, as a second process would
    ids: list[int] = []
    lock = threading.Lock()

    def write(s: Store, images: range) -> None:
        for i in images:
            got = s.add_label(i, "label", i % 2)
            with lock:
                ids.append(got)

    threads = [
        threading.Thread(target=write, args=(store, range(1, 11))),
        threading.Thread(target=write, args=(other, range(11, 21))),
        threading.Thread(target=write, args=(store, range(1, 11))),  # same images again
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 30
    assert sorted(r.id for r in store.history()) == sorted(ids)
    assert store.current_labels() == {i: i % 2 for i in range(1, 21)}
    other.close()


def test_one_round_at_a_time(store):
    from fishermask.label.store import RoundBusy

    r = store.start_round("entropy", None)
    with pytest.raises(RoundBusy):
        store.start_round("entropy", None)
    store.finish_round(r, status="done", queue=[(1, 0.5, [])])
    assert [q["image_id"] for q in store.queue()] == [1]
    store.start_round("entropy", None)


def test_a_finished_round_is_done_to_the_end_of_its_progress(store):
    """Training that stops early (99 % training accuracy before the epoch cap) left a done
    round at `done 219 / total 250` in `label status`; an interrupted one keeps where it was."""
    r = store.start_round("entropy", None)
    store.progress(r, "training on every label", 219, 250)
    store.finish_round(r, status="done", queue=[])
    assert (store.round(r)["done"], store.round(r)["total"]) == (250, 250)
    r = store.start_round("entropy", None)
    store.progress(r, "training on every label", 40, 250)
    store.finish_round(r, status="interrupted")
    assert (store.round(r)["done"], store.round(r)["total"]) == (40, 250)


def test_a_project_from_a_newer_version_is_refused(tmp_path):
    """A newer fishermask may store what this one would misread (e.g. ids it must not reuse):
    opening such a project stops with one line instead of changing it."""
    path = tmp_path / "project.sqlite"
    s = Store(path, create=True)
    s.set_meta({"schema_version": SCHEMA_VERSION + 1})
    s.close()
    with pytest.raises(ConfigError, match=r"written by a newer fishermask .* upgrade fishermask"):
        Store(path)
    s = Store(path, create=True)  # back at this version: it opens
    s.set_meta({"schema_version": SCHEMA_VERSION})
    s.close()
    Store(path).close()


def test_held_out_predictions_are_stored_with_the_estimate_and_added_to_older_projects(store):
    rid = store.start_round("random", None)
    store.finish_round(rid, status="done")
    store.set_estimate(rid, {"accuracy": 0.5}, [(3, 0, 0, 0.91), (4, 1, 0, 0.6)], phase="done")
    assert store.round(rid)["metrics"] == {"accuracy": 0.5}
    assert store.held_out(rid) == [(3, 0, 0, 0.91), (4, 1, 0, 0.6)]
    store.set_estimate(rid, {"accuracy": 1.0}, [(5, 1, 1, 0.7)], phase="done")  # replaced
    assert store.held_out(rid) == [(5, 1, 1, 0.7)]
    # a project written before the table existed gets it (empty) when opened
    store.query("DROP TABLE held_out")
    path = store.path
    store.close()
    again = Store(path)
    try:
        assert again.held_out(rid) == []
    finally:
        again.close()


def test_a_column_a_later_schema_adds_does_not_break_reading(project):
    """A newer fishermask may add columns to the project's tables (as schema 2 added
    ``labels.annotator``) while this version has the project open: rows with fixed fields are
    read by column name, so they still read (``history()`` used to raise TypeError)."""
    from fishermask.label.project import Project

    s = project.store
    ids = [r.id for r in s.images()]
    s.add_label(ids[0], "label", 1, annotator="ann")
    for table in ("images", "labels", "rounds"):
        s.query(f"ALTER TABLE {table} ADD COLUMN future TEXT DEFAULT 'x'")
    s.query("UPDATE labels SET future = 'later' WHERE id = 1")
    p = Project(project.dir)
    try:
        st = p.store
        assert [r.id for r in st.images()] == ids and st.image(ids[0]).id == ids[0]
        assert [(r.image_id, r.annotator) for r in st.history()] == [(ids[0], "ann")]
        assert len(st.history(ids[0])) == 1
        st.undo(st.add_label(ids[1], "skip"))
        assert [r.kind for r in st.history()] == ["label", "skip", "undo"]
        assert st.rounds() and "future" not in st.rounds()[0]
        assert p.status()["labeled"] == 1
        gone = st.forget_images([ids[0]], still_missing=lambda r: True)
        assert [g["id"] for g in gone] == [ids[0]]
    finally:
        p.close()
