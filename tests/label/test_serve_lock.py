"""One ``label serve`` per project: a second is refused in one line naming the first (nothing
started, nothing written); the lock goes with the server however it stops; the other commands
work alongside it, and a round is refused while the server's worker runs one."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from fishermask.cli import app
from fishermask.label.store import DB_NAME, proc_start
from tests.label.test_kill import ROOT, start_server, stop_server

runner = CliRunner()


def _run(*args: object):
    return runner.invoke(app, ["label", *map(str, args)])


def _serve(project_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A second ``label serve`` as its own process; 60 s to end (a server that starts would
    serve on: the timeout fails the test)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", "fishermask.cli", "label", "serve", str(project_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _files(d: Path) -> dict[str, tuple[str, int]]:
    return {
        str(f): (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
        for f in sorted(d.rglob("*"))
        if f.is_file()
    }


def test_a_second_serve_is_refused_naming_the_first_and_the_others_work(project, tmp_path):
    """Two servers of one project used to start without a word (each with its own worker and
    batch view; a team given both URLs labeled in two places); on the first one's port the
    second said `try --port 0`, which then started it."""
    project.close()
    proc, line, _ = start_server(project.dir)
    try:
        base, token = re.search(r"(http://[^/]+)/\?token=(\S+)", line).groups()
        port = base.rsplit(":", 1)[1]
        assert json.loads((project.dir / "serve.lock").read_text())["pid"] == proc.pid
        before = _files(project.dir)
        for args in (("--port", "0"), ("--port", port)):
            r = _serve(project.dir, *args)
            out = (r.stdout + r.stderr).strip()
            assert r.returncode == 2, out
            assert len(out.splitlines()) == 1 and "Traceback" not in out, out
            assert re.fullmatch(
                rf"error: {re.escape(str(project.dir))} is already being served by process "
                rf"{proc.pid} at {re.escape(base)} \(since \d\d:\d\d UTC\); stop it first \(Ctrl-C "
                r"there\), or open the URL it printed\.",
                " ".join(out.split()),
            ), out
        assert _files(project.dir) == before  # nothing written, not even the lock's record

        # reading commands work alongside it, and so does `label add`, which it then shows
        r = _run("status", project.dir)
        assert r.exit_code == 0 and json.loads(r.stdout)["labeled"] == 0, r.output
        r = _run("export", project.dir, "--format", "csv", "--out", tmp_path / "x.csv")
        assert r.exit_code == 0, r.output
        (tmp_path / "add.csv").write_text("path,label\nred/000.png,red\n")
        r = _run("add", project.dir, tmp_path / "add.csv")
        assert r.exit_code == 0, r.output
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(base + "/api/status", headers=auth, timeout=10).json()["labeled"] == 1
    finally:
        stop_server(proc)


def test_the_lock_goes_with_the_server_however_it_stops(project):
    """Ctrl-C, SIGTERM, SIGKILL: the next server starts each time (no stale lock to delete;
    after SIGKILL the file still names the dead server, and the new one replaces that)."""
    project.close()
    proc, _, _ = start_server(project.dir)
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            proc.send_signal(sig)
            proc.communicate(timeout=30)
            dead = proc.pid
            # start_server fails ("printed no URL: error: ... already being served") if refused
            proc, _, _ = start_server(project.dir)
            info = json.loads((project.dir / "serve.lock").read_text())
            assert info["pid"] == proc.pid != dead
            assert info["address"].startswith("http://127.0.0.1:")
    finally:
        stop_server(proc)


#: A strategy file whose import holds the round's worker (not the server, nor the commands)
#: while the gate file exists: the server's round stays running for as long as the test needs.
HOLD = """
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fishermask.strategies import Selection, Strategy, register

if sys.argv[0].endswith("worker.py"):
    while Path({gate!r}).exists():
        time.sleep(0.05)


@register
@dataclass(frozen=True)
class HeldFirstUnlabeled(Strategy):
    name = "serve_lock_held_first"

    def query(self, ctx, budget):
        return Selection(ctx.pool.unlabeled[:budget])
"""


def test_next_and_train_are_refused_while_the_servers_worker_runs_a_round(project, tmp_path):
    """The round lock (a `running` row whose process is checked by pid and start time) seen
    from another process while a real server's worker holds it; the worker does not inherit
    the serve lock, so a server killed with its worker still running can be replaced (and
    the new one leaves the live round alone)."""
    gate = tmp_path / "gate"
    gate.touch()
    (tmp_path / "hold.py").write_text(HOLD.format(gate=str(gate)))
    project.close()
    r = _run("config", project.dir, "--import", tmp_path / "hold.py")
    assert r.exit_code == 0, r.output
    proc, line, _ = start_server(project.dir)
    worker = None
    try:
        base, token = re.search(r"(http://[^/]+)/\?token=(\S+)", line).groups()
        auth = {"Authorization": f"Bearer {token}"}
        r = httpx.post(base + "/api/next", headers=auth, timeout=30)
        assert r.status_code == 202, r.text
        rid = r.json()["round_id"]
        for args in (("next", project.dir), ("train", project.dir, "--no-progress")):
            r = _run(*args)
            assert r.exit_code == 2, r.output
            assert f"a retrain is already running (round {rid}," in " ".join(r.output.split())
        r = _run("status", project.dir)
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["round"]["status"] == "running"

        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        from fishermask.label.project import Project

        p = Project(project.dir)
        worker = p.store.round(rid)["pid"]
        assert worker != proc.pid and proc_start(worker) is not None  # still holding the round
        proc, line, out = start_server(project.dir)
        assert "restarting" not in out and p.store.round(rid)["status"] == "running"
        gate.unlink()  # the worker goes on and commits its round
        deadline = time.time() + 120
        while p.store.round(rid)["status"] == "running" and time.time() < deadline:
            time.sleep(0.2)
        assert p.store.round(rid)["status"] == "done"
        p.close()
    finally:
        gate.unlink(missing_ok=True)
        stop_server(proc)
        deadline = time.time() + 60
        while worker and proc_start(worker) is not None and time.time() < deadline:
            time.sleep(0.2)


def _as_user(uid: int, fn) -> str:
    """``fn()``'s string, run in a forked child that became user ``uid`` (the test runs as
    root: another user sharing the project folder)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no return, no pytest teardown
        try:
            os.close(r)
            os.setgid(uid)
            os.setuid(uid)
            os.write(w, fn().encode())
        except BaseException as exc:
            os.write(w, f"{type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        said = f.read()
    os.waitpid(pid, 0)
    return said


@pytest.fixture
def shared():
    """A project folder that every user may write (a team's shared drive), outside pytest's
    own (user-only) temporary folder; a stand-in database file (the lock only looks for it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to act as a second user")
    folder = Path(tempfile.mkdtemp(prefix="fishermask-shared-", dir="/tmp"))
    try:
        folder.chmod(0o777)
        (folder / DB_NAME).touch()
        (folder / DB_NAME).chmod(0o666)
        yield folder
    finally:
        shutil.rmtree(folder)


NOBODY = 65534


def _acquire(folder: Path) -> Callable[[], str]:
    def take() -> str:
        from fishermask.label import serve_lock

        try:
            lock = serve_lock.acquire(folder)
        except Exception as exc:
            return f"refused: {exc}"
        with lock:
            return "locked" if lock.fd is not None else f"no lock: {lock.unsupported}"

    return take


def test_another_user_serves_a_shared_project_after_the_first(shared):
    """`serve.lock`, left by the user who served a shared project last (its mode 0644),
    refused everyone else for good: 'cannot be written (Permission denied)'."""
    (shared / "serve.lock").write_text('{"pid": 1, "machine": "x"}\n')
    (shared / "serve.lock").chmod(0o644)  # as an earlier version left it
    assert _as_user(NOBODY, _acquire(shared)) == "locked"
    from fishermask.label import serve_lock

    with serve_lock.acquire(shared):  # held: the other user is refused, as anyone is
        said = _as_user(NOBODY, _acquire(shared))
    assert said.startswith(f"refused: {shared} is already being served by process "), said


def test_the_lock_file_is_as_writable_as_the_database(shared):
    """Made by one user, writable by those who may write the project."""
    from fishermask.label import serve_lock

    (shared / DB_NAME).chmod(0o664)
    with serve_lock.acquire(shared):
        pass
    assert (shared / "serve.lock").stat().st_mode & 0o777 == 0o664


def test_a_record_of_a_process_gone_names_no_process():
    """The record of a holder gone, left in the file (a holder that could not write its own
    record: another user's file), named a process that no longer runs."""
    from fishermask.label.serve_lock import _served_message

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    info = {"pid": gone.pid, "machine": socket.gethostname(), "since": time.time()}
    said = _served_message(Path("proj"), info)
    assert said.startswith("proj is already being served by another process"), said


def test_a_lock_file_another_user_keeps_unreadable_is_named(shared):
    (shared / "serve.lock").write_text("{}")
    (shared / "serve.lock").chmod(0o600)
    said = _as_user(NOBODY, _acquire(shared))
    assert said == (
        f"refused: {shared}/serve.lock cannot be opened (Permission denied): another user's "
        "lock file? While no `label serve` of the project runs, its owner (or anyone who may "
        "write the folder) can delete it; the next server makes it anew."
    ), said
