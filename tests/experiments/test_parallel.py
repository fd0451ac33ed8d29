"""Parallel execution: worker processes and Ray give the results of a sequential run."""

from __future__ import annotations

import csv
import shutil
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
