"""One run per run directory: a second `fishermask run` (or fishermask.run) on an --out in use
is refused in one line naming the first, writing nothing; the lock goes with its process
however it ends (SIGKILL too); `fishermask report` reads a run in use."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import fishermask
from fishermask.cli import app
from fishermask.experiments import runner as runner_module
from fishermask.experiments.lock import LOCK_NAME, RunDirInUse, hold_run_dir

ROOT = Path(__file__).resolve().parents[2]

#: A process that holds a run directory's lock as a run does, until it is killed.
HOLDER = """
import sys, time
from fishermask.experiments.lock import hold_run_dir
with hold_run_dir(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""

RUN = ["run", "--dataset", "digits", "--model", "mlp", "--width", "0.25", "--max-epochs", "1"]
RUN += ["--initial", "20", "--query-size", "10", "--rounds", "1", "-s", "random,entropy"]
RUN += ["--seeds", "1", "--device", "cpu", "--workers", "1", "--no-progress"]

MEMORY = {
    "model": {"name": "mlp", "width": 0.25},
    "train": {"max_epochs": 1, "batch_size": 32},
    "loop": {"initial": 20, "query_size": 10, "rounds": 1},
    "strategies": ["random"],
    "seeds": [0],
    "device": "cpu",
}


def _hold(out: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _files(d: Path) -> dict[str, tuple[str, int]]:
    return {
        str(f): (hashlib.sha256(f.read_bytes()).hexdigest(), f.stat().st_mtime_ns)
        for f in sorted(d.rglob("*"))
        if f.is_file()
    }


def _refusal(out: Path, pid: int, option: str) -> str:
    return (
        rf"{re.escape(str(out))} is in use by another run \(process {pid}, since \d\d:\d\d UTC\); "
        r"wait for it to end \(then run this again to continue or extend it\) or stop it "
        rf"\(Ctrl-C in its terminal, or kill {pid}\), or use another {option}\."
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lock") / "run"
    res = CliRunner().invoke(app, [*RUN, "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_a_second_run_on_a_run_in_use_is_refused_in_one_line_writing_nothing(
    finished: Path,
) -> None:
    """Both ran the same trials, without a word (compute doubled, rounds written twice)."""
    holder = _hold(finished)
    try:
        before = _files(finished)
        res = CliRunner().invoke(app, [*RUN, "-s", "margin", "--out", str(finished)])
        out = " ".join(res.output.split())
        assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
        assert re.fullmatch("error: " + _refusal(finished, holder.pid, "--out"), out), out
        with pytest.raises(RunDirInUse, match=_refusal(finished, holder.pid, "out")):
            xy = (np.zeros((40, 8, 8)), np.arange(40) % 2)
            fishermask.run(MEMORY, train=xy, test=xy, out=finished, progress=False)
        assert _files(finished) == before  # nothing written, not even the lock's record
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_frees_the_lock(tmp_path: Path) -> None:
    """flock: no stale lock after SIGKILL (a pid file would have stayed, naming a dead run)."""
    out = tmp_path / "run"
    holder = _hold(out)
    with pytest.raises(RunDirInUse), hold_run_dir(out):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with hold_run_dir(out):
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_report_reads_a_run_in_use(finished: Path, tmp_path: Path) -> None:
    holder = _hold(finished)
    try:
        res = CliRunner().invoke(app, ["report", str(finished), "--out", str(tmp_path / "rep")])
        assert res.exit_code == 0, res.output
        assert (tmp_path / "rep/report.md").is_file()
    finally:
        holder.kill()
        holder.wait()


def test_the_run_holds_the_lock_from_its_start_to_its_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen from another thread (a lock per open file: refused as another process would be)
    while the trials run; given back when the run returns; another directory, even one
    inside a run in use, runs."""
    seen: list[str] = []

    def probe() -> None:
        try:
            with hold_run_dir(tmp_path / "run"):
                seen.append("taken")
        except RunDirInUse as e:
            seen.append(str(e))

    real = runner_module.run_trial

    def run_trial(*args, **kw):  # type: ignore[no-untyped-def]
        t = threading.Thread(target=probe)
        t.start()
        t.join()
        return real(*args, **kw)

    monkeypatch.setattr(runner_module, "run_trial", run_trial)
    res = CliRunner().invoke(app, [*RUN, "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert len(seen) == 2 and all(" is in use by another run (process " in s for s in seen), seen
    with hold_run_dir(tmp_path / "run"):  # given back
        pass
    holder = _hold(tmp_path / "run")
    try:
        res = CliRunner().invoke(app, [*RUN, "--out", str(tmp_path / "run" / "new")])
        assert res.exit_code == 0, res.output
    finally:
        holder.kill()
        holder.wait()


def test_a_file_system_without_locks_is_warned_about_and_runs_unlocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flock failing with ENOLCK (an NFS without lock daemon, some FUSE mounts) is not a
    holder: the run warns and goes on (it read as 'in use by another process')."""
    import errno

    from fishermask import dirlock

    def flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(dirlock.fcntl, "flock", flock)
    with pytest.warns(UserWarning, match=r"cannot be locked \(No locks available: its file "):
        with hold_run_dir(tmp_path / "run") as held:
            assert held.lock is not None and held.lock.fd is None
