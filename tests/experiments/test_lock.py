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
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import fishermask
from fishermask.cli import app
from fishermask.experiments import runner as runner_module
from fishermask.experiments.lock import (
    LOCK_NAME,
    TRIAL_LOCK_NAME,
    RunDirInUse,
    hold_run_dir,
    hold_trial,
    trials_in_use,
)
from fishermask.experiments.trial import StopRequested

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


def _hold_file(path: Path) -> subprocess.Popen[str]:
    """A process that holds the lock on ``path`` (its folder made) until it is killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import sys, time; from fishermask import dirlock; "
        "lock = dirlock.try_lock(sys.argv[1]); print('held', flush=True); time.sleep(600)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True, env=env
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


# A strategy whose round-1 query waits for a file `go` beside it (or 300 s: a bound for a test
# that fails, the resume's start may take a minute on a busy machine): a trial of it holds still
# after committing round 0, as a Ray task of a killed run may while a resume starts.
WAITS_FOR_GO = """
import time
from dataclasses import dataclass
from pathlib import Path

from fishermask.strategies import Selection, Strategy, register

GO = Path(__file__).with_name("go")


@register
@dataclass(frozen=True)
class WaitsForGo(Strategy):
    name = "waits_for_go"

    def query(self, ctx, budget):
        deadline = time.monotonic() + 300
        while not GO.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return Selection(ctx.pool.unlabeled[:budget])
"""

#: The trial job of a run whose driver is gone (what a Ray task of a killed run goes on doing):
#: the run directory opened as the driver did, then the one trial, as Ray runs it.
LEFTOVER = """
import json, sys
from pathlib import Path
from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.experiment import Experiment
from fishermask.experiments.parallel import _trial_job
from fishermask.experiments.runner import open_run_dir

raw, out = json.loads(sys.argv[1]), sys.argv[2]
exp = Experiment.prepare(ExperimentConfig.from_dict(raw))
open_run_dir(exp, Path(out))
_trial_job(exp.config.to_dict(), "waits_for_go", 0, out, False)
"""


def test_a_trial_still_running_from_a_killed_run_is_waited_for_not_run_twice(
    tmp_path: Path,
) -> None:
    """A Ray task outlives its driver's SIGKILL by seconds (seen: a round committed 1.3 s after
    it, the worker gone 3.8 s after); a resume started meanwhile ran the same trial at once,
    both committing its rounds. The resume now says so in one line and waits for it (here in
    a worker process, as a Ray task would; a sequential run's trial takes the same lock)."""
    (tmp_path / "plugin").mkdir()
    plugin = tmp_path / "plugin/waits_for_go.py"
    plugin.write_text(WAITS_FOR_GO)
    raw = {**MEMORY, "data": {"dataset": "digits"}, "strategies": ["waits_for_go"]}
    raw |= {"imports": [str(plugin)]}
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    leftover = subprocess.Popen(
        [sys.executable, "-c", LEFTOVER, json.dumps(raw), str(out)], env=env, text=True
    )
    trial = out / "trials/waits_for_go__seed0"
    resume = None
    try:
        while not (trial / "round_000.json").exists():  # then it waits in round 1's query
            assert leftover.poll() is None, "the left-over trial ended before round 1"
            time.sleep(0.05)
        config = tmp_path / "config.yaml"
        config.write_text(json.dumps(raw))
        resume = subprocess.Popen(
            [sys.executable, "-m", "fishermask.cli", "run", "-c", str(config), "--out", str(out)]
            + ["--workers", "2", "--no-progress"],
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert resume.stderr is not None
        warned = next((line for line in resume.stderr if line.startswith("warning:")), None)
        # (before the change: none, the resume ran round 1 beside the left-over trial)
        assert warned is not None, f"no warning; exit {resume.wait()}"
        assert re.fullmatch(
            rf"warning: trial waits_for_go seed 0 is still running in process {leftover.pid} "
            rf"\(since \d\d:\d\d UTC\), left by an earlier run of {re.escape(str(out))}; waiting "
            rf"for it to end \(kill {leftover.pid} ends it now\), then this run continues the "
            r"trial from the rounds it committed\.\n",
            warned,
        ), warned
        (plugin.parent / "go").touch()
        assert leftover.wait() == 0
        written = {f.name: f.stat().st_ino for f in trial.glob("round_*.json")}
        assert sorted(written) == ["round_000.json", "round_001.json"]
        assert resume.wait() == 0, resume.stderr.read()
    finally:
        for proc in (leftover, resume):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    # the resume found the trial finished: it rewrote none of its rounds
    assert {f.name: f.stat().st_ino for f in trial.glob("round_*.json")} == written
    reference = tmp_path / "reference"
    res = CliRunner().invoke(
        app, ["run", "-c", str(config), "--out", str(reference), "--workers", "1", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    assert (out / "queries.jsonl").read_text() == (reference / "queries.jsonl").read_text()


def test_a_wait_for_a_trial_in_use_ends_when_the_run_is_stopped(tmp_path: Path) -> None:
    """A trial job waiting for a held trial polls the run's stop (Ctrl-C, a failed trial)."""
    trial = tmp_path / "run/trials/random__seed0"
    holder = _hold_file(trial / TRIAL_LOCK_NAME)
    try:
        lines = trials_in_use(tmp_path / "run", [("random", 0), ("random", 1)])
        assert len(lines) == 1 and re.fullmatch(
            rf"trial random seed 0 is still running in process {holder.pid} \(since "
            rf"\d\d:\d\d UTC\), left by an earlier run of {re.escape(str(tmp_path / 'run'))}; "
            rf"waiting for it to end \(kill {holder.pid} ends it now\), then this run continues "
            r"the trial from the rounds it committed\.",
            lines[0],
        ), lines

        def stop() -> None:
            raise StopRequested

        with pytest.raises(StopRequested), hold_trial(trial, stop):
            pass
    finally:
        holder.kill()
        holder.wait()
    with hold_trial(trial):  # given back with its process
        pass
    assert trials_in_use(tmp_path / "run", [("random", 0)]) == []
