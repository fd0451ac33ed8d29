"""One ``label serve`` per project: a second is refused in one line naming the first (nothing
started, nothing written); the lock goes with the server however it stops; the other commands
work alongside it, and a round is refused while the server's worker runs one."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from fishermask.cli import app
from fishermask.label.store import proc_start
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
