"""The labeling project's state: one SQLite database (standard library ``sqlite3``, WAL mode).

Tables: ``meta`` (the project settings as JSON values), ``classes`` (id, name, and since schema 4
when ``label config --remove-class`` removed it: a removed class keeps its id and name, so the
labels and history rows that carried it stay readable, and no class takes its id or name),
``images`` (path relative
to the image root, content hash, byte size, pixel size, the decode segment it belongs to),
``labels`` (an append-only history: every label, skip, unsure and undo with its source,
time and annotator), ``rounds`` (each retrain + query: strategy, model checkpoint, metrics,
progress; a ``revisit`` row, strategy ``revisit`` and no checkpoint, for each batch of skipped
or unsure images queued by ``label revisit``) and ``queue`` (the batch being labeled, with
scores and the model's guesses). Each round records the settings it ran with
(``rounds.settings``), and every change made by ``fishermask label config`` is a row of
``settings_history`` (``{key: [old, new]}``), so results stay traceable.
``forgotten_images`` keeps, for the record, every image that ``fishermask label scan
--forget-missing`` removed from the project (its row, its action when forgotten and its rows of
``labels`` as JSON). ``held_out`` keeps, per round whose accuracy was estimated, every held-out
prediction (image, its label, the class predicted by a model trained without it and that
class's probability), so ``fishermask label predict --min-prob P`` can say how accurate the
predictions at or above P were (a table added to older projects when they are opened; rounds
estimated before it have no rows). ``label_checks`` and ``check_probs`` keep each ``fishermask
label check`` (its time, folds, status and settings) and, per labeled image, the class
probabilities of the one model of the check that did not train on it, with the label row id the
image's label had (tables added to older projects when they are opened, as ``held_out``).
Image ids are never reused: a new image gets an id above
every image's, forgotten ones included, so an id held by a page or an export names one image
for good.

Annotators (``fishermask label serve --annotators``): ``labels.annotator`` names who gave each
action through the page; NULL is the owner (the owner's page and token, the commands, and
every row written before schema 2). Each annotator's own current action on an image is their
newest action on it that is not undone; the image's state is still the newest of all.
``rounds.started_by`` names who started each round or revisit: ``owner`` (the owner's token,
and the commands) or the annotator; NULL for rounds written before schema 3, when who asked
was not recorded (an annotator could start rounds then, so they are not all the owner's).

Rule for an image labeled more than once (two tabs, or a correction): every action is kept in
``labels``; the image's current state is its newest action that has not been undone (highest
row id, i.e. the last one committed). Undo appends an ``undo`` row naming the row it cancels,
so the state falls back to the action before it. Nothing is ever deleted, except that
forgetting an image moves its rows of ``labels`` (and ``images``) into ``forgotten_images``.

Derived state: the images' and annotators' current actions, and the counts the status shows,
are kept by each :class:`Store` between reads and brought up to date from the rows added since
(see :class:`_LabelState`), so a page polling the status does not reread every label row.
Rows with fixed fields (:class:`ImageRow`, :class:`LabelRow`, rounds) are read by column name,
so a column that a later schema adds does not break this version while it has a project open.

Every write is one transaction, committed (``synchronous=FULL``: the WAL is fsynced) before
the caller returns, so a label acknowledged to a client survives ``kill -9`` and an OS crash.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fishermask.errors import ConfigError, DataError
from fishermask.label.team import OWNER
from fishermask.text import did_you_mean

DB_NAME = "project.sqlite"
SCHEMA_VERSION = 4
# meta key: the files the last scan did not add, {path: [size, mtime_ns]} (label scan's
# bookkeeping, not a setting: left out of a round's recorded settings)
SCAN_REFUSED = "scan_refused"
#: The first fishermask that reads each schema, named in the notice an upgrade prints (the
#: version number stayed 0.1.0 when schemas 2 to 4 came, so the date of the change names it).
#: Schema 4 (``classes.removed``): an older fishermask would take a removed class for a
#: current one (a key on the page, labels accepted, a cold start waiting for it), so it must
#: refuse the project, as it does a newer schema.
SCHEMA_SINCE = {
    2: "0.1.0 of 2026-12-01 15:20 UTC",
    3: "0.1.0 of 2026-12-01 17:58 UTC",
    4: "0.1.0 of 2026-12-02 01:15 UTC",
}
#: Actions a labeling row can record (``label`` carries a class).
KINDS = ("label", "skip", "unsure", "undo")
SOURCES = ("human", "import", "scan", "decision")  # "scan": undone by `label scan
# --accept-changed`; "decision": the owner's deciding label of a disagreement (`label decide`,
# `label add --decide`, POST /api/labels with "decide"; see fishermask.label.team)
#: SQLite's integer range: an id outside it names no row (and must not reach SQLite, which
#: raises OverflowError for it).
_INT64 = range(-(2**63), 2**63)

# Images removed by `label scan --forget-missing`, kept for the record (id: the id it had).
_FORGOTTEN = """
CREATE TABLE IF NOT EXISTS forgotten_images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    added REAL NOT NULL,
    forgotten REAL NOT NULL,
    kind TEXT,
    class_id INTEGER,
    labels TEXT NOT NULL DEFAULT '[]'
)
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS classes (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, removed REAL
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL REFERENCES images(id),
    kind TEXT NOT NULL,
    class_id INTEGER REFERENCES classes(id),
    undoes INTEGER REFERENCES labels(id),
    source TEXT NOT NULL,
    client TEXT,
    created REAL NOT NULL,
    annotator TEXT
);
CREATE INDEX IF NOT EXISTS labels_image ON labels(image_id, id);
CREATE TABLE IF NOT EXISTS rounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    strategy TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT '',
    n_labels INTEGER NOT NULL DEFAULT 0,
    last_label_id INTEGER NOT NULL DEFAULT 0,
    checkpoint TEXT,
    metrics TEXT NOT NULL DEFAULT '{}',
    phase TEXT NOT NULL DEFAULT '',
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    pid_start TEXT,
    message TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    finished REAL,
    settings TEXT NOT NULL DEFAULT '{}',
    started_by TEXT
);
CREATE TABLE IF NOT EXISTS settings_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    changed REAL NOT NULL,
    changes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
    position INTEGER NOT NULL,
    image_id INTEGER PRIMARY KEY REFERENCES images(id),
    round_id INTEGER,
    score REAL,
    guesses TEXT NOT NULL DEFAULT '[]'
);
"""
# Held-out predictions of a round's accuracy estimate (each by a model trained without that
# image's label): the predicted class and its probability, and the label it is scored against.
_HELD_OUT = """
CREATE TABLE IF NOT EXISTS held_out (
    round_id INTEGER NOT NULL,
    image_id INTEGER NOT NULL,
    label INTEGER NOT NULL,
    pred INTEGER NOT NULL,
    prob REAL NOT NULL,
    PRIMARY KEY (round_id, image_id)
)
"""
# ``fishermask label check`` (fishermask.label.check): one row per check (``status`` running,
# done, failed or interrupted; ``settings``: the project settings it trained with; ``phase``,
# ``done``, ``total``: its progress; ``started_by``: who started it, NULL the owner), and per
# labeled image the out-of-fold class probabilities ``[C]`` (JSON) with the label row id and
# class the image had when the check read the labels, and its fold.
_CHECKS = """
CREATE TABLE IF NOT EXISTS label_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    folds INTEGER NOT NULL,
    n_labels INTEGER NOT NULL DEFAULT 0,
    last_label_id INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    pid_start TEXT,
    settings TEXT NOT NULL DEFAULT '{}',
    message TEXT NOT NULL DEFAULT '',
    started REAL NOT NULL,
    finished REAL,
    phase TEXT NOT NULL DEFAULT '',
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    started_by TEXT
);
CREATE TABLE IF NOT EXISTS check_probs (
    check_id INTEGER NOT NULL,
    image_id INTEGER NOT NULL,
    label_id INTEGER NOT NULL,
    label INTEGER NOT NULL,
    fold INTEGER NOT NULL,
    probs TEXT NOT NULL,
    PRIMARY KEY (check_id, image_id)
)
"""
_SCHEMA += _FORGOTTEN + ";" + _HELD_OUT + ";" + _CHECKS
#: The columns of ``label_checks`` added after its first version (a check started from the
#: page, its progress and who started it), added on open; an older fishermask ignores them.
_CHECK_PROGRESS = {
    "phase": "TEXT NOT NULL DEFAULT ''",
    "done": "INTEGER NOT NULL DEFAULT 0",
    "total": "INTEGER NOT NULL DEFAULT 0",
    "started_by": "TEXT",
}


# The current action of every image: its newest row that is not an undo and not undone.
_CURRENT = """
SELECT l.image_id, l.id, l.kind, l.class_id FROM labels l
JOIN (
    SELECT image_id, MAX(id) AS id FROM labels
    WHERE kind != 'undo' AND id NOT IN (SELECT undoes FROM labels WHERE kind = 'undo')
    GROUP BY image_id
) m ON l.id = m.id
"""


# Each image's current action (as _CURRENT) and each annotator's own current action on each
# image, with ``{where}``: a condition on the image id (restricted to a few images) or ``1``.
_CURRENT_ROWS = """
SELECT l.image_id, l.id, l.kind, l.class_id, l.annotator, l.source FROM labels l JOIN (
    SELECT MAX(id) AS id FROM labels
    WHERE ({where}) AND kind != 'undo'
        AND id NOT IN (SELECT undoes FROM labels WHERE kind = 'undo' AND ({where}))
    GROUP BY image_id{by}
) m ON l.id = m.id
"""
#: Above this many images touched since the cached state was read, it is read again whole.
_INCREMENTAL_MAX = 2000


class _LabelState:
    """The current actions derived from ``labels`` (images' and annotators' own), kept by
    :class:`Store` between reads, keyed on ``(MAX(id), COUNT(*))`` of ``labels``.

    Why that key names one content of the table: rows are only ever inserted (ids from
    AUTOINCREMENT, never reused, so every insert raises MAX(id)) or deleted (forgetting an
    image, which lowers COUNT(*) unless rows were also inserted, which raise MAX(id)); no row
    is ever updated. Rows inserted since the cached key (and no row deleted: the count grew by
    exactly the rows above the old MAX(id)) touch only their images, whose actions are read
    again through the labels' image index; any other change rereads the whole table.
    """

    def __init__(self) -> None:
        self.key: tuple[int, int] = (-1, -1)
        # image_id -> (label row id, kind, class_id)
        self.cur: dict[int, tuple[int, str, int | None]] = {}
        # image_id -> {annotator: (label row id, kind, class_id)}
        self.by: dict[int, dict[str | None, tuple[int, str, int | None]]] = {}
        # the images whose current action is the owner's decision (source "decision")
        self.decisions: set[int] = set()
        # of those, the owner's own current action before the decision (their newest that is
        # not undone and not a decision): the owner's side of the disagreement, if any
        self.opinion: dict[int, tuple[int, str, int | None]] = {}
        # the counts the status shows, kept with them: images by kind of current action,
        # labeled images by class id, annotators' own actions by kind, disagreeing images
        # (open: no decision is their current action; decided: one is)
        self.kinds: dict[str, int] = {}
        self.per_class: dict[int, int] = {}
        self.annotators: dict[str | None, dict[str, int]] = {}
        self.disagree: set[int] = set()
        self.decided: set[int] = set()

    def _count(self, image_id: int, sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) one image's part of the counts."""
        cur = self.cur.get(image_id)
        if cur is not None:
            self.kinds[cur[1]] = self.kinds.get(cur[1], 0) + sign
            if cur[1] == "label" and cur[2] is not None:
                self.per_class[cur[2]] = self.per_class.get(cur[2], 0) + sign
        for who, (_, kind, _) in self.by.get(image_id, {}).items():
            own = self.annotators.setdefault(who, {})
            own[kind] = own.get(kind, 0) + sign
        sides = self.sides(image_id).values()
        labels = {cid for _, kind, cid in sides if kind == "label" and cid is not None}
        if len(labels) > 1 and sign > 0:
            (self.decided if image_id in self.decisions else self.disagree).add(image_id)
        elif sign < 0:
            self.disagree.discard(image_id)
            self.decided.discard(image_id)

    def dispute(self, image_id: int) -> str | None:
        """The image's disagreement now: ``open`` (no decision is its current action),
        ``decided`` (the owner's decision is), or None (its annotators' labels do not differ)."""
        if image_id in self.disagree:
            return "open"
        return "decided" if image_id in self.decided else None

    def sides(self, image_id: int) -> dict[str | None, tuple[int, str, int | None]]:
        """Each annotator's own current action on the image as a side of a disagreement:
        their own current action, but on an image whose current action is the owner's
        decision, the owner's side is their action before it (:attr:`opinion`; none when
        they had none). A decision rules on the labels; it is not one of them, so the owner
        deciding a disagreement they were a side of leaves it decided, not gone."""
        by = self.by.get(image_id, {})
        if image_id not in self.decisions:
            return by
        out = {who: a for who, a in by.items() if who is not None}
        if image_id in self.opinion:
            out[None] = self.opinion[image_id]
        return out

    def load(self, c: sqlite3.Connection, images: Sequence[int] | None) -> None:
        """Read the actions of ``images`` (None: every image) again."""
        if images is None:
            self.cur, self.by, self.decisions, self.opinion = {}, {}, set(), {}
            self.kinds, self.per_class, self.annotators = {}, {}, {}
            self.disagree, self.decided = set(), set()
            chunks: list[Sequence[int]] = [()]
        else:
            for i in images:
                self._count(i, -1)
                self.cur.pop(i, None)
                self.by.pop(i, None)
                self.decisions.discard(i)
                self.opinion.pop(i, None)
            chunks = [images[k : k + 500] for k in range(0, len(images), 500)]
        for chunk in chunks:
            where = f"image_id IN ({', '.join('?' * len(chunk))})" if images is not None else "1"
            params = tuple(chunk) * 2
            for r in c.execute(_CURRENT_ROWS.format(where=where, by=""), params):
                self.cur[r["image_id"]] = (r["id"], r["kind"], r["class_id"])
                if r["source"] == "decision":
                    self.decisions.add(r["image_id"])
            sql = _CURRENT_ROWS.format(where=where, by=", COALESCE(annotator, '')")
            for r in c.execute(sql, params):
                self.by.setdefault(r["image_id"], {})[r["annotator"]] = (
                    r["id"],
                    r["kind"],
                    r["class_id"],
                )
            # the owner's side on the images they decided (undo rows of the owner's match the
            # same filter: only the owner undoes the owner's actions)
            mine = f"({where}) AND annotator IS NULL AND source != 'decision'"
            for r in c.execute(_CURRENT_ROWS.format(where=mine, by=""), params):
                if r["image_id"] in self.decisions:
                    self.opinion[r["image_id"]] = (r["id"], r["kind"], r["class_id"])
        for i in self.cur.keys() | self.by.keys() if images is None else images:
            self._count(i, 1)


@dataclass(frozen=True)
class ImageRow:
    id: int
    path: str
    sha256: str
    bytes: int
    width: int
    height: int
    mtime_ns: int
    segment: int
    added: float


@dataclass(frozen=True)
class LabelRow:
    id: int
    image_id: int
    kind: str
    class_id: int | None
    undoes: int | None
    source: str
    client: str | None
    created: float
    annotator: str | None = None  # None: the owner


# The columns read into rows with fixed fields, named (not ``SELECT *``): a column that a
# later schema adds must not break this version while it has the project open.
_IMAGE_COLS = ", ".join(f.name for f in fields(ImageRow))
_LABEL_COLS = ", ".join(f.name for f in fields(LabelRow))
_ROUND_COLS = (
    "id, status, strategy, mode, n_labels, last_label_id, checkpoint, metrics, phase, done, "
    "total, pid, pid_start, message, started, finished, settings, started_by"
)
# The images of the batch that nobody has acted on since it was queued (as Project.batch
# defines an item's state: a current action newer than the round's last_label_id).
_BATCH_LEFT = """
SELECT COUNT(*) AS n FROM queue q LEFT JOIN rounds r ON r.id = q.round_id
WHERE NOT EXISTS (
    SELECT 1 FROM labels l WHERE l.image_id = q.image_id AND l.kind != 'undo'
        AND l.id > COALESCE(r.last_label_id, 0)
        AND l.id NOT IN (
            SELECT undoes FROM labels
            WHERE image_id = q.image_id AND kind = 'undo' AND undoes IS NOT NULL
        )
)
"""


def upgrade_notice(path: Path, old: int) -> str:
    """The line an upgrade from schema ``old`` prints (on stderr): a fishermask older than the
    first that reads :data:`SCHEMA_VERSION` cannot open the project any more."""
    since = SCHEMA_SINCE.get(SCHEMA_VERSION, f"the first that reads schema {SCHEMA_VERSION}")
    return (
        f"upgraded {path} from schema {old} to {SCHEMA_VERSION}; fishermask older than "
        f"{since} cannot open it any more (it refuses it: 'written by a newer fishermask')."
    )


def _unwritable(db: Path) -> str | None:
    """Why the database ``db`` or its folder cannot be written (a read-only file system, no
    permission), or None when both can."""
    for path in (db.parent, db):
        if path.exists() and not os.access(path, os.W_OK):
            try:
                if os.statvfs(path).f_flag & os.ST_RDONLY:
                    return "it is on a read-only file system"
            except OSError:
                pass
            return f"no permission to write {path}"
    return None


def _recorded_settings(c: sqlite3.Connection) -> dict[str, Any]:
    """The settings a round or check records as it starts (read in its transaction ``c``):
    the meta table less label scan's bookkeeping (:data:`SCAN_REFUSED`)."""
    return {
        r["key"]: json.loads(r["value"])
        for r in c.execute("SELECT * FROM meta")
        if r["key"] != SCAN_REFUSED
    }


class Store:
    """Thread-safe access to one project database (one connection, one lock per process)."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ConfigError(
                f"{self.path.parent} is not a labeling project (no {DB_NAME}); create one with "
                "`fishermask label init PROJECT --images DIR --classes a,b,...`."
            )
        self._lock = threading.RLock()
        self._writing = 0  # depth of this process's write transactions (see transaction())
        self._state = _LabelState()
        self._conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:  # not SQLite at all (a copy cut short, another file)
            self._conn.close()
            if (why := _unwritable(self.path)) is not None:
                # not damaged: WAL mode writes beside the database even to read it, and
                # 'restore it from a backup' would send the user after a good database
                raise ConfigError(
                    f"{self.path.parent} cannot be written ({why}), and the project database "
                    f"(SQLite in WAL mode) needs to write {DB_NAME} and its -wal and -shm files "
                    "beside it, even to read it; make the folder writable, or copy the project "
                    "folder to a place you can write and use the copy."
                ) from None
            raise DataError(
                f"{self.path} is not a readable project database ({exc}); restore it from a "
                "backup, or create a new project with `fishermask label init`."
            ) from None
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=30000")
        if create:
            with self.transaction() as c:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (json.dumps(SCHEMA_VERSION),),
                )
            version = self.get_meta("schema_version", SCHEMA_VERSION)
            if isinstance(version, int) and version < SCHEMA_VERSION:
                self._migrate(version)  # a database an interrupted `label init` left older
        else:
            self._upgrade()

    def _upgrade(self) -> None:
        """Add what older projects lack (settings history, forgotten images); refuse a project
        whose schema is newer than this version knows (it would misread or damage it)."""
        try:
            rows = self.query("SELECT value FROM meta WHERE key = 'schema_version'")
        except sqlite3.OperationalError:  # no meta table: not a project (checked below)
            rows = []
        version = json.loads(rows[0]["value"]) if rows else SCHEMA_VERSION
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            self.close()
            raise ConfigError(
                f"{self.path.parent} was written by a newer fishermask (project schema "
                f"{version!r}, this version reads up to {SCHEMA_VERSION}); upgrade fishermask "
                "to open it."
            )
        cols = {r["name"] for r in self.query("PRAGMA table_info(rounds)")}
        have = {
            r["name"]
            for r in self.query(
                "SELECT name FROM sqlite_master WHERE name IN "
                "('settings_history', 'forgotten_images', 'held_out', 'label_checks', "
                "'check_probs')"
            )
        }
        check_cols = {r["name"] for r in self.query("PRAGMA table_info(label_checks)")}
        if (
            "settings" not in cols
            or "pid_start" not in cols
            or len(have) != 5
            or not set(_CHECK_PROGRESS) <= check_cols
        ):
            self._add_missing_tables()
        if version < SCHEMA_VERSION:
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        """Upgrade the schema from ``version`` step by step (:data:`_MIGRATIONS`, keyed on the
        version each step upgrades from), each step and its new version in one transaction;
        another process that upgraded first is seen inside the transaction and left alone."""
        first = None  # the version this process upgraded from, if it upgraded
        while version < SCHEMA_VERSION:
            with self.transaction() as c:
                row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                now = json.loads(row["value"]) if row else version
                if now == version:
                    _MIGRATIONS[version](c)
                    now = version + 1
                    c.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                        (json.dumps(now),),
                    )
                    first = version if first is None else first
            version = now
        if first is not None:  # said once: by the process that upgraded, when it did
            print(upgrade_notice(self.path, first), file=sys.stderr, flush=True)

    def _add_missing_tables(self) -> None:
        """Additions of schema 1 that need no version change (older readers ignore them)."""
        with self.transaction() as c:
            cols = {r["name"] for r in c.execute("PRAGMA table_info(rounds)")}
            if "settings" not in cols:
                c.execute("ALTER TABLE rounds ADD COLUMN settings TEXT NOT NULL DEFAULT '{}'")
            if "pid_start" not in cols:
                c.execute("ALTER TABLE rounds ADD COLUMN pid_start TEXT")
            c.execute(
                "CREATE TABLE IF NOT EXISTS settings_history (id INTEGER PRIMARY KEY "
                "AUTOINCREMENT, changed REAL NOT NULL, changes TEXT NOT NULL)"
            )
            c.execute(_FORGOTTEN)
            c.execute(_HELD_OUT)
            for stmt in _CHECKS.split(";"):
                c.execute(stmt)
            # a check table of the first `label check` (no progress): its progress columns
            have = {r["name"] for r in c.execute("PRAGMA table_info(label_checks)")}
            for name, decl in _CHECK_PROGRESS.items():
                if name not in have:
                    c.execute(f"ALTER TABLE label_checks ADD COLUMN {name} {decl}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction, committed on exit, rolled back on error,
        a failed COMMIT (disk full, I/O error) included: its rows must not stay visible to
        this process's reads, nor the connection stay inside the transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._writing += 1
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                self._writing -= 1

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads that see one state of the database: every query inside reads the snapshot its
        first one took (a deferred read transaction), whatever other processes commit
        meanwhile. Holds this process's lock, so keep it short and write nothing inside."""
        with self._lock:
            if self._conn.in_transaction:  # nested: the outer snapshot already holds one
                yield
                return
            self._conn.execute("BEGIN DEFERRED")
            try:
                yield
            finally:
                self._conn.execute("COMMIT")  # read only: nothing to write

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def refuse_while_checking(self) -> None:
        """:class:`CheckRunning` while a label check runs in a live process (read only: a
        caller about to stop something for a round asks first)."""
        with self._lock:
            _check_no_check(self._conn)

    # -- settings ---------------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def meta(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.query("SELECT * FROM meta")}

    def set_meta(self, values: dict[str, Any]) -> None:
        with self.transaction() as c:
            for k, v in values.items():
                c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))

    def change_settings(
        self,
        values: dict[str, Any],
        classes: Callable[[list[str], dict[str, int]], list[str]] | None = None,
        remove: Sequence[str] = (),
    ) -> dict[str, list[Any]]:
        """Write new setting values and their history row in one transaction.

        ``classes``: given the current class names and :meth:`former_class_names` (read in
        the transaction), returns the new class list (each class keeps its id: names may
        change, classes may be appended; raises to write nothing); the change is recorded as
        ``"classes": [old names, new names]`` (every class by id, removed ones included, so
        the positions stay the ids). ``remove``: names of current classes to mark removed
        (:meth:`_remove_classes`: refused unless no current label carries them and 2 classes
        stay), recorded as ``"removed_classes": [removed names before, after]``. Refused
        (:class:`RoundBusy`) while a round is running: that round recorded the settings it
        started with, and its worker reads them, so they may not change under it; a removal is
        also refused (:class:`CheckRunning`) while a label check runs (it scores the classes
        of one moment). Returns ``{key: [old, new]}`` of the values that differ (nothing is
        written when none do).
        """
        with self.transaction() as c:
            busy = c.execute("SELECT id FROM rounds WHERE status = 'running'").fetchone()
            if busy is not None:
                raise RoundBusy(int(busy["id"]))
            if remove:
                _check_no_check(c)
            old = {r["key"]: json.loads(r["value"]) for r in c.execute("SELECT * FROM meta")}
            diff = {k: [old.get(k), v] for k, v in values.items() if old.get(k) != v}
            for k, (_, v) in diff.items():
                c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))
            if classes is not None:
                was = [r["name"] for r in c.execute("SELECT name FROM classes ORDER BY id")]
                new = classes(was, self._former_class_names(c, was))
                if new[: len(was)] != was or len(new) > len(was):
                    if len(new) < len(was):  # the callers never remove one; guard the ids
                        raise ValueError("classes can be renamed or added, not removed")
                    # no name is reused (the caller checks), so no UNIQUE conflict midway
                    for i, name in enumerate(new):
                        if i >= len(was):
                            c.execute("INSERT INTO classes (id, name) VALUES (?, ?)", (i, name))
                        elif name != was[i]:
                            c.execute("UPDATE classes SET name = ? WHERE id = ?", (name, i))
                    diff["classes"] = [was, new]
            if remove:
                diff["removed_classes"] = self._remove_classes(c, remove, self.path.parent)
            if diff:
                c.execute(
                    "INSERT INTO settings_history (changed, changes) VALUES (?, ?)",
                    (time.time(), json.dumps(diff)),
                )
        return diff

    def change_root(
        self, old: str, values: dict[str, Any], mtimes: Iterable[tuple[int, int]]
    ) -> dict[str, list[Any]]:
        """Point the project at its image folder's new place (``label config --images``): the
        meta ``values`` (``image_root``, ``image_root_rel``), the modification times of the
        files checked there (``(image id, mtime_ns)``: the same content, so the next scan does
        not hash them again) and a ``settings_history`` row, in one transaction: a kill leaves
        the old folder or the new one, never a mix. Refused (:class:`RoundBusy`) while a round
        runs (its worker decodes the images from the folder it started with) and
        (:class:`CheckRunning`) while a label check runs; :class:`RootChanged` when the image
        folder is no longer ``old`` (another process changed it since the caller checked)."""
        with self.transaction() as c:
            busy = c.execute("SELECT id FROM rounds WHERE status = 'running'").fetchone()
            if busy is not None:
                raise RoundBusy(int(busy["id"]))
            _check_no_check(c)
            cur = {r["key"]: json.loads(r["value"]) for r in c.execute("SELECT * FROM meta")}
            if cur.get("image_root") != old:
                raise RootChanged(str(cur.get("image_root")))
            diff = {k: [cur.get(k), v] for k, v in values.items() if cur.get(k) != v}
            for k, (_, v) in diff.items():
                c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))
            c.executemany(
                "UPDATE images SET mtime_ns = ? WHERE id = ?", [(m, i) for i, m in mtimes]
            )
            if diff:
                c.execute(
                    "INSERT INTO settings_history (changed, changes) VALUES (?, ?)",
                    (time.time(), json.dumps(diff)),
                )
        return diff

    def settings_history(self) -> list[dict[str, Any]]:
        return [
            {"id": r["id"], "changed": r["changed"], "changes": json.loads(r["changes"])}
            for r in self.query("SELECT * FROM settings_history ORDER BY id")
        ]

    # -- classes ----------------------------------------------------------------------------
    def set_classes(self, names: Sequence[str]) -> None:
        with self.transaction() as c:
            for i, name in enumerate(names):
                c.execute("INSERT INTO classes (id, name) VALUES (?, ?)", (i, name))

    def classes(self) -> list[str]:
        """Every class's name by id (position = id), removed classes included."""
        return [r["name"] for r in self.query("SELECT name FROM classes ORDER BY id")]

    def removed_classes(self) -> set[int]:
        """The ids of the classes removed by ``label config --remove-class``."""
        return {r["id"] for r in self.query("SELECT id FROM classes WHERE removed IS NOT NULL")}

    @staticmethod
    def _remove_classes(
        c: sqlite3.Connection, names: Sequence[str], project: Path
    ) -> list[list[str]]:
        """Mark the current classes ``names`` removed (in ``c``'s transaction): each keeps its
        id and name (labels and history rows name it by id; no other class may take the name).
        One line (:class:`ConfigError`) and nothing written when one is not a current class,
        still carries current labels, or when fewer than 2 classes would stay. Returns
        ``[removed names before, after]``."""
        rows = c.execute("SELECT id, name, removed FROM classes ORDER BY id").fetchall()
        by_name = {r["name"]: r for r in rows}
        before = [r["name"] for r in rows if r["removed"] is not None]
        live = [r["name"] for r in rows if r["removed"] is None]
        per_class: dict[int, int] = {}
        for r in c.execute(_CURRENT):
            if r["kind"] == "label" and r["class_id"] is not None:
                per_class[r["class_id"]] = per_class.get(r["class_id"], 0) + 1
        ids = []
        for name in names:
            r = by_name.get(name)
            if r is None or r["removed"] is not None:
                said = (
                    f"--remove-class {name!r}: not one of the project's classes ({', '.join(live)})"
                )
                raise ConfigError(
                    f"{said} (it was removed already)."
                    if r is not None
                    else did_you_mean(f"{said}.", name, live)
                )
            n = per_class.get(r["id"], 0)
            if n:
                raise ConfigError(
                    f"--remove-class {name!r}: {n} image{'s' if n != 1 else ''} still "
                    f"{'carry' if n != 1 else 'carries'} it as {'their' if n != 1 else 'its'} "
                    f"label; relabel them first: `fishermask label status {project} --list "
                    f"labeled > labeled.csv`, change {name} in its label column, then "
                    f"`fishermask label add {project} labeled.csv`."
                )
            if r["id"] not in ids:
                ids.append(r["id"])
        if len(live) - len(ids) < 2:
            raise ConfigError(
                f"--remove-class {','.join(names)}: would leave "
                f"{len(live) - len(ids)} class{'es' if len(live) - len(ids) != 1 else ''}; a "
                "classifier needs at least 2 (add one with --add-class NAME)."
            )
        now = time.time()
        for i in ids:
            c.execute("UPDATE classes SET removed = ? WHERE id = ?", (now, i))
        name_of = {r["id"]: r["name"] for r in rows}
        after = before + [name_of[i] for i in ids]
        return [before, after]

    def former_class_names(self) -> dict[str, int]:
        """Every name a class had before a ``label config --rename-class`` (and no longer
        has), with that class's id (from ``settings_history``)."""
        with self.snapshot():
            return self._former_class_names(self._conn, self.classes())

    @staticmethod
    def _former_class_names(c: sqlite3.Connection, current: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in c.execute("SELECT changes FROM settings_history ORDER BY id"):
            change = json.loads(r["changes"]).get("classes")
            if change is None:
                continue
            for names in change:
                for i, name in enumerate(names):
                    if i >= len(current) or current[i] != name:
                        out.setdefault(name, i)
        return out

    # -- images -----------------------------------------------------------------------------
    def add_images(self, rows: Iterable[dict[str, Any]], segment: int) -> int:
        """Insert new images (dicts with path, sha256, bytes, width, height, mtime_ns).

        Their ids follow every id used before, forgotten images' included (never reused).
        """
        now = time.time()
        n = 0
        with self.transaction() as c:
            top = c.execute(
                "SELECT MAX((SELECT COALESCE(MAX(id), 0) FROM images), "
                "(SELECT COALESCE(MAX(id), 0) FROM forgotten_images)) AS m"
            ).fetchone()["m"]
            for r in rows:
                c.execute(
                    "INSERT INTO images (id, path, sha256, bytes, width, height, mtime_ns, "
                    "segment, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        int(top) + n + 1,
                        r["path"],
                        r["sha256"],
                        r["bytes"],
                        r["width"],
                        r["height"],
                        r["mtime_ns"],
                        segment,
                        now,
                    ),
                )
                n += 1
        return n

    def images(self) -> list[ImageRow]:
        """Every image, ordered by id (the order of the decoded image tensor)."""
        return [
            ImageRow(**dict(r)) for r in self.query(f"SELECT {_IMAGE_COLS} FROM images ORDER BY id")
        ]

    def copies(self) -> dict[int, int]:
        """``{image id: the first image with the same bytes}`` for every image whose file is
        a byte-for-byte copy of an image added before it (same SHA-256); empty without
        copies."""
        rows = self.query(
            "SELECT i.id AS id, f.first AS first FROM images i JOIN (SELECT sha256, MIN(id) AS "
            "first FROM images GROUP BY sha256 HAVING COUNT(*) > 1) f ON i.sha256 = f.sha256 "
            "WHERE i.id != f.first ORDER BY i.id"
        )
        return {int(r["id"]): int(r["first"]) for r in rows}

    def image(self, image_id: int) -> ImageRow | None:
        if image_id not in _INT64:
            return None
        rows = self.query(f"SELECT {_IMAGE_COLS} FROM images WHERE id = ?", (image_id,))
        return ImageRow(**dict(rows[0])) if rows else None

    def set_mtimes(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Record ``(image id, mtime_ns)`` of files touched without a change of content."""
        with self.transaction() as c:
            c.executemany("UPDATE images SET mtime_ns = ? WHERE id = ?", [(m, i) for i, m in pairs])

    def replace_images(
        self, updates: Sequence[dict[str, Any]]
    ) -> dict[int, tuple[str, int | None]]:
        """Take new content for images (dicts with id, sha256, bytes, width, height, mtime_ns)
        and clear their labels, in one transaction: every action of such an image that is not
        undone gets an ``undo`` row (source ``scan``), so it is unlabeled again; history kept.

        Returns ``image id -> (kind, class_id)`` of the current action each one had.
        """
        now = time.time()
        cleared: dict[int, tuple[str, int | None]] = {}
        with self.transaction() as c:
            current = {r["image_id"]: (r["kind"], r["class_id"]) for r in c.execute(_CURRENT)}
            for u in updates:
                c.execute(
                    "UPDATE images SET sha256 = ?, bytes = ?, width = ?, height = ?, "
                    "mtime_ns = ? WHERE id = ?",
                    (u["sha256"], u["bytes"], u["width"], u["height"], u["mtime_ns"], u["id"]),
                )
                live = c.execute(
                    "SELECT id FROM labels WHERE image_id = ? AND kind != 'undo' AND id NOT IN "
                    "(SELECT undoes FROM labels WHERE kind = 'undo' AND undoes IS NOT NULL) "
                    "ORDER BY id",
                    (u["id"],),
                ).fetchall()
                for row in live:
                    c.execute(
                        "INSERT INTO labels (image_id, kind, undoes, source, client, created) "
                        "VALUES (?, 'undo', ?, 'scan', NULL, ?)",
                        (u["id"], row["id"], now),
                    )
                if u["id"] in current:
                    cleared[u["id"]] = current[u["id"]]
        return cleared

    def move_images(
        self,
        moves: Sequence[tuple[int, str, int]],
        *,
        still_missing: Callable[[ImageRow], bool],
    ) -> list[tuple[ImageRow, str]]:
        """Give images a new path (``(id, new path, new mtime_ns)``; the content, so the size,
        is the same), in one transaction: their ids, labels, queue places and held-out folds
        stay. Only an image for which ``still_missing(row)`` holds, checked while the database
        is write-locked, moves, and only to a path no image has. Returns ``(row as it was, new
        path)`` per image moved."""
        out: list[tuple[ImageRow, str]] = []
        with self.transaction() as c:
            for image_id, path, mtime_ns in moves:
                r = c.execute(
                    f"SELECT {_IMAGE_COLS} FROM images WHERE id = ?", (image_id,)
                ).fetchone()
                if r is None or not still_missing(ImageRow(**dict(r))):
                    continue
                if c.execute("SELECT 1 FROM images WHERE path = ?", (path,)).fetchone():
                    continue
                c.execute(
                    "UPDATE images SET path = ?, mtime_ns = ? WHERE id = ?",
                    (path, mtime_ns, image_id),
                )
                out.append((ImageRow(**dict(r)), path))
        return out

    def image_ids_by_path(self) -> dict[str, int]:
        return {r["path"]: r["id"] for r in self.query("SELECT id, path FROM images")}

    def num_images(self) -> int:
        return int(self.query("SELECT COUNT(*) AS n FROM images")[0]["n"])

    def next_segment(self) -> int:
        """A segment number never used (forgotten images' segments included)."""
        return int(
            self.query(
                "SELECT MAX((SELECT COALESCE(MAX(segment), -1) FROM images), "
                "(SELECT COALESCE(MAX(segment), -1) FROM forgotten_images)) + 1 AS s"
            )[0]["s"]
        )

    def forget_images(
        self, ids: Sequence[int], *, still_missing: Callable[[ImageRow], bool]
    ) -> list[dict[str, Any]]:
        """Remove images from the project for good, in one transaction: each image's row and
        its rows of ``labels`` move to ``forgotten_images`` (for the record), and it leaves the
        queue (whose positions are renumbered 0, 1, ...). Only images for which
        ``still_missing(row)`` holds, checked while the database is write-locked, are removed.

        Refused (:class:`RoundBusy`) while a round is running (it decodes, trains and queries
        by image position), and (:class:`EveryImageForgotten`) when it would remove every image
        (a project without images cannot be opened).
        Returns, per image removed, ``{"id", "path", "segment", "kind", "class_id"}`` (its
        current action when it was forgotten; kind None when it had none).
        """
        now = time.time()
        out: list[dict[str, Any]] = []
        with self.transaction() as c:
            busy = c.execute("SELECT id FROM rounds WHERE status = 'running'").fetchone()
            if busy is not None:
                raise RoundBusy(int(busy["id"]))
            rows = []
            for i in dict.fromkeys(ids):
                r = c.execute(f"SELECT {_IMAGE_COLS} FROM images WHERE id = ?", (i,)).fetchone()
                if r is not None and still_missing(ImageRow(**dict(r))):
                    rows.append(ImageRow(**dict(r)))
            if not rows:
                return out
            total = int(c.execute("SELECT COUNT(*) AS n FROM images").fetchone()["n"])
            if len(rows) == total:
                raise EveryImageForgotten(f"all {total} images of the project would be forgotten")
            current = {r["image_id"]: (r["kind"], r["class_id"]) for r in c.execute(_CURRENT)}
            for r in rows:
                history = [
                    dict(h)
                    for h in c.execute(
                        "SELECT * FROM labels WHERE image_id = ? ORDER BY id", (r.id,)
                    )
                ]
                kind, class_id = current.get(r.id, (None, None))
                c.execute(
                    "INSERT INTO forgotten_images (id, path, sha256, bytes, width, height, "
                    "mtime_ns, segment, added, forgotten, kind, class_id, labels) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.id,
                        r.path,
                        r.sha256,
                        r.bytes,
                        r.width,
                        r.height,
                        r.mtime_ns,
                        r.segment,
                        r.added,
                        now,
                        kind,
                        class_id,
                        json.dumps(history),
                    ),
                )
                c.execute("DELETE FROM queue WHERE image_id = ?", (r.id,))
                c.execute("DELETE FROM labels WHERE image_id = ?", (r.id,))  # undo rows too
                c.execute("DELETE FROM images WHERE id = ?", (r.id,))
                out.append(
                    {
                        "id": r.id,
                        "path": r.path,
                        "segment": r.segment,
                        "kind": kind,
                        "class_id": class_id,
                    }
                )
            left = c.execute("SELECT image_id FROM queue ORDER BY position").fetchall()
            for pos, q in enumerate(left):
                c.execute("UPDATE queue SET position = ? WHERE image_id = ?", (pos, q["image_id"]))
        return out

    def forgotten_image(self, image_id: int) -> str | None:
        """The path of a forgotten image, by the id it had (None: not a forgotten image)."""
        if image_id not in _INT64:
            return None
        rows = self.query("SELECT path FROM forgotten_images WHERE id = ?", (image_id,))
        return str(rows[0]["path"]) if rows else None

    def forgotten(self) -> list[dict[str, Any]]:
        """The rows of ``forgotten_images`` (``labels`` decoded), by image id."""
        return [
            dict(r) | {"labels": json.loads(r["labels"])}
            for r in self.query("SELECT * FROM forgotten_images ORDER BY id")
        ]

    # -- labels -----------------------------------------------------------------------------
    def add_label(
        self,
        image_id: int,
        kind: str,
        class_id: int | None = None,
        *,
        source: str = "human",
        client: str | None = None,
        annotator: str | None = None,
        keep_others: bool = False,
    ) -> int:
        """Append one action (committed when this returns); returns its row id. ``annotator``:
        who gave it (None: the owner); ``keep_others``: as :meth:`add_labels`."""
        return self.add_labels(
            [(image_id, kind, class_id)],
            source=source,
            client=client,
            annotator=annotator,
            keep_others=keep_others,
        )[0]

    def add_labels(
        self,
        actions: Sequence[tuple[int, str, int | None]],
        *,
        source: str = "human",
        client: str | None = None,
        annotator: str | None = None,
        annotators: Sequence[str | None] | None = None,
        unless_after: int | None = None,
        keep_others: bool = False,
        unless_same: bool = False,
        same: list[int] | None = None,
    ) -> list[int]:
        """Append ``(image_id, kind, class_id)`` actions in one transaction, given by
        ``annotator`` (None: the owner), or each by its own of ``annotators`` when given.
        ``unless_after``: an action is left out when its image has a row after that label
        row id (someone labeled, skipped or undid it since the caller read the labels); the
        ids returned are those written. ``keep_others``: a skip or unsure on an image that
        someone else labeled (their own current action on it is a label) is refused
        (:class:`OthersLabel`), checked in the transaction that would write it (it would
        replace their label: latest wins). ``unless_same``: a label is left out when its
        image's current action is already that label by the same annotator from the same
        source (a repeat would only add a history row); ``same``, a list, receives the id of
        each such current row, read in the same transaction.

        An id that names no image (e.g. forgotten since the caller read it) is refused
        (:class:`ConfigError`) and nothing is written.
        """
        now = time.time()
        ids = []
        with self.transaction() as c:
            if annotators is not None and len(annotators) != len(actions):
                raise ValueError("one annotator per action")
            for k, (image_id, kind, class_id) in enumerate(actions):
                who = annotator if annotators is None else annotators[k]
                if c.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
                    raise ConfigError(
                        f"no image with id {image_id} (forgotten since it was read?); nothing "
                        "was written."
                    )
                if (
                    unless_after is not None
                    and c.execute(
                        "SELECT 1 FROM labels WHERE image_id = ? AND id > ? LIMIT 1",
                        (image_id, unless_after),
                    ).fetchone()
                ):
                    continue
                if keep_others and kind in ("skip", "unsure"):
                    _check_not_others_label(c, image_id, kind, who, self.path.parent)
                if unless_same and kind == "label":
                    now_row = c.execute(
                        _CURRENT_ROWS.format(where="image_id = ?", by=""), (image_id,) * 2
                    ).fetchone()
                    if now_row is not None and (
                        now_row["kind"],
                        now_row["class_id"],
                        now_row["annotator"],
                        now_row["source"],
                    ) == (kind, class_id, who, source):
                        if same is not None:
                            same.append(now_row["id"])
                        continue
                cur = c.execute(
                    "INSERT INTO labels (image_id, kind, class_id, source, client, created, "
                    "annotator) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (image_id, kind, class_id, source, client, now, who),
                )
                ids.append(int(cur.lastrowid))
        return ids

    def undo(
        self, label_id: int, *, client: str | None = None, annotator: str | None = None
    ) -> int:
        """Cancel action ``label_id`` (an undo row, recording ``annotator``); returns the undo
        row's id. An annotator may undo only their own actions (:class:`NotYours` otherwise);
        the owner (``annotator`` None) any."""
        if label_id not in _INT64:
            raise ConfigError(f"no label action with id {label_id} to undo.")
        with self.transaction() as c:
            row = c.execute("SELECT * FROM labels WHERE id = ?", (label_id,)).fetchone()
            if row is None or row["kind"] == "undo":
                raise ConfigError(f"no label action with id {label_id} to undo.")
            if annotator is not None and row["annotator"] != annotator:
                raise NotYours(
                    f"label action {label_id} was given by {row['annotator'] or 'the owner'}, "
                    f"not {annotator}: an annotator can undo only their own actions (the owner "
                    "can undo any)."
                )
            done = c.execute(
                "SELECT id FROM labels WHERE kind = 'undo' AND undoes = ?", (label_id,)
            ).fetchone()
            if done is not None:
                return int(done["id"])
            cur = c.execute(
                "INSERT INTO labels (image_id, kind, undoes, source, client, created, annotator) "
                "VALUES (?, 'undo', ?, 'human', ?, ?, ?)",
                (row["image_id"], label_id, client, time.time(), annotator),
            )
            # the action the image falls back to must not be a label of a removed class (the
            # undo of a relabel after `label config --remove-class`): rolled back, refused
            back = c.execute(
                _CURRENT_ROWS.format(where="image_id = ?", by=""), (row["image_id"],) * 2
            ).fetchone()
            if back is not None and back["kind"] == "label" and back["class_id"] is not None:
                gone = c.execute(
                    "SELECT name FROM classes WHERE id = ? AND removed IS NOT NULL",
                    (back["class_id"],),
                ).fetchone()
                if gone is not None:
                    raise ClassRemoved(
                        f"undoing label action {label_id} would give the image back its "
                        f"earlier label {gone['name']!r}, a class removed since (`label config "
                        "--remove-class`); nothing was undone: give it another class instead."
                    )
            return int(cur.lastrowid)

    def _label_state(self) -> _LabelState:
        """The current actions as committed now, read in one snapshot: the cached state when
        ``labels`` is unchanged since it was read, brought up to date otherwise (see
        :class:`_LabelState`). Inside a write transaction of this process (whose rows may yet
        be rolled back) a fresh state is read and not kept. Call it holding ``self._lock``."""
        if self._writing:
            fresh = _LabelState()
            fresh.load(self._conn, None)
            return fresh
        with self.snapshot():
            c = self._conn
            r = c.execute("SELECT COALESCE(MAX(id), 0) AS m, COUNT(*) AS n FROM labels").fetchone()
            key = (int(r["m"]), int(r["n"]))
            st = self._state
            if key == st.key:
                return st
            touched = None
            if st.key[0] >= 0 and key[0] >= st.key[0]:
                new = c.execute(
                    "SELECT COUNT(*) AS n, COUNT(DISTINCT image_id) AS i FROM labels WHERE id > ?",
                    (st.key[0],),
                ).fetchone()
                if key[1] - st.key[1] == new["n"] and new["i"] <= _INCREMENTAL_MAX:
                    touched = [
                        int(t["image_id"])
                        for t in c.execute(
                            "SELECT DISTINCT image_id FROM labels WHERE id > ?", (st.key[0],)
                        )
                    ]
            st.key = (-1, -1)  # not valid until loaded (an error below leaves it unusable)
            st.load(c, touched)
            st.key = key
            return st

    def current(self) -> dict[int, tuple[int, str, int | None]]:
        """``image_id -> (label row id, kind, class_id)`` for every image with a current action."""
        with self._lock:
            return dict(self._label_state().cur)

    def label_counts(self) -> dict[str, Any]:
        """What the status shows of the current actions, kept up to date with ``labels``:
        ``{"labeled", "skipped", "unsure", "per_class": {class_id: n}, "annotators": {name:
        {"labeled", "skipped", "unsure"}}, "disagreements": n, "decided": n}`` (the same as
        :func:`.team.per_annotator` and :func:`.team.disagreements` of
        :meth:`current_by_annotator`: the open disagreements, and those the owner decided,
        :meth:`decisions`)."""
        from fishermask.label.team import name_of

        with self._lock:
            st = self._label_state()
            ann = {
                name_of(who): {
                    "labeled": n.get("label", 0),
                    "skipped": n.get("skip", 0),
                    "unsure": n.get("unsure", 0),
                }
                for who, n in st.annotators.items()
                if any(n.values())
            }
            return {
                "labeled": st.kinds.get("label", 0),
                "skipped": st.kinds.get("skip", 0),
                "unsure": st.kinds.get("unsure", 0),
                "per_class": {c: n for c, n in st.per_class.items() if n},
                "annotators": dict(sorted(ann.items())),
                "disagreements": len(st.disagree),
                "decided": len(st.decided),
            }

    def disagreement(self, image_id: int) -> str | None:
        """Whether the image is a disagreement now: ``open``, ``decided`` (the owner's decision
        is its current action), or None (its annotators' labels do not differ)."""
        with self._lock:
            return self._label_state().dispute(image_id)

    def disputes(self, image_ids: Iterable[int]) -> dict[int, tuple[str, dict[str | None, int]]]:
        """Of ``image_ids``, those that are a disagreement now: ``image_id -> (status (open,
        decided), {annotator: class_id})``, the sides as :meth:`disagreement_sides` gives
        them (read from the cached state: the batch view asks on every poll)."""
        with self._lock:
            st = self._label_state()
            out = {}
            for i in image_ids:
                if (status := st.dispute(i)) is not None:
                    sides = {
                        who: cid
                        for who, (_, kind, cid) in st.sides(i).items()
                        if kind == "label" and cid is not None
                    }
                    out[i] = (status, sides)
            return out

    def decisions(self) -> set[int]:
        """The images whose current action is the owner's decision (a label of source
        ``decision``: :mod:`fishermask.label.team`)."""
        with self._lock:
            return set(self._label_state().decisions)

    @staticmethod
    def _by_rows(st: _LabelState) -> list[tuple[int, str | None, int, str, int | None]]:
        """Rows of :meth:`current_by_annotator` from a state, by image id then row id."""
        return sorted(
            (
                (image_id, who, lid, kind, cid)
                for image_id, d in st.by.items()
                for who, (lid, kind, cid) in d.items()
            ),
            key=lambda t: (t[0], t[2]),
        )

    def queue_current(self) -> dict[int, tuple[int, str, int | None, str | None]]:
        """``image_id -> (label row id, kind, class_id, annotator)``: :meth:`current` of the
        images in the batch only (read through the labels' image index, so a page can poll it)."""
        rows = self.query(
            "SELECT l.image_id, l.id, l.kind, l.class_id, l.annotator FROM labels l JOIN ("
            "SELECT image_id, MAX(id) AS id FROM labels WHERE image_id IN (SELECT image_id "
            "FROM queue) AND kind != 'undo' AND id NOT IN (SELECT undoes FROM labels WHERE "
            "kind = 'undo' AND image_id IN (SELECT image_id FROM queue)) GROUP BY image_id"
            ") m ON l.id = m.id"
        )
        return {r["image_id"]: (r["id"], r["kind"], r["class_id"], r["annotator"]) for r in rows}

    def disagreement_sides(self) -> list[tuple[int, str | None, int, str, int | None]]:
        """Rows as :meth:`current_by_annotator`, but on an image whose current action is the
        owner's decision, the owner's row is their action before it (or none): the sides of
        each disagreement, which :func:`.team.disagreements` reads (a decision is not a
        side, so a disagreement the owner was a side of stays there, decided)."""
        with self._lock:
            st = self._label_state()
            return sorted(
                (
                    (image_id, who, lid, kind, cid)
                    for image_id in st.by
                    for who, (lid, kind, cid) in st.sides(image_id).items()
                ),
                key=lambda t: (t[0], t[2]),
            )

    def current_by_annotator(self) -> list[tuple[int, str | None, int, str, int | None]]:
        """``(image_id, annotator, label row id, kind, class_id)``: each annotator's own current
        action on each image they acted on (their newest action on it that is not undone;
        annotator None: the owner), by image id then row id."""
        with self._lock:
            return self._by_rows(self._label_state())

    def set_aside(self, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """The images whose current action (as :meth:`current` defines it) is one of ``kinds``
        (``skip``, ``unsure``): ``{"image_id", "path", "label_id", "kind", "created"}`` each,
        the oldest action first. An image skipped and labeled later is labeled, not here."""
        bad = [k for k in kinds if k not in ("skip", "unsure")]
        if bad:
            raise ConfigError(f"kind {bad[0]!r}: images are set aside as skip or unsure.")
        if not kinds:
            return []
        rows = self.query(
            "SELECT l.image_id, i.path, l.id AS label_id, l.kind, l.created FROM labels l "
            f"JOIN images i ON i.id = l.image_id WHERE l.id IN (SELECT id FROM ({_CURRENT})) "
            f"AND l.kind IN ({', '.join('?' * len(kinds))}) ORDER BY l.id",
            tuple(kinds),
        )
        return [dict(r) for r in rows]

    def queue_set_aside(
        self,
        label_ids: Sequence[int],
        guesses: dict[int, list[dict[str, Any]]],
        *,
        mode: str,
        started_by: str = OWNER,
        require_batch_done: bool = False,
    ) -> tuple[int | None, list[int]]:
        """Make the images of these current skip/unsure actions the batch (a ``revisit`` round,
        committed ``done`` with its queue in one transaction, so every page sees a new batch),
        recording ``started_by`` (``owner`` or the annotator who asked).

        An action that is no longer its image's current one when the database is write-locked
        (the image was labeled, or the action undone, since it was read) is left out. Nothing is
        written when none is left. Refused (:class:`RoundBusy`) while a round is running: its
        batch would replace this one; with ``require_batch_done`` (an annotator asks), also
        while the batch shown has images nobody has acted on (:class:`BatchNotDone`), checked
        in the same transaction. Returns ``(round id or None, image ids queued)``.
        """
        with self.transaction() as c:
            busy = c.execute("SELECT id FROM rounds WHERE status = 'running'").fetchone()
            if busy is not None:
                raise RoundBusy(int(busy["id"]))
            if require_batch_done:
                _check_batch_done(c)
            current = {r["id"]: r for r in c.execute(_CURRENT)}
            keep = [
                int(current[i]["image_id"])
                for i in label_ids
                if i in current and current[i]["kind"] in ("skip", "unsure")
            ]
            if not keep:
                return None, []
            now = time.time()
            settings = _recorded_settings(c)
            n_labels = sum(r["kind"] == "label" for r in current.values())
            last = c.execute("SELECT COALESCE(MAX(id), 0) AS m FROM labels").fetchone()["m"]
            # last_label_id: the batch's state counts the actions after it (see Project.batch)
            cur = c.execute(
                "INSERT INTO rounds (status, strategy, mode, n_labels, last_label_id, phase, "
                "started, finished, settings, started_by) "
                "VALUES ('done', 'revisit', ?, ?, ?, 'done', ?, ?, ?, ?)",
                (mode, n_labels, int(last), now, now, json.dumps(settings), started_by),
            )
            round_id = int(cur.lastrowid)
            c.execute("DELETE FROM queue")
            for pos, image_id in enumerate(keep):
                c.execute(
                    "INSERT INTO queue VALUES (?, ?, ?, NULL, ?)",
                    (pos, image_id, round_id, json.dumps(guesses.get(image_id, []))),
                )
        return round_id, keep

    def current_labels(self) -> dict[int, int]:
        """``image_id -> class_id`` of every labeled image (skips and unsure left out)."""
        return {i: c for i, (_, k, c) in self.current().items() if k == "label"}

    def current_label_rows(self, kinds: Collection[str] = ("label",)) -> list[dict[str, Any]]:
        """Every labeled image with the action that gives its current label:
        ``{"image_id", "path", "label_id", "kind", "class_id", "annotator" (None: the owner),
        "source", "created"}``, read in one state of the database, by label row id (``kinds``:
        the images whose current action is one of these: a skip or unsure too). The rows
        are read by id from the cached current actions (:class:`_LabelState`), so a page
        browsing the labels does not rescan ``labels``."""
        out: list[dict[str, Any]] = []
        with self._lock, self.snapshot():
            st = self._label_state()
            ids = sorted(lid for lid, kind, cid in st.cur.values() if kind in kinds)
            for k in range(0, len(ids), 500):
                chunk = ids[k : k + 500]
                out += [
                    dict(r)
                    for r in self._conn.execute(
                        "SELECT l.image_id, i.path, l.id AS label_id, l.kind, l.class_id, "
                        "l.annotator, "
                        "l.source, l.created FROM labels l JOIN images i ON i.id = l.image_id "
                        f"WHERE l.id IN ({', '.join('?' * len(chunk))}) ORDER BY l.id",
                        chunk,
                    )
                ]
        return out

    def history(self, image_id: int | None = None) -> list[LabelRow]:
        if image_id is None:
            rows = self.query(f"SELECT {_LABEL_COLS} FROM labels ORDER BY id")
        else:
            rows = self.query(
                f"SELECT {_LABEL_COLS} FROM labels WHERE image_id = ? ORDER BY id", (image_id,)
            )
        return [LabelRow(**dict(r)) for r in rows]

    def label_row(self, label_id: int) -> LabelRow | None:
        """The action ``label_id`` (an undo row too), or None when no row has that id."""
        if label_id not in _INT64:
            return None
        rows = self.query(f"SELECT {_LABEL_COLS} FROM labels WHERE id = ?", (label_id,))
        return LabelRow(**dict(rows[0])) if rows else None

    def last_label_id(self) -> int:
        return int(self.query("SELECT COALESCE(MAX(id), 0) AS m FROM labels")[0]["m"])

    # -- rounds -----------------------------------------------------------------------------
    def batch_left(self) -> int:
        """How many images of the batch nobody has labeled, skipped or marked unsure since it
        was queued (the items of :meth:`Project.batch` whose state is None)."""
        return int(self.query(_BATCH_LEFT)[0]["n"])

    def start_round(
        self,
        strategy: str,
        pid: int | None,
        *,
        started_by: str = OWNER,
        require_batch_done: bool = False,
    ) -> int:
        """Record a running round started by ``started_by`` (``owner`` or an annotator).
        Refused (:class:`RoundBusy`) while one runs; with ``require_batch_done`` (an annotator
        asks), also while the batch shown has images nobody has acted on
        (:class:`BatchNotDone`), checked in the transaction that starts the round; and
        (:class:`CheckRunning`) while a ``label check`` runs in a live process."""
        with self.transaction() as c:
            busy = c.execute("SELECT id FROM rounds WHERE status = 'running'").fetchone()
            if busy is not None:
                raise RoundBusy(int(busy["id"]))
            _check_no_check(c)
            if require_batch_done:
                _check_batch_done(c)
            # the settings this round runs with, read in the transaction that starts it
            settings = _recorded_settings(c)
            cur = c.execute(
                "INSERT INTO rounds (status, strategy, pid, pid_start, started, phase, settings, "
                "started_by) VALUES ('running', ?, ?, ?, ?, 'starting', ?, ?)",
                (
                    settings.get("strategy", strategy),
                    pid,
                    process_identity(pid),
                    time.time(),
                    json.dumps(settings),
                    started_by,
                ),
            )
            return int(cur.lastrowid)

    def add_round_settings(self, round_id: int, values: dict[str, Any]) -> None:
        """Add ``values`` to the settings recorded for a round (e.g. what it imported)."""
        with self.transaction() as c:
            row = c.execute("SELECT settings FROM rounds WHERE id = ?", (round_id,)).fetchone()
            settings = json.loads(row["settings"]) if row is not None else {}
            c.execute(
                "UPDATE rounds SET settings = ? WHERE id = ?",
                (json.dumps(settings | values), round_id),
            )

    def set_round_pid(self, round_id: int, pid: int) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE rounds SET pid = ?, pid_start = ? WHERE id = ?",
                (pid, process_identity(pid), round_id),
            )

    def progress(self, round_id: int, phase: str, done: int, total: int, message: str = "") -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE rounds SET phase = ?, done = ?, total = ?, message = ? WHERE id = ?",
                (phase, done, total, message, round_id),
            )

    def finish_round(
        self,
        round_id: int,
        *,
        status: str,
        mode: str = "",
        n_labels: int = 0,
        last_label_id: int = 0,
        checkpoint: str | None = None,
        metrics: dict[str, Any] | None = None,
        queue: Sequence[tuple[int, float | None, list[dict[str, Any]]]] | None = None,
        message: str = "",
    ) -> None:
        """Close a round; with ``queue`` the current batch is replaced in the same transaction."""
        with self.transaction() as c:
            c.execute(
                # a finished round is done to the end of its bar: training that reached its
                # target accuracy early left it at the epochs run of the epoch cap (219 of 250)
                "UPDATE rounds SET status = ?, mode = ?, n_labels = ?, last_label_id = ?, "
                "checkpoint = ?, metrics = ?, phase = ?, message = ?, finished = ?, "
                "done = CASE WHEN ? = 'done' THEN total ELSE done END WHERE id = ?",
                (
                    status,
                    mode,
                    n_labels,
                    last_label_id,
                    checkpoint,
                    json.dumps(metrics or {}),
                    status,
                    message,
                    time.time(),
                    status,
                    round_id,
                ),
            )
            if queue is not None:
                c.execute("DELETE FROM queue")
                for pos, (image_id, score, guesses) in enumerate(queue):
                    c.execute(
                        "INSERT INTO queue VALUES (?, ?, ?, ?, ?)",
                        (pos, image_id, round_id, score, json.dumps(guesses)),
                    )

    def set_metrics(self, round_id: int, metrics: dict[str, Any], *, phase: str) -> None:
        """Replace a round's metrics (the accuracy estimate that follows a committed batch)."""
        with self.transaction() as c:
            c.execute(
                "UPDATE rounds SET metrics = ?, phase = ? WHERE id = ?",
                (json.dumps(metrics), phase, round_id),
            )

    def mark_not_estimated(self, round_id: int, method: str) -> bool:
        """A round whose estimate's process died: its metrics without ``estimating``, with
        ``method``, and its phase back to its status; read and written while write-locked,
        so an estimate committed since the caller looked (the process finished, then exited)
        is kept. Returns whether it wrote."""
        with self.transaction() as c:
            row = c.execute("SELECT metrics FROM rounds WHERE id = ?", (round_id,)).fetchone()
            metrics = json.loads(row["metrics"]) if row is not None else {}
            if not metrics.get("estimating"):
                return False
            metrics = {k: v for k, v in metrics.items() if k != "estimating"}
            metrics["method"] = method
            c.execute(  # its phase back to its status (the estimate's progress showed there)
                "UPDATE rounds SET metrics = ?, phase = status WHERE id = ?",
                (json.dumps(metrics), round_id),
            )
            return True

    def set_estimate(
        self,
        round_id: int,
        metrics: dict[str, Any],
        held_out: Sequence[tuple[int, int, int, float]],
        *,
        phase: str,
    ) -> None:
        """Write a finished accuracy estimate: the round's metrics and its held-out predictions
        (``(image_id, label, predicted class, its probability)`` each) in one transaction."""
        with self.transaction() as c:
            c.execute(
                "UPDATE rounds SET metrics = ?, phase = ? WHERE id = ?",
                (json.dumps(metrics), phase, round_id),
            )
            c.execute("DELETE FROM held_out WHERE round_id = ?", (round_id,))
            c.executemany(
                "INSERT INTO held_out VALUES (?, ?, ?, ?, ?)",
                [(round_id, i, y, p, float(q)) for i, y, p, q in held_out],
            )

    def held_out(self, round_id: int) -> list[tuple[int, int, int, float]]:
        """``(image_id, label, predicted class, its probability)`` of a round's estimate."""
        rows = self.query(
            "SELECT image_id, label, pred, prob FROM held_out WHERE round_id = ? ORDER BY image_id",
            (round_id,),
        )
        return [(r["image_id"], r["label"], r["pred"], r["prob"]) for r in rows]

    def rounds(self) -> list[dict[str, Any]]:
        out = []
        for r in self.query(f"SELECT {_ROUND_COLS} FROM rounds ORDER BY id"):
            d = dict(r)
            d["metrics"] = json.loads(d["metrics"])
            d["settings"] = json.loads(d["settings"])
            out.append(d)
        return out

    def round(self, round_id: int) -> dict[str, Any] | None:
        rows = [r for r in self.rounds() if r["id"] == round_id]
        return rows[0] if rows else None

    def running_round(self) -> dict[str, Any] | None:
        rows = [r for r in self.rounds() if r["status"] == "running"]
        return rows[-1] if rows else None

    def last_good_round(self, *, with_model: bool = False) -> dict[str, Any] | None:
        rows = [
            r
            for r in self.rounds()
            if r["status"] == "done" and (r["checkpoint"] or not with_model)
        ]
        return rows[-1] if rows else None

    def mark_interrupted(self, round_id: int) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE rounds SET status = 'interrupted', phase = 'interrupted', finished = ? "
                "WHERE id = ? AND status = 'running'",
                (time.time(), round_id),
            )

    # -- label checks (fishermask.label.check) ----------------------------------------------
    def start_check(
        self, folds: int, pid: int, *, started_by: str = OWNER
    ) -> tuple[int, int, dict[str, Any]]:
        """Record a running label check started by ``started_by`` (``owner`` or an annotator);
        returns ``(check id, the last label row id, the settings)``, read in the transaction
        that starts it. Refused (:class:`RoundBusy`) while a round is running and
        (:class:`CheckRunning`) while another check runs in a live process; a check whose
        process died is marked interrupted first."""
        with self.transaction() as c:
            busy = c.execute("SELECT id FROM rounds WHERE status = 'running'").fetchone()
            if busy is not None:
                raise RoundBusy(int(busy["id"]))
            _check_no_check(c)
            c.execute(
                "UPDATE label_checks SET status = 'interrupted', finished = ? "
                "WHERE status = 'running'",
                (time.time(),),
            )
            settings = _recorded_settings(c)
            last = c.execute("SELECT COALESCE(MAX(id), 0) AS m FROM labels").fetchone()["m"]
            cur = c.execute(
                "INSERT INTO label_checks (status, folds, last_label_id, pid, pid_start, "
                "settings, started, phase, started_by) VALUES ('running', ?, ?, ?, ?, ?, ?, "
                "'starting', ?)",
                (
                    folds,
                    int(last),
                    pid,
                    process_identity(pid),
                    json.dumps(settings),
                    time.time(),
                    None if started_by == OWNER else started_by,
                ),
            )
            return int(cur.lastrowid), int(last), settings

    def set_check_pid(self, check_id: int, pid: int) -> None:
        """Hand a running check over to process ``pid`` (``label serve``'s worker)."""
        with self.transaction() as c:
            c.execute(
                "UPDATE label_checks SET pid = ?, pid_start = ? WHERE id = ? AND status = "
                "'running'",
                (pid, process_identity(pid), check_id),
            )

    def check_progress(self, check_id: int, phase: str, done: int, total: int) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE label_checks SET phase = ?, done = ?, total = ? WHERE id = ? AND "
                "status = 'running'",
                (phase, done, total, check_id),
            )

    def check_row(self, check_id: int | None = None) -> dict[str, Any] | None:
        """A check's row (``id, status, folds, n_labels, last_label_id, pid, pid_start,
        settings, message, started, finished, phase, done, total, started_by``, the name
        ``owner`` for NULL); the newest check, whatever its status, when ``check_id`` is None;
        None when there is none."""
        sql = "SELECT * FROM label_checks " + (
            "WHERE id = ?" if check_id is not None else "ORDER BY id DESC LIMIT 1"
        )
        rows = self.query(sql, () if check_id is None else (check_id,))
        if not rows:
            return None
        r = dict(rows[0])
        return r | {"settings": json.loads(r["settings"]), "started_by": r["started_by"] or OWNER}

    def recover_checks(self) -> list[int]:
        """Mark the running checks whose process died (killed; a server stopped before it
        handed one over) as interrupted, in one transaction; returns their ids. Nothing of
        such a check was kept: its rows are written only with its end."""
        running = "SELECT id, pid, pid_start FROM label_checks WHERE status = 'running'"
        if all(pid_alive(r["pid"], r["pid_start"]) for r in self.query(running)):
            return []  # read only: the page asks every 1.5 s, no write lock for that
        out = []
        with self.transaction() as c:
            for r in c.execute(running).fetchall():
                if not pid_alive(r["pid"], r["pid_start"]):
                    c.execute(
                        "UPDATE label_checks SET status = 'interrupted', finished = ?, message = "
                        "? WHERE id = ?",
                        (time.time(), "its process stopped before it finished", r["id"]),
                    )
                    out.append(int(r["id"]))
        return out

    def finish_check(
        self,
        check_id: int,
        *,
        status: str,
        rows: Sequence[tuple[int, int, int, int, Sequence[float]]] = (),
        message: str = "",
    ) -> None:
        """Close a check; with ``status`` done, its rows ``(image_id, label_id, label, fold,
        probs [C])`` are written in the same transaction."""
        with self.transaction() as c:
            c.execute(
                "UPDATE label_checks SET status = ?, n_labels = ?, message = ?, finished = ? "
                "WHERE id = ?",
                (status, len(rows), message, time.time(), check_id),
            )
            c.executemany(
                "INSERT INTO check_probs VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (check_id, i, lid, y, f, json.dumps([round(float(q), 6) for q in p]))
                    for i, lid, y, f, p in rows
                ],
            )

    def latest_check(self) -> dict[str, Any] | None:
        """The latest finished (``done``) label check, or None."""
        rows = self.query(
            "SELECT id, status, folds, n_labels, last_label_id, settings, message, started, "
            "finished FROM label_checks WHERE status = 'done' ORDER BY id DESC LIMIT 1"
        )
        if not rows:
            return None
        return dict(rows[0]) | {"settings": json.loads(rows[0]["settings"])}

    def check_probs(self, check_id: int) -> list[dict[str, Any]]:
        """Each image of a check: ``{"image_id", "label_id", "label", "fold", "probs" [C]}``,
        by image id."""
        rows = self.query(
            "SELECT image_id, label_id, label, fold, probs FROM check_probs WHERE check_id = ? "
            "ORDER BY image_id",
            (check_id,),
        )
        return [dict(r) | {"probs": json.loads(r["probs"])} for r in rows]

    def queue(self) -> list[dict[str, Any]]:
        """The batch, in order, with each image's size as scanned (``width``, ``height``);
        ``since``: the last label row id when it was queued (its round's ``last_label_id``; 0
        when unknown)."""
        rows = self.query(
            "SELECT q.position, q.image_id, q.round_id, q.score, q.guesses, i.path, i.width, "
            "i.height, COALESCE(r.last_label_id, 0) AS since FROM queue q JOIN images i ON i.id = "
            "q.image_id LEFT JOIN rounds r ON r.id = q.round_id ORDER BY q.position"
        )
        return [dict(r) | {"guesses": json.loads(r["guesses"])} for r in rows]


def proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux ``/proc``), None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # exited, not yet reaped
        return None
    return fields[19]


def has_proc() -> bool:
    """Whether this system has Linux's ``/proc`` (macOS has not)."""
    return Path("/proc").is_dir()


def pid_alive(pid: int | None, identity: str | None = None) -> bool:
    """Whether process ``pid`` runs; with ``identity`` (:func:`process_identity` recorded when
    the round or check started), whether that same process still runs under this pid;
    without ``/proc`` (macOS, where no identity is recorded) by ``kill(pid, 0)``."""
    if not pid:
        return False
    if has_proc():
        if identity is not None:
            return process_identity(pid) == identity
        return proc_start(pid) is not None
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def process_identity(pid: int | None) -> str | None:
    """``"<boot id>:<start time>"`` of a live process (Linux), so that a pid reused by another
    process later (after a reboot, say) is not taken for the one that ran a round."""
    if not pid:
        return None
    start = proc_start(pid)
    if start is None:
        return None
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{boot}:{start}"


def _v1_to_v2(c: sqlite3.Connection) -> None:
    """Schema 1 -> 2: ``labels.annotator`` (who gave each action; NULL, the owner, for every
    row written before)."""
    if "annotator" not in {r["name"] for r in c.execute("PRAGMA table_info(labels)")}:
        c.execute("ALTER TABLE labels ADD COLUMN annotator TEXT")


def _v2_to_v3(c: sqlite3.Connection) -> None:
    """Schema 2 -> 3: ``rounds.started_by`` (who started each round or revisit; NULL, not
    recorded, for every round written before: annotators could start rounds then)."""
    if "started_by" not in {r["name"] for r in c.execute("PRAGMA table_info(rounds)")}:
        c.execute("ALTER TABLE rounds ADD COLUMN started_by TEXT")


def _v3_to_v4(c: sqlite3.Connection) -> None:
    """Schema 3 -> 4: ``classes.removed`` (when ``label config --remove-class`` removed the
    class; NULL for a current class, every class before)."""
    if "removed" not in {r["name"] for r in c.execute("PRAGMA table_info(classes)")}:
        c.execute("ALTER TABLE classes ADD COLUMN removed REAL")


#: Schema upgrades, keyed on the version each one upgrades from (applied in order on open).
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
}


def _check_no_check(c: sqlite3.Connection) -> None:
    """:class:`CheckRunning` while a label check runs in a live process (in ``c``'s
    transaction)."""
    for r in c.execute("SELECT id, pid, pid_start FROM label_checks WHERE status = 'running'"):
        if pid_alive(r["pid"], r["pid_start"]):
            raise CheckRunning(
                f"a label check is running (check {r['id']}, process {r['pid']}); wait for it "
                "to finish (it trains one model per fold), or stop that process."
            )


def _check_batch_done(c: sqlite3.Connection) -> None:
    """:class:`BatchNotDone` while the batch has images nobody has acted on (in ``c``'s
    transaction)."""
    left = int(c.execute(_BATCH_LEFT).fetchone()["n"])
    if left:
        raise BatchNotDone(left)


def _check_not_others_label(
    c: sqlite3.Connection, image_id: int, kind: str, who: str | None, project: Path
) -> None:
    """Refuse (:class:`OthersLabel`) a ``kind`` (skip, unsure) by ``who`` on an image that
    someone else labeled: whose own current action on it is a label (the image's current
    action or not: a skip after one's own later label would erase theirs just the same). The
    owner (``who`` None) is told the command that undoes that label (``project``: the
    project's folder), which the page's user can run, as well as the API's request."""
    sql = _CURRENT_ROWS.format(where="image_id = ?", by=", COALESCE(annotator, '')")
    theirs = [
        r for r in c.execute(sql, (image_id,) * 2) if r["kind"] == "label" and r["annotator"] != who
    ]
    if not theirs:
        return
    cur = max(theirs, key=lambda r: r["id"])  # the newest of them
    name = c.execute("SELECT name FROM classes WHERE id = ?", (cur["class_id"],)).fetchone()
    cls = name["name"] if name is not None else f"class {cur['class_id']}"
    path = c.execute("SELECT path FROM images WHERE id = ?", (image_id,)).fetchone()["path"]
    by = cur["annotator"] or OWNER
    word = "a skip" if kind == "skip" else "an unsure"
    fix = (
        f"to set it aside anyway, undo that label first: `fishermask label undo {project} "
        f"{cur['id']}` (or POST /api/undo with its label_id {cur['id']}), then set it aside"
        if who is None
        else "if you see another class, label it so (a disagreement, which the owner decides)"
    )
    raise OthersLabel(
        f"{path} is labeled {cls} by {by}: {word} would replace that label, so nothing was "
        f"saved; {fix}, or leave it as it is."
    )


class OthersLabel(ConfigError):
    """A skip or unsure would replace a label someone else gave (refused: latest wins would
    erase their label from the counts, the rounds and the exports)."""


class NotYours(ConfigError):
    """An annotator asked to undo an action that someone else gave."""


class ClassRemoved(ConfigError):
    """An undo would make a label of a removed class current again."""


class RoundBusy(Exception):
    """A retrain is already running (its round id in ``args[0]``)."""


class CheckRunning(ConfigError):
    """A ``fishermask label check`` is running: a round (or another check) would share the
    CPU with it, and the check reads the labels of one moment."""


class BatchNotDone(Exception):
    """An annotator asked for a new batch while the current one has images nobody has acted
    on (how many in ``args[0]``): starting it would take them away from whoever is on them."""


class EveryImageForgotten(ConfigError):
    """Forgetting would leave the project without any image."""


class RootChanged(ConfigError):
    """The image folder changed (another ``label config --images``) since the caller read it:
    the folder it is now in ``args[0]``."""
