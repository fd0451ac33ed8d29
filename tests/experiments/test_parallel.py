"""Parallel execution: worker processes and Ray give the results of a sequential run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from fishermask.experiments.config import ExperimentConfig
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


def test_two_workers_match_one(sequential: Path, tmp_path: Path) -> None:
    run_experiment(Experiment.prepare(ExperimentConfig.from_dict(RAW)), tmp_path, workers=2)
    assert (tmp_path / "queries.jsonl").read_text() == (sequential / "queries.jsonl").read_text()
    assert _results(tmp_path) == _results(sequential)


def test_parallel_resume(sequential: Path, tmp_path: Path) -> None:
    exp = Experiment.prepare(ExperimentConfig.from_dict(RAW))
    run_experiment(exp, tmp_path, workers=2)
    (tmp_path / "trials/kcenter__seed1/round_002.json").unlink()  # lost in a kill
    run_experiment(exp, tmp_path, workers=2)
    assert (tmp_path / "queries.jsonl").read_text() == (sequential / "queries.jsonl").read_text()


def test_ray_executor_matches_sequential(sequential: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        exp = Experiment.prepare(ExperimentConfig.from_dict(RAW))
        run_experiment(exp, tmp_path, executor="ray", workers=2)
    finally:
        ray.shutdown()
    assert (tmp_path / "queries.jsonl").read_text() == (sequential / "queries.jsonl").read_text()
    assert _results(tmp_path) == _results(sequential)
