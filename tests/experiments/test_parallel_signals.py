"""Stopping a parallel run: Ctrl-C and SIGTERM to a run with workers, and a run whose
trial failed. Apart from tests/experiments/test_parallel.py so that ``--dist loadfile`` runs
these subprocess tests (the longest of the two files) on the other worker."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.runner import Experiment, run_experiment
from tests.experiments.test_parallel import RAW


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
