"""Kill -9 the server while it saves labels: every acknowledged label is there after restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from fishermask.label.project import Project

ROOT = Path(__file__).resolve().parents[2]


def _wait_until_serving(base: str, deadline: float) -> None:
    """Wait until the server answers HTTP: its socket listens before the URL is printed, but
    a Ctrl-C sent before uvicorn has taken over the signals can land in asyncio's start-up,
    where it was seen to be lost (the server then served on, and the test timed out)."""
    import httpx

    while time.time() < deadline:
        try:
            httpx.get(base + "/api/status", timeout=5)  # 401 without a token: it answers
            return
        except httpx.HTTPError:
            time.sleep(0.1)


def start_server(
    project_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    sighup: Any = signal.SIG_DFL,
) -> tuple[subprocess.Popen[str], str, str]:
    """``label serve PROJECT --port 0 ARGS`` (``env``: added to the environment); returns once
    it printed the (owner's) URL. ``sighup``: the server's SIGHUP disposition at start, by
    default SIGHUP's default action, as in a terminal, whatever the tests run under (under
    `nohup` it is inherited ignored, and the server rightly keeps ignoring it)."""
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **(env or {}),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fishermask.cli",
            "label",
            "serve",
            str(project_dir),
            "--port",
            "0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        # a background shell (CI, nohup) starts children with SIGINT ignored; a terminal,
        # where Ctrl-C is pressed, does not
        preexec_fn=lambda: (
            signal.signal(signal.SIGHUP, sighup),
            signal.signal(signal.SIGINT, signal.SIG_DFL),
        ),
    )
    deadline = time.time() + 120
    lines = []
    assert proc.stdout is not None
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
        if m:
            _wait_until_serving(m.group(1), deadline)
            return proc, line.strip(), "".join(lines)
    proc.kill()
    raise AssertionError("server printed no URL: " + "".join(lines))


def stop_server(proc: subprocess.Popen[str], timeout: float = 10) -> None:
    """Ctrl-C the server, reading what it still prints; kill it if it does not stop in
    ``timeout`` seconds."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def test_sigkill_loses_no_acknowledged_label(project):
    project.close()
    proc, url, _ = start_server(project.dir)
    base, token = re.search(r"(http://[^/]+)/\?token=(\S+)", url).groups()
    auth = {"Authorization": f"Bearer {token}"}
    acked: dict[int, int] = {}  # label id -> image id, for every 200 answer
    failed: list[str] = []

    def post_forever() -> None:
        with httpx.Client(base_url=base, headers=auth, timeout=10) as c:
            ids = [it["image_id"] for it in c.get("/api/batch").json()["items"]]
            k = 0
            while True:
                image_id = ids[k % len(ids)]
                # each round of the batch another class: the same label again writes nothing
                label = ("green", "red")[k // len(ids) % 2]
                k += 1
                try:
                    r = c.post("/api/labels", json={"image_id": image_id, "label": label})
                except httpx.HTTPError as exc:  # the server is gone
                    failed.append(type(exc).__name__)
                    return
                assert r.status_code == 200
                acked[r.json()["label_id"]] = image_id

    try:
        poster = threading.Thread(target=post_forever)
        poster.start()
        deadline = time.time() + 60
        while len(acked) < 25 and time.time() < deadline and poster.is_alive():
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream, no shutdown of any kind
        poster.join(30)
    finally:
        proc.kill()
        proc.wait()
    assert len(acked) >= 25 and failed
    proc, url, _ = start_server(project.dir)
    try:
        base, token = re.search(r"(http://[^/]+)/\?token=(\S+)", url).groups()
        from fishermask.label.store import DB_NAME, Store

        store = Store(project.dir / DB_NAME)
        got = {r.id: r.image_id for r in store.history()}
        assert {k: got.get(k) for k in acked} == acked
        store.close()
        with httpx.Client(base_url=base, timeout=10) as c:
            s = c.get("/api/status", params={"token": token}).json()
            assert s["labeled"] == len(set(acked.values()))
            assert c.get("/api/batch", params={"token": token}).json()["items"]  # queue resumes
    finally:
        stop_server(proc)


def test_restart_resumes_an_interrupted_retrain(project):
    from tests.label.conftest import label_truth

    label_truth(project, 2)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # a retrain alice asked for, killed mid-way
    rid = project.store.start_round("fishermask", dead.pid, started_by="alice")
    project.close()
    proc, _, out = start_server(project.dir)
    try:
        from fishermask.label.project import Project

        p = Project(project.dir)
        deadline = time.time() + 120
        while time.time() < deadline:
            rounds = p.store.rounds()
            if rounds[-1]["id"] > rid and rounds[-1]["status"] != "running":
                break
            time.sleep(0.5)
        rounds = p.store.rounds()
        assert next(r for r in rounds if r["id"] == rid)["status"] == "interrupted"
        assert rounds[-1]["status"] == "done", rounds[-1]
        assert rounds[-1]["checkpoint"]
        assert rounds[-1]["started_by"] == "alice"  # the restart is still alice's round
        p.close()
    finally:
        stop_server(proc)
    assert "interrupted; restarting it from the last good model" in out


def test_restart_waits_while_an_image_is_missing(project):
    """The restart of an interrupted retrain is refused up front, as POST /api/next is, while
    an image is missing: a round started anyway fails in the worker (a failed round)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    rid = project.store.start_round("fishermask", dead.pid)  # a retrain killed mid-way
    gone = project.store.images()[0].path
    (project.root / gone).unlink()
    project.close()
    proc, _, out = start_server(project.dir)
    try:
        from fishermask.label.project import Project

        p = Project(project.dir)
        rounds = p.store.rounds()
        p.close()
    finally:
        stop_server(proc)
    assert rounds[-1]["id"] == rid and rounds[-1]["status"] == "interrupted"
    assert "the last retrain was interrupted and is not restarted: image " in out
    assert f"{gone} of this project is missing" in out


def test_ctrl_c_says_what_it_stopped(project):
    """Ctrl-C ended `label serve` without a word, even in the middle of a round: nothing said
    that the round was interrupted, nor that the next serve restarts it."""
    import subprocess as sp

    from fishermask.label.server import Worker, _cut_short

    project.close()
    proc, _, _ = start_server(project.dir)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)  # the exit after "stopped" took 10 s under load 12
    assert (
        f"stopped; every label given is saved in {project.dir}: `fishermask label serve "
        f"{project.dir}` serves it again (new URLs: each start makes a new token unless given "
        "--token)." in out
    ), (proc.returncode, out)
    # the stop said, nothing after it (no 'error: interrupted.' of a Ctrl-C no command said)
    assert out.rstrip().endswith("--token).") and proc.returncode == 130, (proc.returncode, out)

    p = Project(project.dir)
    worker = Worker(p)
    assert _cut_short(worker, p) == ""  # no worker process: nothing cut short
    worker.proc = sp.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        rid = p.store.start_round("fishermask", worker.proc.pid)
        said = _cut_short(worker, p)
        assert f"round {rid} (a retrain) was interrupted" in said
        assert f"the next `fishermask label serve {p.dir}` restarts it" in said
    finally:
        worker.proc.kill()
        worker.proc.wait()
        p.close()


def test_ctrl_c_in_a_terminal_says_the_round_it_stopped(project):
    """A Ctrl-C in a terminal reaches the whole process group: the worker records its round
    as interrupted and exits, often before the server's 'stopped' line is written, which
    then said nothing of the round (seen with `label serve` stopped mid-round). The server's
    own round, interrupted or still running, is named whatever the worker's state."""
    import subprocess as sp

    from fishermask.label.server import Worker, _cut_short

    p = project
    worker = Worker(p)
    worker.proc = sp.Popen([sys.executable, "-c", "pass"])
    worker.proc.wait()  # the worker has exited already
    rid = p.store.start_round("fishermask", worker.proc.pid)
    worker.round_id = rid
    p.store.finish_round(rid, status="interrupted", message="stopped with Ctrl-C")
    said = _cut_short(worker, p)
    assert f"round {rid} (a retrain) was interrupted" in said, said
    assert f"the next `fishermask label serve {p.dir}` restarts it" in said
    assert p.needs_restart()  # which is so
    worker.proc = None  # the server's poll drops an exited worker: said all the same
    assert f"round {rid} (a retrain) was interrupted" in _cut_short(worker, p)


def test_ctrl_c_in_a_terminal_says_the_label_check_it_stopped(project):
    """As for a round: the Ctrl-C reaches the check's worker too, which records the check as
    interrupted and exits, and the server's 'stopped' line said nothing of it. The server's
    own check is named; an interrupted check of earlier (a minute and more ago) is not."""
    import subprocess as sp

    from fishermask.label.server import Worker, _cut_short

    p = project
    worker = Worker(p)
    worker.check_proc = sp.Popen([sys.executable, "-c", "pass"])
    worker.check_proc.wait()  # the worker has exited already
    check_id, _, _ = p.store.start_check(2, worker.check_proc.pid)
    worker.check_id = check_id
    p.store.finish_check(check_id, status="interrupted", message="stopped")
    said = _cut_short(worker, p)
    assert f"label check {check_id} was stopped (nothing of it is kept" in said, said
    worker.check_proc = None  # the server's poll drops an exited worker: said all the same
    assert f"label check {check_id} was stopped" in _cut_short(worker, p)
    with p.store.transaction() as c:  # the same check, interrupted long ago
        c.execute("UPDATE label_checks SET finished = finished - 3600 WHERE id = ?", (check_id,))
    assert _cut_short(worker, p) == ""


def test_sigterm_says_what_it_stopped_and_keeps_every_acknowledged_label(project):
    """`kill PID` (SIGTERM, as a service manager stops a server) ended `label serve` without a
    word (uvicorn stops gracefully, then raised the signal again, whose default action killed
    the process before its line); Ctrl-C said what was saved. Now SIGTERM says the same, with
    how to serve it again, exits 0, and every label the server acknowledged is in the
    database."""
    project.close()
    token = "Zq8vK3mN5pR7tW9yB2cD4fG6hJ8kL0"
    proc, url, _ = start_server(project.dir, "--token", token)
    base = re.search(r"(http://[^/]+)/", url).group(1)
    auth = {"Authorization": f"Bearer {token}"}
    acked = []
    with httpx.Client(base_url=base, headers=auth, timeout=10) as c:
        for item in c.get("/api/batch").json()["items"][:3]:
            r = c.post("/api/labels", json={"image_id": item["image_id"], "label": "green"})
            assert r.status_code == 200, r.text
            acked.append(r.json()["label_id"])
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, (proc.returncode, out)
    assert (
        f"stopped (SIGTERM); every label given is saved in {project.dir}: `fishermask label "
        f"serve {project.dir}` serves it again (the same URLs, with the same token)." in out
    ), out
    p = Project(project.dir)
    try:
        assert {r.id for r in p.store.history()} >= set(acked)
    finally:
        p.close()


def test_sighup_says_what_it_stopped_as_sigterm_does(project):
    """Closing the terminal `label serve` runs in sends it SIGHUP, which uvicorn does not
    handle: its default action ended the process at once, without the 'stopped' line, with
    the requests under way cut off and the database left open. Now SIGHUP stops it as SIGTERM
    does: the line ('stopped (SIGHUP: its terminal was closed)'), exit 0, every acknowledged
    label committed."""
    project.close()
    token = "Zq8vK3mN5pR7tW9yB2cD4fG6hJ8kL0"
    proc, url, _ = start_server(project.dir, "--token", token)
    base = re.search(r"(http://[^/]+)/", url).group(1)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=10) as c:
        item = c.get("/api/batch").json()["items"][0]
        r = c.post("/api/labels", json={"image_id": item["image_id"], "label": "green"})
        assert r.status_code == 200, r.text
        acked = r.json()["label_id"]
    proc.send_signal(signal.SIGHUP)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, (proc.returncode, out)
    assert (
        f"stopped (SIGHUP: its terminal was closed); every label given is saved in "
        f"{project.dir}: `fishermask label serve {project.dir}` serves it again (the same "
        "URLs, with the same token)." in out
    ), out
    p = Project(project.dir)
    try:
        assert acked in {r.id for r in p.store.history()}
    finally:
        p.close()


def test_an_ignored_sighup_stays_ignored(project):
    """`nohup fishermask label serve ...` starts it with SIGHUP ignored: closing the terminal
    must not stop it (it did not handle SIGHUP then, and must not start to)."""
    project.close()
    token = "Zq8vK3mN5pR7tW9yB2cD4fG6hJ8kL0"
    proc, url, _ = start_server(project.dir, "--token", token, sighup=signal.SIG_IGN)
    base = re.search(r"(http://[^/]+)/", url).group(1)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        with httpx.Client(base_url=base, headers=auth, timeout=10) as c:
            assert c.get("/api/status").status_code == 200
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert "stopped (SIGTERM)" in out, out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_the_moment_its_handler_is_installed_still_stops_cleanly(
    project, monkeypatch, signum
):
    """The SIGTERM and SIGHUP handlers were installed just before the protected region: a
    signal arriving right then raised past it, without the 'stopped' line, the worker's stop
    or the database's close. A signal delivered the instant its handler is installed (here
    called by the test, in-process) now stops the server as any SIGTERM does, and the
    handlers before it are put back."""
    import fishermask.label.server as srv

    real = signal.signal
    fired: list[int] = []

    def install(sig, handler):
        old = real(sig, handler)
        if sig == signum and callable(handler) and not fired:
            fired.append(sig)
            handler(sig, None)  # the signal arrives the moment its handler is in place
        return old

    project.close()
    outer_term, outer_hup = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    real(signal.SIGHUP, signal.SIG_DFL)  # as in a terminal (a test run under nohup ignores it)
    said: list[str] = []
    monkeypatch.setattr(signal, "signal", install)
    try:
        srv.run_server(project.dir, port=0, say=said.append)
    finally:
        monkeypatch.setattr(signal, "signal", real)
        after = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
        real(signal.SIGTERM, outer_term)
        real(signal.SIGHUP, outer_hup)
    assert fired == [signum]
    how = srv.HUNG_UP if signum == signal.SIGHUP else " (SIGTERM)"
    assert said and said[-1].startswith(f"stopped{how}; every label given is saved in "), said
    assert after == (outer_term, signal.SIG_DFL)
    from fishermask.label import serve_lock

    with serve_lock.acquire(project.dir):  # given back: a next server may start
        pass


def test_serve_starts_and_stops_where_there_is_no_sighup(project, monkeypatch):
    """Windows has no SIGHUP (the serve lock already allows for Windows): `label serve` read
    signal.SIGHUP unconditionally and failed at its start with an AttributeError. Without it,
    the server runs and a SIGTERM stops it cleanly (delivered here the moment its handler is
    installed, in-process)."""
    import fishermask.label.server as srv

    real = signal.signal
    outer_term = signal.getsignal(signal.SIGTERM)

    def install(sig, handler):
        old = real(sig, handler)
        # the server's handler only: putting back the outer one (a callable where an earlier
        # test, Ray's, left its own) must not run it
        if sig == signal.SIGTERM and callable(handler) and handler is not outer_term:
            handler(sig, None)
        return old

    project.close()
    said: list[str] = []
    monkeypatch.delattr(signal, "SIGHUP")
    monkeypatch.setattr(signal, "signal", install)
    try:
        srv.run_server(project.dir, port=0, say=said.append)
    finally:
        monkeypatch.setattr(signal, "signal", real)
        after = signal.getsignal(signal.SIGTERM)
        real(signal.SIGTERM, outer_term)
    assert said and said[-1].startswith("stopped (SIGTERM); every label given is saved in "), said
    assert after == outer_term
