"""A labeling team: annotators' tokens, attribution, disagreements, own-undo, and the schema 1
-> 2 migration of a project written by the code before annotators existed."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from fishermask.errors import ConfigError
from fishermask.label.store import (
    SCHEMA_SINCE,
    SCHEMA_VERSION,
    BatchNotDone,
    NotYours,
    RoundBusy,
    Store,
)
from tests.label.conftest import make_folder, make_store

DATA = Path(__file__).parent / "data"


def _run(*args):
    from typer.testing import CliRunner

    from fishermask.cli import app

    return CliRunner().invoke(app, ["label", *[str(a) for a in args]])


# -- the migration -----------------------------------------------------------------------------
def _v1_project(tmp_path: Path) -> Path:
    """The project that main's code before schema 2 wrote (tests/label/data/project_v1.sql,
    a dump of it: 6 images, image 1 labeled red from a tab, image 2 labeled then undone, image
    3 skipped, image 4 imported as green), over the same images made again here."""
    folder = make_folder(tmp_path / "images", per_class=2)
    proj = tmp_path / "v1"
    proj.mkdir()
    con = sqlite3.connect(proj / "project.sqlite")
    con.executescript((DATA / "project_v1.sql").read_text())
    con.execute(
        "UPDATE meta SET value = ? WHERE key = 'image_root'", (json.dumps(str(folder.resolve())),)
    )
    con.commit()
    con.close()
    return proj


def test_a_schema_1_project_is_migrated_with_its_history(tmp_path):
    proj = _v1_project(tmp_path)
    con = sqlite3.connect(proj / "project.sqlite")
    before = con.execute("SELECT * FROM labels ORDER BY id").fetchall()
    assert "annotator" not in {r[1] for r in con.execute("PRAGMA table_info(labels)")}
    con.close()

    s = Store(proj / "project.sqlite")
    assert SCHEMA_VERSION == 4 and s.get_meta("schema_version") == 4  # through 2 and 3
    rows = s.history()
    assert [(r.id, r.image_id, r.kind, r.class_id, r.undoes, r.source, r.client) for r in rows] == [
        r[:7] for r in before
    ]
    assert all(r.annotator is None for r in rows)  # the owner's
    assert s.current() == {1: (1, "label", 0), 3: (4, "skip", None), 4: (5, "label", 1)}
    assert [r["started_by"] for r in s.rounds()] == [None]  # who started it: not recorded
    s.add_label(2, "label", 2, annotator="alice")
    assert s.history(2)[-1].annotator == "alice"
    s.close()
    Store(proj / "project.sqlite").close()  # opened again: nothing left to migrate

    r = _run("status", proj)
    assert r.exit_code == 0, r.output
    st = json.loads(r.output)
    assert st["annotators"] == {
        "alice": {"labeled": 1, "skipped": 0, "unsure": 0},
        "owner": {"labeled": 2, "skipped": 1, "unsure": 0},
    }
    assert st["labeled"] == 3 and st["disagreements"] == 0


def test_two_processes_migrating_at_once_migrate_once(tmp_path, capfd):
    proj = _v1_project(tmp_path)
    a = Store(proj / "project.sqlite")
    assert "upgraded" in capfd.readouterr().err
    con = sqlite3.connect(proj / "project.sqlite")  # an old reader's view: version 4 now
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("4",)
    con.close()
    a._migrate(1)  # a second process that read version 1 before the first committed
    b = Store(proj / "project.sqlite")
    assert b.get_meta("schema_version") == 4
    assert capfd.readouterr().err == ""  # announced by the process that upgraded, once
    a.close()
    b.close()


def _v2_project(tmp_path: Path) -> Path:
    """The project that main's code before schema 3 wrote (tests/label/data/project_v2.sql,
    a dump of it: 6 images; round 1 the cold-start batch; alice labeled image 4 red, bob
    skipped image 1, the owner marked image 5 unsure; round 2 a revisit that queued images 1
    and 5), over the same images made again here."""
    folder = make_folder(tmp_path / "images", per_class=2)
    proj = tmp_path / "v2"
    proj.mkdir()
    con = sqlite3.connect(proj / "project.sqlite")
    con.executescript((DATA / "project_v2.sql").read_text())
    con.execute(
        "UPDATE meta SET value = ? WHERE key = 'image_root'", (json.dumps(str(folder.resolve())),)
    )
    con.commit()
    con.close()
    return proj


def test_a_schema_2_project_is_migrated_and_its_rounds_say_who_is_not_recorded(tmp_path):
    """Schema 3 records who started each round (rounds.started_by). The rounds a schema 2
    project holds were started by someone not recorded (an annotator could then), so they stay
    NULL, not the owner's; a round started after the upgrade records its starter."""
    proj = _v2_project(tmp_path)
    con = sqlite3.connect(proj / "project.sqlite")
    before = con.execute("SELECT * FROM rounds ORDER BY id").fetchall()
    labels = con.execute("SELECT * FROM labels ORDER BY id").fetchall()
    assert "started_by" not in {r[1] for r in con.execute("PRAGMA table_info(rounds)")}
    con.close()

    s = Store(proj / "project.sqlite")
    assert s.get_meta("schema_version") == 4
    rows = s.rounds()
    assert [(r["id"], r["strategy"], r["started_by"]) for r in rows] == [
        (1, "fishermask", None),
        (2, "revisit", None),
    ]
    after = s.query("SELECT * FROM rounds ORDER BY id")
    assert [tuple(r)[:-1] for r in after] == before  # the new column last, the rest as was
    assert [tuple(r) for r in s.query("SELECT * FROM labels ORDER BY id")] == labels
    assert s.batch_left() == 2  # the revisit batch: images 1 and 5, nobody on them since
    s.close()

    r = _run("status", proj)
    assert r.exit_code == 0, r.output
    st = json.loads(r.output)
    assert st["round"]["id"] == 2 and st["round"]["started_by"] is None
    assert st["queue_started_by"] is None and st["batch_left"] == 2
    r = _run("revisit", proj, "--unsure")  # the commands run as the owner
    assert r.exit_code == 0, r.output
    s = Store(proj / "project.sqlite")
    assert [r["started_by"] for r in s.rounds()] == [None, None, "owner"]
    s.close()


# -- the store ---------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    s = make_store(tmp_path / "p.sqlite", 5)
    yield s
    s.close()


def test_an_annotator_undoes_only_their_own_actions(store):
    alice = store.add_label(1, "label", 0, annotator="alice")
    bob = store.add_label(2, "label", 1, annotator="bob")
    owner = store.add_label(3, "skip")
    with pytest.raises(NotYours, match="given by alice, not bob"):
        store.undo(alice, annotator="bob")
    with pytest.raises(NotYours, match="given by the owner, not bob"):
        store.undo(owner, annotator="bob")
    assert len(store.history()) == 3  # nothing written
    u = store.undo(bob, annotator="bob")
    assert store.history()[-1].annotator == "bob" and store.history()[-1].undoes == bob
    store.undo(alice)  # the owner undoes anyone's
    assert store.current() == {3: (owner, "skip", None)} and u


def test_each_annotators_own_current_action(store):
    a1 = store.add_label(1, "label", 0, annotator="alice")
    b1 = store.add_label(1, "label", 1, annotator="bob")  # latest wins: image 1 is b
    a2 = store.add_label(2, "label", 0, annotator="alice")
    a2b = store.add_label(2, "label", 1, annotator="alice")  # alice corrected herself
    b3 = store.add_label(3, "label", 1, annotator="bob")
    store.undo(b3, annotator="bob")
    o4 = store.add_label(4, "unsure")
    assert store.current()[1] == (b1, "label", 1)
    assert store.current_by_annotator() == [
        (1, "alice", a1, "label", 0),
        (1, "bob", b1, "label", 1),
        (2, "alice", a2b, "label", 1),
        (4, None, o4, "unsure", None),
    ]
    assert a2 < a2b
    store.finish_round(
        store.start_round("x", None), status="done", queue=[(1, 0.5, []), (5, 0.1, [])]
    )
    assert store.queue_current() == {1: (b1, "label", 1, "bob")}


def test_a_round_records_who_started_it_and_an_annotator_waits_for_the_batch(store):
    """``require_batch_done`` (an annotator asks): refused while an image of the batch has no
    action since it was queued, checked in the transaction that starts the round; an undo
    makes an image to do again. The owner's round is never refused for it."""
    first = store.start_round("x", None, started_by="alice")  # no batch yet: nothing to lose
    store.finish_round(first, status="done", queue=[(1, 0.5, []), (2, 0.4, []), (3, 0.3, [])])
    assert store.batch_left() == 3
    with pytest.raises(BatchNotDone) as e:
        store.start_round("x", None, started_by="bob", require_batch_done=True)
    assert e.value.args == (3,)
    store.add_label(1, "label", 0, annotator="alice")
    store.add_label(2, "skip", annotator="bob")
    last = store.add_label(3, "unsure", annotator="bob")
    assert store.batch_left() == 0
    store.undo(last, annotator="bob")
    assert store.batch_left() == 1
    with pytest.raises(BatchNotDone):
        store.start_round("x", None, started_by="bob", require_batch_done=True)
    store.add_label(3, "label", 1, annotator="alice")
    r2 = store.start_round("x", None, started_by="bob", require_batch_done=True)
    with pytest.raises(RoundBusy):
        store.start_round("x", None, started_by="alice", require_batch_done=True)
    store.finish_round(r2, status="done", queue=[(4, 0.5, [])])
    r3 = store.start_round("x", None)  # the owner, over a batch not done
    assert [(r["id"], r["started_by"]) for r in store.rounds()] == [
        (first, "alice"),
        (r2, "bob"),
        (r3, "owner"),
    ]


def test_a_revisit_records_who_asked_and_an_annotator_waits_for_the_batch(store):
    store.finish_round(store.start_round("x", None), status="done", queue=[(1, 0.5, [])])
    skip = store.add_label(2, "skip", annotator="bob")  # not in the batch: set aside earlier
    with pytest.raises(BatchNotDone):
        store.queue_set_aside([skip], {}, mode="m", started_by="bob", require_batch_done=True)
    store.add_label(1, "label", 0, annotator="alice")
    rid, queued = store.queue_set_aside(
        [skip], {}, mode="m", started_by="bob", require_batch_done=True
    )
    assert queued == [2] and store.round(rid)["started_by"] == "bob"
    # the revisit batch: image 2, skipped before it was queued, is to do again
    assert store.batch_left() == 1
    rid2, _ = store.queue_set_aside([skip], {}, mode="m")  # the owner may
    assert store.round(rid2)["started_by"] == "owner"


def test_disagreements_and_counts():
    from fishermask.label import team

    rows = [
        (1, "alice", 1, "label", 0),
        (1, "bob", 2, "label", 1),
        (2, "alice", 3, "label", 0),
        (2, None, 4, "label", 0),  # agree
        (3, "alice", 5, "label", 0),
        (3, "bob", 6, "skip", None),  # a skip is not a label: no disagreement
    ]
    assert team.disagreements(rows) == {1: {"alice": 0, "bob": 1}}
    assert team.per_annotator(rows) == {
        "alice": {"labeled": 3, "skipped": 0, "unsure": 0},
        "bob": {"labeled": 1, "skipped": 1, "unsure": 0},
        "owner": {"labeled": 1, "skipped": 0, "unsure": 0},
    }


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("alice,,bob", "'' is not a name"),
        ("alice,al ice", "'al ice' is not a name"),
        ("alice,Owner", "'Owner' is the name of the owner's token"),
        ("alice,bob,alice", "names 'alice' twice; name each once"),
        # as typed: 'Alice' and 'alice', not the lower-case 'alice' named "twice"
        ("Alice,alice", "names one annotator twice: 'Alice' and 'alice' \\(names are compared"),
        ("alice,bob,Alice", "names one annotator twice: 'alice' and 'Alice'"),
        ("-x", "'-x' is not a name"),
    ],
)
def test_bad_annotator_names(text, msg):
    from fishermask.label.team import parse_annotators

    with pytest.raises(ConfigError, match=msg):
        parse_annotators(text)


def test_annotator_tokens_differ_and_follow_the_owners():
    from fishermask.label.team import annotator_token

    a, b = annotator_token("t1", "alice"), annotator_token("t1", "bob")
    assert a != b and len(a) == 32 and "t1" not in a
    assert annotator_token("t1", "alice") == a  # stable for a given owner token
    assert annotator_token("t2", "alice") != a


# -- the project and the commands --------------------------------------------------------------
def _team_labels(project) -> dict[str, int]:
    """alice and bob disagree on red/000 and agree on green/000; bob alone on blue/000; the
    owner (a command) labels red/001 and alice labels it differently afterwards."""
    ids = project.store.image_ids_by_path()
    s = project.store
    s.add_label(ids["red/000.png"], "label", 0, annotator="alice")
    s.add_label(ids["red/000.png"], "label", 2, annotator="bob")
    s.add_label(ids["green/000.png"], "label", 1, annotator="alice")
    s.add_label(ids["green/000.png"], "label", 1, annotator="bob")
    s.add_label(ids["blue/000.png"], "label", 2, annotator="bob")
    project.add_label_rows([("red/001.png", "red")], source="import", what="t")
    s.add_label(ids["red/001.png"], "label", 1, annotator="alice")
    return ids


def test_status_counts_per_annotator_and_disagreements(project):
    _team_labels(project)
    st = project.status()
    assert st["annotators"] == {
        "alice": {"labeled": 3, "skipped": 0, "unsure": 0},
        "bob": {"labeled": 3, "skipped": 0, "unsure": 0},
        "owner": {"labeled": 1, "skipped": 0, "unsure": 0},
    }
    assert st["disagreements"] == 2 and st["labeled"] == 4
    assert project.disagreements() == [
        {
            "image_id": project.store.image_ids_by_path()["red/000.png"],
            "path": "red/000.png",
            "current": "blue",
            "status": "open",
            "labels": {"alice": "red", "bob": "blue"},
        },
        {
            "image_id": project.store.image_ids_by_path()["red/001.png"],
            "path": "red/001.png",
            "current": "green",
            "status": "open",
            "labels": {"alice": "green", "owner": "red"},
        },
    ]


def test_a_disagreement_ends_when_one_side_changes(project):
    ids = _team_labels(project)
    bob = [r for r in project.store.history(ids["red/000.png"]) if r.annotator == "bob"][-1]
    project.store.undo(bob.id, annotator="bob")
    project.store.add_label(ids["red/001.png"], "label", 0, annotator="alice")
    assert project.status()["disagreements"] == 0 and project.disagreements() == []


def test_status_list_disagreements_csv_and_json(project):
    _team_labels(project)
    project.close()
    r = _run("status", project.dir, "--list", "disagreements")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "path,current,status,alice,bob,owner",
        "red/000.png,blue,open,red,blue,",
        "red/001.png,green,open,green,,red",
    ]
    r = _run("status", project.dir, "--list", "disagreements", "--format", "json")
    assert json.loads(r.stdout)[0] == {
        "path": "red/000.png",
        "current": "blue",
        "status": "open",
        "labels": {"alice": "red", "bob": "blue"},
    }


def test_status_list_disagreements_none_and_bad_input(project):
    project.close()
    r = _run("status", project.dir, "--list", "disagreements", "--format", "json")
    assert r.exit_code == 0 and r.stdout == "[]\n" and "no disagreements" in r.stderr
    r = _run("status", project.dir, "--list", "skipped,disagreements")
    assert r.exit_code == 2 and "list disagreements on their own" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_export_csv_with_an_annotator_column(project, tmp_path):
    _team_labels(project)
    project.close()
    out = tmp_path / "labels.csv"
    r = _run("export", project.dir, "--format", "csv", "--out", out, "--annotators")
    assert r.exit_code == 0, r.output
    assert list(csv.reader(io.StringIO(out.read_text()))) == [
        ["path", "label", "annotator", "decided"],
        ["blue/000.png", "blue", "bob", ""],
        ["green/000.png", "green", "bob", ""],
        ["red/000.png", "blue", "bob", ""],
        ["red/001.png", "green", "alice", ""],
    ]
    r = _run("export", project.dir, "--format", "csv", "--out", out)
    assert out.read_text().splitlines()[0] == "path,label"
    r = _run("export", project.dir, "--format", "npz", "--out", tmp_path / "x.npz", "--annotators")
    assert r.exit_code == 2 and "use --format csv --annotators" in r.output
    assert not (tmp_path / "x.npz").exists()


# -- Label Studio carries annotators ------------------------------------------------------------
def _who_labeled_what(project) -> dict[str, tuple[str, str]]:
    """``path -> (class, who gave the image's current label)`` of every labeled image."""
    return {path: (label, who) for path, label, who, _ in project.csv_rows(annotators=True)}


def test_labelstudio_export_import_keeps_who_labeled_what(project, tmp_path):
    from fishermask.label.project import Project
    from tests.label.conftest import CLASSES, TINY

    _team_labels(project)
    project.add_label_rows([("blue/001.png", "blue")], source="import", what="t")  # the owner's
    want = _who_labeled_what(project)
    assert want["red/001.png"] == ("green", "alice") and want["blue/001.png"] == ("blue", "owner")
    assert project.export("labelstudio", tmp_path / "ls.json") == project.store.num_images()
    tasks = {t["data"]["path"]: t for t in json.loads((tmp_path / "ls.json").read_text())}
    # the annotator under a key of ours, never in completed_by: Label Studio refuses a whole
    # import whose completed_by names an e-mail that is not one of its users'
    assert tasks["red/000.png"]["annotations"][0]["fishermask_annotator"] == "bob"
    assert all("completed_by" not in a for t in tasks.values() for a in t["annotations"])
    assert "fishermask_annotator" not in tasks["blue/001.png"]["annotations"][0]  # the owner's

    folder = Path(project.settings["image_root"])
    fresh = Project.init(tmp_path / "fresh", folder, ",".join(CLASSES), **TINY)
    try:
        r = _run("import", fresh.dir, "--labelstudio", tmp_path / "ls.json")
        assert r.exit_code == 0, r.output
        assert "5 labels" in r.output and "annotators named by the tasks: alice, bob" in r.output
        assert _who_labeled_what(fresh) == want
        # imported again: every label already so (same class, same annotator)
        assert _run("import", fresh.dir, "--labelstudio", tmp_path / "ls.json").output.startswith(
            "imported 0 labels (5 images already had that label)"
        )
    finally:
        fresh.close()


@pytest.mark.parametrize(
    ("completed_by", "who"),
    [
        ({"id": 3, "email": "carol@lab.example", "first_name": "", "last_name": ""}, "carol"),
        ({"email": "dave"}, "dave"),
        (7, "owner"),  # a Label Studio user id names nobody here
        ({"id": 7}, "owner"),
        ({"email": "owner"}, "owner"),
        ({"email": "not a name"}, "owner"),
        (None, "owner"),
    ],
)
def test_labelstudio_import_reads_completed_by(project, tmp_path, completed_by, who):
    ann = {"result": [{"type": "choices", "value": {"choices": ["blue"]}}]}
    if completed_by is not None:
        ann["completed_by"] = completed_by
    task = {"data": {"path": "red/002.png"}, "annotations": [ann]}
    (tmp_path / "ls.json").write_text(json.dumps([task]))
    rows = project.read_labelstudio(tmp_path / "ls.json", annotators=True)
    assert project.add_label_rows(rows, source="import", what="ls") == (1, 0)
    assert _who_labeled_what(project)["red/002.png"] == ("blue", who)


def test_labelstudio_import_of_an_unattributed_label_keeps_the_annotators(project, tmp_path):
    """A task that names nobody does not take an annotator's identical label away from them;
    one that names another annotator records theirs."""
    ids = project.store.image_ids_by_path()
    project.store.add_label(ids["red/002.png"], "label", 0, annotator="alice")
    base = {"data": {"path": "red/002.png"}}
    choice = [{"type": "choices", "value": {"choices": ["red"]}}]
    (tmp_path / "a.json").write_text(json.dumps([base | {"annotations": [{"result": choice}]}]))
    rows = project.read_labelstudio(tmp_path / "a.json", annotators=True)
    assert project.add_label_rows(rows, source="import", what="a") == (0, 1)
    (tmp_path / "b.json").write_text(
        json.dumps([base | {"annotations": [{"result": choice, "completed_by": {"email": "bob"}}]}])
    )
    rows = project.read_labelstudio(tmp_path / "b.json", annotators=True)
    assert project.add_label_rows(rows, source="import", what="b") == (1, 0)
    assert _who_labeled_what(project)["red/002.png"] == ("red", "bob")


def _v3_project(tmp_path: Path) -> Path:
    """The project that main's code before schema 4 wrote (tests/label/data/project_v3.sql, a
    dump of it: 6 images; the cold-start round; red/000, green/000 and blue/000 labeled with
    their folder's class; class blue renamed navy), over the same images made again here."""
    folder = make_folder(tmp_path / "images", per_class=2)
    proj = tmp_path / "v3"
    proj.mkdir()
    con = sqlite3.connect(proj / "project.sqlite")
    con.executescript((DATA / "project_v3.sql").read_text())
    con.execute(
        "UPDATE meta SET value = ? WHERE key = 'image_root'", (json.dumps(str(folder.resolve())),)
    )
    con.commit()
    con.close()
    return proj


def test_a_schema_3_project_is_migrated_with_no_class_removed(tmp_path):
    """Schema 4 marks removed classes (classes.removed): every class of an older project is
    current, keeps its id and name, and can be removed once its labels are gone."""
    proj = _v3_project(tmp_path)
    con = sqlite3.connect(proj / "project.sqlite")
    labels = con.execute("SELECT * FROM labels ORDER BY id").fetchall()
    assert "removed" not in {r[1] for r in con.execute("PRAGMA table_info(classes)")}
    con.close()

    s = Store(proj / "project.sqlite")
    assert s.get_meta("schema_version") == 4
    assert s.classes() == ["red", "green", "navy"] and s.removed_classes() == set()
    assert [tuple(r) for r in s.query("SELECT * FROM labels ORDER BY id")] == labels
    assert s.former_class_names() == {"blue": 2}
    s.close()
    r = _run("config", proj, "--remove-class", "navy")
    assert r.exit_code == 2 and "1 image still carries it" in r.stderr, r.output
    r = _run("config", proj, "--remove-class", "green")
    assert r.exit_code == 2 and "1 image still carries it" in r.stderr, r.output
    (proj / "fix.csv").write_text("path,label\nblue/000.png,red\n")
    assert _run("add", proj, proj / "fix.csv").exit_code == 0
    r = _run("config", proj, "--remove-class", "navy")
    assert r.exit_code == 0, r.output
    assert json.loads(_run("status", proj).stdout)["classes"] == ["red", "green"]


def test_a_fishermask_before_schema_4_refuses_a_project_it_would_misread(tmp_path, monkeypatch):
    """A reader of schema 3 would take a removed class for a current one (its key on the page,
    labels accepted, the cold start waiting for it): it refuses the project instead."""
    from fishermask.label import store as store_module

    proj = _v3_project(tmp_path)
    Store(proj / "project.sqlite").close()  # upgraded to 4
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 3)  # the check of a schema-3 reader
    with pytest.raises(ConfigError, match="written by a newer fishermask"):
        store_module.Store(proj / "project.sqlite")


def test_the_upgrade_is_announced_once_on_stderr(tmp_path, capfd):
    """Opening an older project upgraded it for good, silently: an older fishermask then
    refused it ('written by a newer fishermask') and nobody had been told why."""
    notice = (
        f"fishermask older than {SCHEMA_SINCE[4]} cannot open it any more (it "
        "refuses it: 'written by a newer fishermask')."
    )
    for old, make in ((1, _v1_project), (2, _v2_project), (3, _v3_project)):
        (tmp_path / str(old)).mkdir()
        db = make(tmp_path / str(old)) / "project.sqlite"
        Store(db).close()
        assert capfd.readouterr().err.splitlines() == [
            f"upgraded {db} from schema {old} to 4; {notice}"
        ]
        Store(db).close()  # upgraded already: nothing to say
        assert capfd.readouterr().err == ""
    # the command that opens it says so on stderr, its own output unchanged
    (tmp_path / "cli").mkdir()
    r = _run("status", _v1_project(tmp_path / "cli"))
    assert r.exit_code == 0, r.output
    assert f"from schema 1 to 4; {notice}" in r.stderr
    assert json.loads(r.stdout)["labeled"] == 2
