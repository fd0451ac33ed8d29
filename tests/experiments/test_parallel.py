"""Parallel execution: worker processes and Ray give the results of a sequential run."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.parallel import TrialFailed
from fishermask.experiments.runner import Experiment, run_experiment

RAW = {
    "data": {"dataset": "digits"},
    "model": {"name": "cnn", "width": 0.25},
    "train": {"max_epochs": 1, "batch_size": 32},
    "loop": {"initial": 20, "query_size": 10, "rounds": 2},
    "strategies": ["kcenter"],
    "seeds": [0, 1],
    "device": "cpu",
}


def _results(out: Path) -> list[list[str]]:
    rows = list(csv.DictReader(open(out / "results.csv")))
    return [[r["strategy"], r["seed"], r["round"], r["n_labeled"], r["accuracy"]] for r in rows]


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seq")
    run_experiment(Experiment.prepare(ExperimentConfig.from_dict(RAW)), out)
    return out


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RAW run by two worker processes, shared read-only (a test that changes it copies it)."""
    out = tmp_path_factory.mktemp("two")
    run_experiment(Experiment.prepare(ExperimentConfig.from_dict(RAW)), out, workers=2)
    return out


def test_two_workers_match_one(sequential: Path, two_workers: Path) -> None:
    assert (two_workers / "queries.jsonl").read_text() == (sequential / "queries.jsonl").read_text()
    assert _results(two_workers) == _results(sequential)


def test_parallel_resume(sequential: Path, two_workers: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(two_workers, out)  # a finished two-worker run, as the test's own
    (out / "trials/kcenter__seed1/round_002.json").unlink()  # lost in a kill
    run_experiment(Experiment.prepare(ExperimentConfig.from_dict(RAW)), out, workers=2)
    assert (out / "trials/kcenter__seed1/round_002.json").exists()  # made again
    assert (out / "queries.jsonl").read_text() == (sequential / "queries.jsonl").read_text()


def test_ray_executor_matches_sequential(sequential: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    # "local": a Ray of its own, not a cluster that RAY_ADDRESS or a `ray start` on this
    # machine (/tmp/ray/ray_current_cluster) names; ray.init() would connect to that and
    # refuse num_cpus
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        exp = Experiment.prepare(ExperimentConfig.from_dict(RAW))
        run_experiment(exp, tmp_path, executor="ray", workers=2)
    finally:
        ray.shutdown()
    assert (tmp_path / "queries.jsonl").read_text() == (sequential / "queries.jsonl").read_text()
    assert _results(tmp_path) == _results(sequential)


def _blocked(out: Path, key: str, seed: int) -> None:
    """Make trial (key, seed) fail at its first commit: its directory is taken by a file."""
    (out / "trials").mkdir(parents=True)
    (out / "trials" / f"{key}__seed{seed}").write_text("not a directory")


# A strategy whose query waits until the parent asks the workers to stop (or 60 s): with it,
# no trial can finish before the parent has noticed the failure, however the machine schedules
# the processes, so "the queued trials never ran" is a fact to check, not a race to win.
WAITS = """
from dataclasses import dataclass

from fishermask.experiments import parallel
from fishermask.strategies import Selection, Strategy, register


@register
@dataclass(frozen=True)
class WaitsForStop(Strategy):
    name = "waits_for_stop"

    def query(self, ctx, budget):
        if parallel._STOP is not None:  # a local worker process
            parallel._STOP.wait(60)
        return Selection(ctx.pool.unlabeled[:budget])
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_trial_stops_the_run_and_is_named(tmp_path: Path, workers: int) -> None:
    plugin = tmp_path / "waits_for_stop.py"
    plugin.write_text(WAITS)
    raw = {
        **RAW,
        "seeds": list(range(8)),
        "strategies": ["waits_for_stop"],
        "imports": [str(plugin)],
    }
    _blocked(tmp_path / "out", "waits_for_stop", 0)
    exp = Experiment.prepare(ExperimentConfig.from_dict(raw))
    started = time.monotonic()
    with pytest.raises(TrialFailed, match="Trial waits_for_stop seed 0 failed: FileExistsError"):
        run_experiment(exp, tmp_path / "out", workers=workers)
    assert time.monotonic() - started < 50  # the waiting trials were released by the stop
    trials = tmp_path / "out/trials"
    rounds = {
        s: len(list((trials / f"waits_for_stop__seed{s}").glob("round_*.json")))
        for s in range(1, 8)
    }
    # a trial a worker took before the parent noticed (one per worker at most: each then waits
    # in its first query) committed its round 0 and stopped; the queued ones never trained
    assert all(n <= 1 for n in rounds.values()), rounds
    assert sum(n > 0 for n in rounds.values()) <= (workers if workers > 1 else 0), rounds
    assert (tmp_path / "out/results.csv").exists()  # what was committed is written


# In a Ray task there is no stop event: ray.cancel interrupts the task (KeyboardInterrupt).
# This query waits for that (or 60 s), so the trial that runs when seed 0 fails cannot finish
# and hand its CPU to a queued one before the parent has cancelled them.
WAITS_FOR_CANCEL = """
import time
from dataclasses import dataclass

from fishermask.strategies import Selection, Strategy, register


@register
@dataclass(frozen=True)
class WaitsForCancel(Strategy):
    name = "waits_for_cancel"

    def query(self, ctx, budget):
        time.sleep(60)
        return Selection(ctx.pool.unlabeled[:budget])
"""


def test_ray_cancels_the_queued_trials_of_a_failed_run(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    plugin = tmp_path / "waits_for_cancel.py"
    plugin.write_text(WAITS_FOR_CANCEL)
    raw = {
        **RAW,
        "seeds": [0, 1, 2, 3, 4],
        "strategies": ["waits_for_cancel"],
        "imports": [str(plugin)],
    }
    out = tmp_path / "out"
    _blocked(out, "waits_for_cancel", 0)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        exp = Experiment.prepare(ExperimentConfig.from_dict(raw))
        started = time.monotonic()
        with pytest.raises(
            TrialFailed, match="Trial waits_for_cancel seed 0 failed: FileExistsError"
        ):
            run_experiment(exp, out, executor="ray", workers=1)
        assert time.monotonic() - started < 50  # not held up by the waiting trial
    finally:
        ray.shutdown()
    for seed in (2, 3, 4):  # one CPU: seed 0 ran first, the others were still queued
        assert not list((out / f"trials/waits_for_cancel__seed{seed}").glob("round_*.json"))


@pytest.mark.slow
def test_ctrl_c_with_workers_stops_at_once_and_says_how_to_resume(tmp_path: Path) -> None:
    """SIGINT to a two-worker run: queued trials never start, partial results are written."""
    fishermask = Path(sys.executable).parent / "fishermask"
    out = tmp_path / "run"
    args = [
        str(fishermask),
        "run",
        "--dataset",
        "digits",
        "--model",
        "cnn",
        "--width",
        "0.25",
        "--max-epochs",
        "3",
        "--initial",
        "20",
        "--query-size",
        "10",
        "--rounds",
        "3",
        "--seeds",
        "4",
        "--strategy",
        "entropy,margin",
        "--device",
        "cpu",
        "--workers",
        "2",
        "--no-progress",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a background shell (CI, nohup) starts children with SIGINT ignored; a terminal does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.time() + 180
        while not list(out.glob("trials/*/round_000.json")) and time.time() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        t0 = time.time()
        _, err = proc.communicate(timeout=120)
        waited = time.time() - t0
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert waited < 40, f"running trials must stop at their next epoch; took {waited:.0f} s"
    assert "fishermask run --dataset digits" in err and f"--out {out}" in err, err
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert 1 <= len(rows) < 2 * 4 * 4  # the committed rounds, not the whole run
    done = {(r["strategy"], r["seed"]) for r in rows}
    assert ("margin", "3") not in done  # queued last: cancelled before it started


def test_a_failed_run_leaves_no_worker_running(tmp_path: Path) -> None:
    """A worker still starting when a trial failed was not waited for: it outlived the run
    and, once the caller had exited, printed a child traceback (SemLock._rebuild:
    FileNotFoundError) after the one-line error."""
    import multiprocessing as mp
    from dataclasses import dataclass

    from fishermask import strategies
    from fishermask.errors import ConfigError

    @dataclass(frozen=True)
    class ParentOnly(strategies.Strategy):  # not registered in the workers: fails at once
        name = "parent_only"

        def query(self, ctx, budget):  # noqa: ANN001, ANN202
            return strategies.Selection(ctx.pool.unlabeled[:budget])

    strategies.register(ParentOnly)
    raw = {**RAW, "strategies": ["parent_only"], "seeds": list(range(4))}
    exp = Experiment.prepare(ExperimentConfig.from_dict(raw))
    with pytest.raises(ConfigError, match="'parent_only' is not registered in this worker"):
        run_experiment(exp, tmp_path / "out", workers=2)
    assert mp.active_children() == []


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_like_ctrl_c_and_says_how_to_resume(tmp_path: Path, workers: int) -> None:
    """SIGTERM (a cluster's time limit, `timeout`, `docker stop`) ended the run with no word:
    no resume command, and with workers a results.csv short of the committed rounds. Sent to
    the whole process group, as a batch system does, the workers get it too."""
    import os

    fishermask = Path(sys.executable).parent / "fishermask"
    out = tmp_path / "run"
    args = [str(fishermask), "run", "--dataset", "digits", "--model", "cnn", "--width", "0.25"]
    args += ["--max-epochs", "3", "--initial", "20", "--query-size", "10", "--rounds", "3"]
    args += ["--seeds", "4", "--strategy", "entropy,margin", "--device", "cpu", "--no-progress"]
    args += ["--workers", str(workers), "--out", str(out)]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.time() + 180
        while not list(out.glob("trials/*/round_001.json")) and time.time() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "error: stopped by SIGTERM; committed rounds are in" in err, err
    assert "fishermask run --dataset digits" in err and f"--out {out}" in err, err
    assert "Traceback" not in err and "leaked" not in err and "failed" not in err, err
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == len(list(out.glob("trials/*/round_*.json")))  # every committed round
    assert 1 <= len(rows) < 2 * 4 * 4
