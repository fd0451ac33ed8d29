"""benchmarks/gpu_check.sh without a GPU: a stand-in ``python`` (``PYTHON``) that claims a CUDA
device and hangs shows that the script ends by its deadline (issue 14 item 5: under 8 minutes)
and writes under OUTDIR, and the arguments the script really passes are checked against the
benchmark scripts' own parsers and pytest's collection."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"

# claims CUDA for ``-c`` snippets; logs every other call's arguments, then hangs
FAKE = """#!/bin/sh
case "$1" in -c) exit 0 ;; esac
printf '%s\\n' "$*" >> "{log}"
exec sleep 60
"""


def _run(tmp_path: Path, seconds: int, fake: str) -> tuple[subprocess.CompletedProcess, float]:
    py = tmp_path / "python"
    py.write_text(fake.format(log=tmp_path / "calls.txt"))
    py.chmod(0o755)
    env = {**os.environ, "PYTHON": str(py), "GPU_CHECK_SECONDS": str(seconds)}
    start = time.monotonic()
    res = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return res, time.monotonic() - start


def test_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_without_cuda_it_stops_with_a_reason(tmp_path: Path) -> None:
    res, _ = _run(tmp_path, 30, "#!/bin/sh\nexit 1\n")
    assert res.returncode == 2
    assert "no CUDA device" in res.stderr


def _calls(tmp_path: Path) -> list[list[str]]:
    return [line.split() for line in (tmp_path / "calls.txt").read_text().splitlines()]


def test_every_stage_ends_by_the_deadline(tmp_path: Path) -> None:
    """Three hanging stages under a 4 s deadline: the script ends within seconds of it, reports
    failure, and has written each stage's file under OUTDIR (the default deadline is 460 s)."""
    res, took = _run(tmp_path, 4, FAKE)
    assert res.returncode == 1, res.stdout + res.stderr
    assert took < 4 + 15, took  # each cut-short stage gets 1 s (+ 5 s to die) past the deadline
    out = tmp_path / "out"
    for name in ("environment.txt", "tests.txt", "paper_scale_query.txt", "bait_selection.txt"):
        assert (out / name).exists(), name
    assert len(_calls(tmp_path)) == 3  # pytest, fisher_query.py, selection_bench.py
    default = next(
        line for line in SCRIPT.read_text().splitlines() if "GPU_CHECK_SECONDS:-" in line
    )
    assert int(default.split(":-")[1].split("}")[0]) <= 460  # < 8 minutes with the kill graces


class _Parsed(Exception):
    pass


def _parse(main, argv: list[str], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """What ``main(argv)``'s parser makes of ``argv`` (stopped right after parsing)."""
    real = argparse.ArgumentParser.parse_args

    def stop(self, args=None, namespace=None):
        raise _Parsed(real(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    try:
        main(argv)
    except _Parsed as parsed:
        return parsed.args[0]
    except SystemExit as exc:  # argparse rejected an argument
        pytest.fail(f"{argv} rejected by the parser (exit {exc.code})")
    pytest.fail("main did not parse its arguments")


def test_the_arguments_it_passes_are_accepted(tmp_path: Path, monkeypatch) -> None:
    _run(tmp_path, 3, FAKE)
    tests, query, bait = _calls(tmp_path)

    assert tests[:2] == ["-m", "pytest"]
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-o",
            "addopts=",
            "-p",
            "no:cacheprovider",
        ]
        + tests[2:],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
    ).stdout
    for node in (
        "tests/test_cuda.py::test_engine_on_cuda_matches_cpu",
        "tests/test_cuda.py::test_selection_on_cuda_picks_what_the_cpu_picks",
        "tests/test_cuda.py::test_training_and_evaluation_on_cuda",
        "tests/test_cuda.py::test_runner_with_device_cuda_runs_every_fisher_strategy",
        "tests/fisher/test_fisher_selection.py::test_cuda_matches_cpu",
        "tests/fisher/test_fisher_gradients.py::test_cuda_matches_cpu",
    ):
        assert node in listed, node

    from benchmarks import fisher_query, selection_bench

    assert query[0] == "benchmarks/fisher_query.py"
    ns = _parse(fisher_query.main, query[1:], monkeypatch)
    assert (ns.device, ns.width, ns.sparsity, ns.pool, ns.labeled, ns.budget) == (
        "cuda",
        1.0,
        0.002,
        5750,
        250,
        250,
    )
    assert ns.compare_baseline and ns.no_checks
    assert bait[0] == "benchmarks/selection_bench.py"
    ns = _parse(selection_bench.main, bait[1:], monkeypatch)
    assert (ns.device, ns.problem, ns.budget, ns.backward_steps) == ("cuda", "bait", 2000, 1)
