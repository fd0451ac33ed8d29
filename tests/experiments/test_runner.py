"""The experiment runner: outputs, determinism, resume after a kill (SIGKILL too)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.runner import Experiment, run_experiment
from fishermask.experiments.store import RESULT_FIELDS

SMALL = {
    "data": {"dataset": "digits"},
    "model": {"name": "cnn", "width": 0.25},
    "train": {"max_epochs": 2, "batch_size": 32},
    "loop": {"initial": 20, "query_size": 10, "rounds": 2},
    "strategies": ["random", "entropy", "kcenter"],
    "seeds": [0, 1],
    "device": "cpu",
}


def _run(tmp: Path, raw: dict = SMALL) -> list[dict]:
    exp = Experiment.prepare(ExperimentConfig.from_dict(raw))
    return run_experiment(exp, tmp)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """One uninterrupted run of SMALL and its records, shared read-only by the tests below
    (each of them ran it for itself: the same run, made up to six times); a test that changes
    a run copies it or makes its own."""
    out = tmp_path_factory.mktemp("small")
    return out, _run(out)


def test_writes_outputs_with_one_row_per_round(finished: tuple[Path, list[dict]]) -> None:
    tmp_path, recs = finished
    assert len(recs) == 3 * 2 * 3
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == 18
    assert set(RESULT_FIELDS) <= set(rows[0])  # then one accuracy column per class
    assert all(int(r["train_steps"]) >= int(r["train_epochs"]) >= 1 for r in rows)
    assert [int(r["n_labeled"]) for r in rows[:3]] == [20, 30, 40]
    queries = [json.loads(line) for line in open(tmp_path / "queries.jsonl")]
    assert len(queries) == 18
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["config"]["loop"]["query_size"] == 10 and "torch" in cfg["versions"]
    # every strategy starts from the same labeled set and model for a given seed
    r0 = {(q["strategy"], q["seed"]): q["indices"] for q in queries if q["round"] == 0}
    assert r0[("random", 0)] == r0[("entropy", 0)] == r0[("kcenter", 0)]
    assert r0[("random", 0)] != r0[("random", 1)]
    acc0 = {(r["strategy"], int(r["seed"])): r["accuracy"] for r in rows if r["round"] == "0"}
    assert acc0[("random", 0)] == acc0[("entropy", 0)]
    # no pool item is labeled twice within a trial
    for key in r0:
        idx = sum((q["indices"] for q in queries if (q["strategy"], q["seed"]) == key), [])
        assert len(idx) == len(set(idx)) == 40


def test_same_seed_same_queries(finished: tuple[Path, list[dict]], tmp_path: Path) -> None:
    a = finished[0]
    _run(tmp_path / "b")  # a second run, in its own process state after the first
    assert (a / "queries.jsonl").read_text() == (tmp_path / "b/queries.jsonl").read_text()
    accuracies = lambda out: [r["accuracy"] for r in csv.DictReader(open(out / "results.csv"))]  # noqa: E731
    assert accuracies(a) == accuracies(tmp_path / "b")


def test_resume_after_losing_rounds_gives_same_results(
    finished: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    full = finished[0]
    _run(tmp_path / "cut")
    trials = tmp_path / "cut/trials"
    # as if killed: one trial lost its last round, another never started past round 0
    (trials / "entropy__seed1/round_002.json").unlink()
    for f in (trials / "kcenter__seed0").glob("round_00[12].json"):
        f.unlink()
    (trials / "kcenter__seed0/.model_001.pt.x.tmp").write_bytes(b"half")
    _run(tmp_path / "cut")
    assert not list(trials.rglob("*.tmp"))
    assert (tmp_path / "cut/queries.jsonl").read_text() == (full / "queries.jsonl").read_text()


def test_rerun_with_other_config_is_refused(
    finished: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished[0], out)  # a finished run of SMALL, as the test's own
    other = {**SMALL, "loop": {**SMALL["loop"], "query_size": 5}}
    from fishermask.errors import ConfigError

    with pytest.raises(ConfigError, match=r"different configuration \(differs in: .*query_size"):
        _run(out, other)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    # one worker: trials run seed-major (entropy 0, margin 0, entropy 1, margin 1), so margin
    # seed 1 cannot have finished when entropy seed 1's first query lands; with the default
    # (one worker per core) a worker that starts early could run margin 1 first
    args = [
        sys.executable,
        "-m",
        "fishermask.cli",
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
        "2",
        "--strategy",
        "entropy,margin",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--no-progress",
    ]
    subprocess.run([*args, "--out", str(tmp_path / "full")], check=True, capture_output=True)
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        [*args, "--out", str(cut)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    target = cut / "trials/entropy__seed1/round_001.json"
    deadline = time.time() + 120
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.exists(), "the run ended before it could be killed mid-way"
    assert not (cut / "trials/margin__seed1/round_003.json").exists()
    subprocess.run([*args, "--out", str(cut)], check=True, capture_output=True)
    assert (cut / "queries.jsonl").read_text() == (tmp_path / "full/queries.jsonl").read_text()
    full_rows = (tmp_path / "full/results.csv").read_text().splitlines()
    cut_rows = (cut / "results.csv").read_text().splitlines()
    strip = lambda rows: [r.split(",")[:6] for r in rows]  # noqa: E731 - drop timings
    assert strip(cut_rows) == strip(full_rows)


def test_resume_on_another_environment_is_refused_unless_allowed(tmp_path: Path) -> None:
    raw = {**SMALL, "strategies": ["random"], "seeds": [0]}
    _run(tmp_path, raw)
    trial = tmp_path / "trials/random__seed0"
    first = json.loads((trial / "round_000.json").read_text())
    assert {"torch", "fishermask", "python", "device", "cpu_model"} <= set(first["environment"])
    assert first["environment"]["cpu_model"]
    config_bytes = (tmp_path / "config.json").read_bytes()
    # as if rounds 0-1 ran on another torch and the run was killed before round 2
    (trial / "round_002.json").unlink()
    (trial / "model_002.pt").rename(trial / "model_001.pt")  # stands in for round 1's checkpoint
    rec = json.loads((trial / "round_001.json").read_text())
    rec["environment"]["torch"] = "1.0.0"
    (trial / "round_001.json").write_text(json.dumps(rec))
    from fishermask.errors import ConfigError

    with pytest.raises(ConfigError, match=r"torch '1.0.0' -> .*--allow-env-change"):
        _run(tmp_path, raw)
    exp = Experiment.prepare(ExperimentConfig.from_dict(raw), allow_env_change=True)
    run_experiment(exp, tmp_path)
    assert json.loads((trial / "round_002.json").read_text())["environment"]["torch"] != "1.0.0"
    assert json.loads((trial / "round_001.json").read_text())["environment"]["torch"] == "1.0.0"
    assert (tmp_path / "config.json").read_bytes() == config_bytes  # never rewritten


def test_queries_record_the_scores_of_the_picked_items(tmp_path: Path) -> None:
    _run(tmp_path, {**SMALL, "strategies": ["entropy", "random"], "seeds": [0]})
    queries = [json.loads(line) for line in open(tmp_path / "queries.jsonl")]
    ent = [q for q in queries if q["strategy"] == "entropy"]
    assert ent[0]["scores"] is None  # round 0: the random initial set
    for q in ent[1:]:
        assert len(q["scores"]) == len(q["indices"]) == 10
        assert q["scores"] == sorted(q["scores"], reverse=True)  # highest entropy first
    assert all(q["scores"] is None for q in queries if q["strategy"] == "random")


def test_queries_name_the_files_of_folder_data_sets(tmp_path: Path) -> None:
    """Each query names its images: their file in the tree and their index in the source."""
    import numpy as np
    from PIL import Image

    from fishermask.data import load_dataset

    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("test", 3)):
        for cls in ("ant", "bee", "cat"):
            (tmp_path / "tree" / split / cls).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 255, (8, 8), dtype=np.uint8)
                Image.fromarray(img).save(tmp_path / "tree" / split / cls / f"{cls}{i}.png")
    raw = {
        **SMALL,
        "data": {
            "dataset": str(tmp_path / "tree"),
            "class_counts": [8, 0, 8],  # the pool is a subset: pool index != dataset index
            "cache_dir": str(tmp_path / "cache"),
        },
        "model": {"name": "mlp", "width": 0.25},
        "loop": {"initial": 4, "query_size": 4, "rounds": 1},
        "strategies": ["entropy"],
        "seeds": [0],
    }
    _run(tmp_path / "run", raw)
    full = load_dataset(tmp_path / "tree", cache_dir=tmp_path / "cache")
    assert full.train_files is not None
    classes = ["ant", "cat"]  # after dropping bee
    for q in map(json.loads, open(tmp_path / "run/queries.jsonl")):
        assert len(q["files"]) == len(q["dataset_index"]) == len(q["indices"]) == 4
        assert q["files"] == [full.train_files[i] for i in q["dataset_index"]]
        rec = json.loads(
            (tmp_path / f"run/trials/entropy__seed0/round_{q['round']:03d}.json").read_text()
        )
        for f, label in zip(q["files"], rec["labels"], strict=True):
            assert f.startswith(f"train/{classes[label]}/"), (f, label)


def test_trials_run_seed_major(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # every strategy on seed 0 before any on seed 1: a run stopped part-way holds complete,
    # paired comparisons on the seeds it finished
    import fishermask.experiments.runner as runner

    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(
        runner, "run_trial", lambda exp, spec, seed, *a, **k: calls.append((spec.key, seed))
    )
    exp = Experiment.prepare(ExperimentConfig.from_dict(SMALL))
    run_experiment(exp, tmp_path)
    strategies = ["random", "entropy", "kcenter"]
    assert calls == [(s, 0) for s in strategies] + [(s, 1) for s in strategies]


def test_every_round_records_its_confusion_matrix(tmp_path: Path) -> None:
    """The test-set confusion matrix ([true][predicted] counts) is in each round record and in
    confusion.jsonl with the class names; per_class_accuracy is its diagonal over its rows."""
    raw = {**SMALL, "strategies": ["random"], "seeds": [0]}
    recs = _run(tmp_path, raw)
    lines = [json.loads(line) for line in open(tmp_path / "confusion.jsonl")]
    assert [(x["strategy"], x["seed"], x["round"]) for x in lines] == [
        ("random", 0, r) for r in range(3)
    ]
    classes = json.loads((tmp_path / "config.json").read_text())["dataset"]["classes"]
    test_counts = json.loads((tmp_path / "config.json").read_text())["dataset"]["test_class_counts"]
    for rec, line in zip(recs, lines, strict=True):
        m = rec["confusion"]
        assert line["matrix"] == m and line["classes"] == classes
        assert line["n_labeled"] == rec["n_labeled"]
        assert len(m) == len(classes) and all(len(row) == len(classes) for row in m)
        assert [sum(row) for row in m] == test_counts
        assert sum(m[i][i] for i in range(len(m))) / sum(map(sum, m)) == rec["accuracy"]
        for i, acc in enumerate(rec["per_class_accuracy"]):
            assert acc == pytest.approx(m[i][i] / sum(m[i]))
    stored = json.loads((tmp_path / "trials/random__seed0/round_002.json").read_text())
    assert stored["confusion"] == lines[-1]["matrix"]


def test_a_run_made_before_confusion_matrices_resumes_and_reports(tmp_path: Path) -> None:
    """Rounds committed by an older fishermask have no confusion matrix: the run resumes, the
    new rounds get theirs, and the report names the strategies without one at a round."""
    from typer.testing import CliRunner

    from fishermask.cli import app
    from fishermask.experiments.trial import StopRequested, run_trial

    raw = {**SMALL, "strategies": ["random", "entropy"], "seeds": [0]}
    exp = Experiment.prepare(ExperimentConfig.from_dict(raw))
    done: list[int] = []
    with pytest.raises(StopRequested):  # entropy stops after round 1, as if killed
        run_trial(
            exp,
            exp.config.strategies[1],
            0,
            tmp_path,
            stop=lambda: len(done) == 2,
            on_commit=lambda rec: done.append(rec["round"]),
        )
    for path in (tmp_path / "trials").rglob("round_*.json"):  # as an older version wrote them
        rec = json.loads(path.read_text())
        del rec["confusion"]
        path.write_text(json.dumps(rec))
    run_experiment(exp, tmp_path)
    lines = [json.loads(line) for line in open(tmp_path / "confusion.jsonl")]
    assert [(x["strategy"], x["round"]) for x in lines] == [
        ("random", 0),
        ("random", 1),
        ("random", 2),
        ("entropy", 2),
    ]
    res = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "no confusion matrices" not in res.stderr
    got = json.loads((tmp_path / "rep/report.json").read_text())[0]["confusion"]
    assert list(got) == ["random", "entropy"]  # the final round: both have it
    res = CliRunner().invoke(
        app, ["report", str(tmp_path), "--out", str(tmp_path / "rep0"), "--confusion-round", "1"]
    )
    assert res.exit_code == 0, res.output
    md = (tmp_path / "rep0/report.md").read_text()
    assert "No confusion matrix at round 1 for entropy" in md


def _cli_run(
    out: Path, *extra: str, strategies: str = "random,entropy,kcenter", seeds: str = "2"
) -> object:
    from typer.testing import CliRunner

    from fishermask.cli import app

    args = ["run", "--dataset", "digits", "--model", "cnn", "--width", "0.25"]
    args += ["--max-epochs", "2", "--batch-size", "32", "--initial", "20", "--query-size", "10"]
    args += ["-s", strategies, "--seeds", seeds, "--device", "cpu"]
    args += ["--workers", "1", "--no-progress", "--out", str(out), *extra]
    return CliRunner().invoke(app, args)


def _without_timings(path: Path) -> list[list[str]]:
    rows = list(csv.reader(open(path)))
    drop = {rows[0].index(k) for k in ("query_seconds", "train_seconds")}
    return [[v for i, v in enumerate(row) if i not in drop] for row in rows]


def test_extending_a_finished_run_equals_the_longer_run_from_the_start(tmp_path: Path) -> None:
    """3 rounds, then the same command with --rounds 5 and the same --out, gives the rounds of
    a 5-round run: the first 3 are kept, rounds 4 and 5 continue from the saved state."""
    res = _cli_run(tmp_path / "grown", "--rounds", "3")
    assert res.exit_code == 0, res.output
    kept = (tmp_path / "grown/trials/entropy__seed1/round_003.json").read_text()
    res = _cli_run(tmp_path / "grown", "--rounds", "5")
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert f"extending {tmp_path / 'grown'} from 3 to 5 queries per trial: 24 of 36 rounds" in said
    assert (tmp_path / "grown/trials/entropy__seed1/round_003.json").read_text() == kept
    res = _cli_run(tmp_path / "direct", "--rounds", "5")
    assert res.exit_code == 0, res.output
    for name in ("queries.jsonl", "confusion.jsonl"):
        grown = (tmp_path / "grown" / name).read_text()
        assert grown == (tmp_path / "direct" / name).read_text(), name
    grown = _without_timings(tmp_path / "grown/results.csv")
    assert grown == _without_timings(tmp_path / "direct/results.csv")
    assert len(grown) == 1 + 3 * 2 * 6
    meta = json.loads((tmp_path / "grown/config.json").read_text())
    assert meta["config"]["loop"]["rounds"] == 5 and meta["query_sizes"] == [10] * 5
    assert meta["extended"] == [
        {
            "loop": {"initial": 20, "query_size": 10, "rounds": 3, "budget": None},
            "query_sizes": [10] * 3,
        }
    ]
    # rerunning the longer command: complete; the shorter one now asks for fewer rounds
    res = _cli_run(tmp_path / "grown", "--rounds", "5")
    assert res.exit_code == 0 and "is complete (36 rounds)" in " ".join(res.stderr.split())
    res = _cli_run(tmp_path / "grown", "--rounds", "3")
    assert res.exit_code == 2
    said = " ".join(res.stderr.split())
    assert "holds a longer run (5 queries per trial) than this command asks for (3)" in said
    assert "delete" not in said  # the longer run's work is not to be thrown away


def test_only_a_longer_schedule_is_accepted_in_an_existing_run(tmp_path: Path) -> None:
    from fishermask.errors import ConfigError
    from fishermask.experiments.runner import Extension, check_run_dir, open_run_dir

    def exp(loop: dict, **train: object) -> Experiment:
        raw = {**SMALL, "loop": {"initial": 20, "query_size": 10, **loop}}
        raw["train"] = {**SMALL["train"], **train}
        return Experiment.prepare(ExperimentConfig.from_dict(raw))

    open_run_dir(exp({"budget": 50}), tmp_path)  # queries 10, 10, 10
    assert check_run_dir(exp({"budget": 70}), tmp_path) == Extension(rounds=(4, 6))
    assert check_run_dir(exp({"rounds": 3}), tmp_path) is None  # the same schedule
    assert check_run_dir(exp({"rounds": 4}), tmp_path) == Extension(rounds=(4, 5))
    other = r"different configuration \(differs in: "
    with pytest.raises(ConfigError, match=r"holds a longer run \(3 queries per trial\) than "):
        check_run_dir(exp({"budget": 40}), tmp_path)  # fewer rounds
    with pytest.raises(ConfigError, match=other + r"config\.loop\.budget, config\.train\.lr\)"):
        check_run_dir(exp({"budget": 70}, lr=0.01), tmp_path)  # more rounds and another change
    with pytest.raises(ConfigError, match=other + r"config\.loop\.budget, config\.loop\.query_"):
        check_run_dir(exp({"budget": 70, "query_size": 5}), tmp_path)

    cut = tmp_path / "cut"
    open_run_dir(exp({"budget": 45}), cut)  # queries 10, 10, 5: the last one cut to land on 45
    before = (cut / "config.json").read_text()
    with pytest.raises(ConfigError) as e:
        open_run_dir(exp({"budget": 80}), cut)
    assert str(e.value) == (
        f"{cut} holds a run whose last query (round 3) labeled 5 images to land on its budget "
        "45; asked for the longer schedule from the start it would label 10 there, so every "
        "later round would differ and it cannot be extended exactly; use a new --out, or "
        f"delete {cut} to start over."
    )
    assert (cut / "config.json").read_text() == before


def test_adding_seeds_and_strategies_equals_the_larger_run_from_the_start(tmp_path: Path) -> None:
    """1 seed x 2 strategies x 1 query, then 2 seeds x 3 strategies (one inserted in the middle
    of the list) x 2 queries in the same --out, gives the rounds of the larger run; the report
    counts the new trials."""
    from typer.testing import CliRunner

    from fishermask.cli import app

    grown, direct = tmp_path / "grown", tmp_path / "direct"
    res = _cli_run(grown, "--rounds", "1", strategies="random,entropy", seeds="0,")
    assert res.exit_code == 0, res.output
    kept = (grown / "trials/entropy__seed0/round_001.json").read_text()
    larger = {"strategies": "random,kcenter,entropy", "seeds": "0,1"}
    res = _cli_run(grown, "--rounds", "2", **larger)
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert (
        f"extending {grown} from 1 to 2 queries per trial, by 1 seed (1) and 1 strategy "
        "(kcenter): 4 of 18 rounds were done earlier"
    ) in said
    assert (grown / "trials/entropy__seed0/round_001.json").read_text() == kept
    res = _cli_run(direct, "--rounds", "2", **larger)
    assert res.exit_code == 0, res.output
    for name in ("queries.jsonl", "confusion.jsonl"):
        assert (grown / name).read_text() == (direct / name).read_text(), name
    rows = _without_timings(grown / "results.csv")
    assert rows == _without_timings(direct / "results.csv")
    assert len(rows) == 1 + 3 * 2 * 3
    meta = json.loads((grown / "config.json").read_text())
    assert meta["config"]["seeds"] == [0, 1] and list(meta["strategy_options"]) == [
        "random",
        "kcenter",
        "entropy",
    ]
    assert meta["extended"] == [
        {
            "loop": {"initial": 20, "query_size": 10, "rounds": 1, "budget": None},
            "query_sizes": [10],
            "seeds": [0],
            "strategies": [
                {"name": "random", "options": {}, "label": ""},
                {"name": "entropy", "options": {}, "label": ""},
            ],
        }
    ]
    fresh = json.loads((direct / "config.json").read_text())
    assert meta["config"] == fresh["config"]
    assert meta["strategy_options"] == fresh["strategy_options"]
    # the summary and the report count both seeds of every strategy, the new one's too
    for run in (grown, direct):
        res = CliRunner().invoke(app, ["report", str(run), "--out", str(run / "rep")])
        assert res.exit_code == 0, res.output
    got = json.loads((grown / "rep/report.json").read_text())[0]
    want = json.loads((direct / "rep/report.json").read_text())[0]
    assert [(s["strategy"], s["seeds"]) for s in got["summary"]] == [
        ("random", 2),
        ("kcenter", 2),
        ("entropy", 2),
    ]
    for a, b in zip(got["summary"], want["summary"], strict=True):
        assert {k: v for k, v in a.items() if "seconds" not in k} == {
            k: v for k, v in b.items() if "seconds" not in k
        }
    assert not got["incomplete"]
    summary = (grown / "summary.md").read_text()
    assert "| kcenter | 2 | 40 |" in summary
    res = _cli_run(grown, "--rounds", "2", **larger)
    assert res.exit_code == 0 and "is complete (18 rounds)" in " ".join(res.stderr.split())


def test_an_existing_run_takes_more_seeds_and_strategies_not_fewer_or_changed(
    tmp_path: Path,
) -> None:
    from fishermask.errors import ConfigError
    from fishermask.experiments.runner import Extension, check_run_dir, open_run_dir

    def exp(seeds: list[int], strategies: list[str], **loop: int) -> Experiment:
        raw = {**SMALL, "seeds": seeds, "strategies": strategies}
        raw["loop"] = {**SMALL["loop"], **loop}
        return Experiment.prepare(ExperimentConfig.from_dict(raw))

    fm = "fishermask:sparsity=0.01,label=fm"
    open_run_dir(exp([0, 1], ["random", fm]), tmp_path)
    before = (tmp_path / "config.json").read_text()

    def refused(seeds: list[int], strategies: list[str], **loop: int) -> str:
        with pytest.raises(ConfigError) as e:
            open_run_dir(exp(seeds, strategies, **loop), tmp_path)
        assert (tmp_path / "config.json").read_text() == before
        return str(e.value)

    assert check_run_dir(exp([0, 1, 2], ["random", fm]), tmp_path) == Extension(seeds=(2,))
    assert check_run_dir(exp([5, 0, 1], ["random", fm]), tmp_path) == Extension(seeds=(5,))
    assert check_run_dir(exp([1, 0], [fm, "random"]), tmp_path) is None  # another order
    got = check_run_dir(exp([0, 1], ["entropy", "random", fm, "margin"], rounds=3), tmp_path)
    assert got == Extension(rounds=(3, 4), strategies=("entropy", "margin"))
    assert got.describe() == "from 2 to 3 queries per trial, by 2 strategies (entropy, margin)"
    assert refused([1, 2], ["random", fm]) == (
        f"{tmp_path} holds a run on seeds 0, 1; this command leaves out seed 0 (a run takes "
        "more seeds, not fewer); pass every recorded seed (e.g. --seeds 0,1) with any new "
        "ones, or use a new --out."
    )
    with pytest.raises(ConfigError) as e:  # one seed: given as "3,", since "3" is a count
        open_run_dir(exp([4], ["random"]), tmp_path / "one")
        open_run_dir(exp([3], ["random"]), tmp_path / "one")
    assert str(e.value) == (
        f"{tmp_path / 'one'} holds a run on seed 4; this command leaves out seed 4 (a run takes "
        "more seeds, not fewer); pass every recorded seed (e.g. --seeds 4,) with any new ones, "
        "or use a new --out."
    )
    assert refused([0, 1, 2], ["random"]) == (
        f"{tmp_path} holds a run with strategy fishermask:sparsity=0.01,label=fm, which this "
        "command leaves out (a run takes more strategies, not fewer); pass every recorded "
        "strategy with any new ones, or use a new --out."
    )
    assert refused([0, 1], ["random", "fishermask:sparsity=0.02,label=fm", "entropy"]) == (
        f"{tmp_path} holds strategy fm as fishermask:sparsity=0.01,label=fm; this command "
        "gives fishermask:sparsity=0.02,label=fm, and a recorded strategy cannot change; add "
        "the variant beside it under a label of its own (e.g. -s 'fishermask:...,label="
        "fishermask-2'), or use a new --out."
    )
    raw = {**SMALL, "seeds": [0, 1, 2], "strategies": ["random", fm]}
    raw["train"] = {**SMALL["train"], "lr": 0.5}
    with pytest.raises(ConfigError, match=r"differs in: config\.seeds, config\.train\.lr\)"):
        open_run_dir(Experiment.prepare(ExperimentConfig.from_dict(raw)), tmp_path)
    assert (tmp_path / "config.json").read_text() == before

    assert open_run_dir(exp([0, 1, 2], ["random", fm, "entropy"]), tmp_path) == Extension(
        seeds=(2,), strategies=("entropy",)
    )
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["config"]["seeds"] == [0, 1, 2]
    assert list(meta["strategy_options"]) == ["random", "fm", "entropy"]
    assert meta["extended"] == [
        {
            "seeds": [0, 1],
            "strategies": [
                {"name": "random", "options": {}, "label": ""},
                {"name": "fishermask", "options": {"sparsity": 0.01}, "label": "fm"},
            ],
        }
    ]
    assert check_run_dir(exp([0, 1, 2], ["random", fm, "entropy"]), tmp_path) is None


def test_a_recorded_strategy_written_another_way_is_the_same_strategy(tmp_path: Path) -> None:
    """Its options spelled out at their defaults, or its name given as its label, resume (or
    extend) the run: the trials are the same. It said the strategy had changed and asked for
    a variant under a label of its own."""
    from fishermask.errors import ConfigError
    from fishermask.experiments.runner import Extension, check_run_dir, open_run_dir

    def exp(strategies: list[str], seeds: tuple[int, ...] = (0,)) -> Experiment:
        raw = {**SMALL, "seeds": list(seeds), "strategies": strategies}
        return Experiment.prepare(ExperimentConfig.from_dict(raw))

    open_run_dir(exp(["random", "fishermask"]), tmp_path)
    before = (tmp_path / "config.json").read_text()
    default = json.loads(before)["strategy_options"]["fishermask"]["sparsity"]
    same = ["random:label=random", f"fishermask:sparsity={default}"]
    assert check_run_dir(exp(same), tmp_path) is None
    assert open_run_dir(exp(same), tmp_path) is None
    assert (tmp_path / "config.json").read_text() == before
    assert check_run_dir(exp([*same, "entropy"], (0, 1)), tmp_path) == Extension(
        seeds=(1,), strategies=("entropy",)
    )
    with pytest.raises(ConfigError, match="a recorded strategy cannot change"):
        check_run_dir(exp(["random", f"fishermask:sparsity={default * 2}"]), tmp_path)
    with pytest.raises(ConfigError, match="a recorded strategy cannot change"):
        check_run_dir(exp(["fishermask:label=random", "random:label=fishermask"]), tmp_path)


def test_resuming_a_run_made_before_confusion_matrices_says_so_once(tmp_path: Path) -> None:
    res = _cli_run(tmp_path, "--rounds", "1")
    assert res.exit_code == 0, res.output
    for path in (tmp_path / "trials").rglob("round_*.json"):  # as an older version wrote them
        rec = json.loads(path.read_text())
        del rec["confusion"]
        path.write_text(json.dumps(rec))
    res = _cli_run(tmp_path, "--rounds", "2")
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert said.count("note: 12 of those rounds were committed before confusion matrices") == 1
    assert "rounds run from now on have one (in confusion.jsonl)" in said
    lines = [json.loads(line) for line in open(tmp_path / "confusion.jsonl")]
    assert {x["round"] for x in lines} == {2} and len(lines) == 6
