"""fishermask.run on data held in memory: the results of the same data as an .npz through the
CLI, exact resume, workers=2 = workers=1, and refusals before anything is written."""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import sys
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from typer.testing import CliRunner

import fishermask
from fishermask.cli import app
from fishermask.errors import ConfigError, DataError
from fishermask.experiments import store
from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.lock import LOCK_NAME
from fishermask.experiments.parallel import trial_failed
from fishermask.experiments.runner import Experiment
from fishermask.reporting.report import build_report

CFG = {
    "model": {"name": "mlp", "width": 0.25},
    "train": {"max_epochs": 1, "batch_size": 32},
    "loop": {"initial": 20, "query_size": 10, "rounds": 2},
    "strategies": ["random", "entropy"],
    "seeds": [0],
    "device": "cpu",
}


def _digits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    d = load_digits()  # images float64 [1797, 8, 8] in 0..16
    xtr, xte, ytr, yte = train_test_split(
        d.images / 16.0, d.target, test_size=0.2, random_state=0, stratify=d.target
    )
    return (xtr, ytr), (xte, yte)


TRAIN, TEST = _digits()
NAMES = [f"digit{i}" for i in range(10)]


class Named(torch.utils.data.Dataset):
    """``(x, y)`` arrays as a Dataset with torchvision's ``classes`` attribute."""

    def __init__(self, xy: tuple[np.ndarray, np.ndarray], classes: list[str]) -> None:
        self.x, self.y, self.classes = xy[0], xy[1], classes

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.x[i], int(self.y[i])


def _run(out: Path, **kw) -> list[dict]:
    args = {"train": TRAIN, "test": TEST, "classes": NAMES, "name": "digits", **kw}
    return fishermask.run(CFG, out=out, progress=False, **args)


def _results(out: Path) -> list[dict[str, str]]:
    """results.csv without the timings (the only fields two runs of one config may differ in)."""
    rows = list(csv.DictReader(open(out / "results.csv")))
    return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in rows]


def _same(a: Path, b: Path) -> None:
    assert (a / "queries.jsonl").read_text() == (b / "queries.jsonl").read_text()
    assert _results(a) == _results(b)


@pytest.fixture(scope="module")
def api_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api")
    records = _run(out)
    assert len(records) == 2 * 3  # 2 strategies x 3 rounds
    return out


def test_api_run_writes_a_complete_run_dir(api_run: Path, tmp_path: Path) -> None:
    for f in ("results.csv", "queries.jsonl", "summary.md", "learning_curves.png"):
        assert (api_run / f).is_file(), f
    meta = json.loads((api_run / "config.json").read_text())
    data = meta["config"]["data"]
    assert data["dataset"] == str(api_run / "data" / "digits.npz")
    assert len(data["sha256"]) == 64
    assert meta["dataset"]["name"] == "digits" and meta["dataset"]["classes"] == NAMES
    assert "acc_digit9" in _results(api_run)[0]
    m, loop = meta["config"]["model"], meta["config"]["loop"]  # titled with model and schedule
    head = f"# digits — {m['name']} width {m['width']}, {loop['initial']} → "
    assert (api_run / "summary.md").read_text().startswith(head)
    report = build_report([api_run], tmp_path / "report")
    assert "digits" in report.read_text()


def test_same_results_as_the_arrays_saved_as_npz_through_the_cli(
    api_run: Path, tmp_path: Path
) -> None:
    npz = tmp_path / "digits.npz"
    np.savez(npz, x_train=TRAIN[0], y_train=TRAIN[1], x_test=TEST[0], y_test=TEST[1],
             classes=np.array(NAMES))  # fmt: skip
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(CFG))
    out = tmp_path / "cli"
    args = ["run", "--config", str(tmp_path / "cfg.yaml"), "--dataset", str(npz)]
    res = CliRunner().invoke(app, [*args, "--workers", "1", "--no-progress", "--out", str(out)])
    assert res.exit_code == 0, res.output
    _same(api_run, out)
    cli_meta = json.loads((out / "config.json").read_text())["dataset"]
    api_meta = json.loads((api_run / "config.json").read_text())["dataset"]
    assert cli_meta == api_meta  # name, classes, counts, train fingerprint


def test_a_torch_dataset_gives_the_results_of_the_arrays(api_run: Path, tmp_path: Path) -> None:
    class PILDigits(torch.utils.data.Dataset):  # what a torchvision-style Dataset returns
        classes = NAMES

        def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
            self.x, self.y = np.rint(x * 255).astype(np.uint8), y

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i: int) -> tuple[Image.Image, int]:
            return Image.fromarray(self.x[i], mode="L"), int(self.y[i])

    out = tmp_path / "ds"
    fishermask.run(CFG, train=PILDigits(*TRAIN), test=PILDigits(*TEST), out=out, name="digits",
                   progress=False)  # fmt: skip
    _same(api_run, out)


def test_resume_after_an_interruption_is_exact(
    api_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    commit, calls = store.TrialStore.commit, []

    def interrupted(self, record, state):  # Ctrl-C right after the 4th committed round
        commit(self, record, state)
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(store.TrialStore, "commit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path)
    monkeypatch.setattr(store.TrialStore, "commit", commit)
    assert len(_results(tmp_path)) == 4  # the partial results.csv
    data = tmp_path / "data" / "digits.npz"
    written = data.stat().st_mtime_ns
    capsys.readouterr()
    _run(tmp_path)
    # as `fishermask run` says it
    assert f"resuming {tmp_path}: 4 of 6 rounds were done earlier\n" in capsys.readouterr().err
    _same(api_run, tmp_path)
    assert data.stat().st_mtime_ns == written  # the resume reads the run's copy, not a new one


def test_more_seeds_and_strategies_in_the_same_out_give_the_larger_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grown, direct = tmp_path / "grown", tmp_path / "direct"
    _run(grown, strategies=["entropy"])
    assert "extending" not in capsys.readouterr().err  # a new run says nothing of the kind
    records = _run(grown, strategies=["random", "entropy"], seeds=[0, 1])
    # as `fishermask run` says it (the API said nothing)
    assert (
        f"extending {grown} by 1 seed (1) and 1 strategy (random): 3 of 12 rounds were done "
        "earlier\n"
    ) in capsys.readouterr().err
    assert len(records) == 2 * 2 * 3
    _run(direct, strategies=["random", "entropy"], seeds=[0, 1])
    _same(grown, direct)
    extended = json.loads((grown / "config.json").read_text())["extended"]
    assert extended == [{"seeds": [0], "strategies": [{"name": "entropy", "options": {},
                                                       "label": ""}]}]  # fmt: skip


def _mtimes(out: Path) -> dict[Path, int]:
    """Every file and folder of a run directory but its lock file, which each run taking the
    lock rewrites with its own pid and start (experiments.lock), even one refused after."""
    return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.name != LOCK_NAME}


def test_two_workers_match_one(api_run: Path, tmp_path: Path) -> None:
    _run(tmp_path, workers=2)
    _same(api_run, tmp_path)


def test_a_resume_with_other_data_is_refused_and_writes_nothing(
    api_run: Path, tmp_path: Path
) -> None:
    before = _mtimes(api_run)
    y = (TRAIN[1] + 1) % 10  # other labels
    with pytest.raises(DataError, match=r"data sha256 mismatch: .* holds a run on data with "):
        _run(api_run, train=(TRAIN[0], y))
    assert _mtimes(api_run) == before


def test_a_resume_under_another_name_is_refused_and_writes_nothing(api_run: Path) -> None:
    before = _mtimes(api_run)
    with pytest.raises(ConfigError, match=r"names the data file .*digits.npz, not .*other.npz"):
        _run(api_run, name="other")
    assert _mtimes(api_run) == before


def test_a_changed_data_file_is_refused_where_it_is_loaded(api_run: Path, tmp_path: Path) -> None:
    """What a worker process or a CLI resume does: load data.dataset, check data.sha256."""
    meta = json.loads((api_run / "config.json").read_text())
    copy = tmp_path / "digits.npz"
    np.savez(copy, x_train=TRAIN[0][::-1], y_train=TRAIN[1][::-1], x_test=TEST[0],
             y_test=TEST[1], classes=np.array(NAMES))  # fmt: skip
    raw = {**meta["config"], "data": {**meta["config"]["data"], "dataset": str(copy)}}
    with pytest.raises(DataError, match="data.sha256 mismatch: .* recorded"):
        Experiment.prepare(ExperimentConfig.from_dict(raw))
    raw["data"]["dataset"] = meta["config"]["data"]["dataset"]
    Experiment.prepare(ExperimentConfig.from_dict(raw))  # the run's own file passes


@pytest.mark.parametrize(
    "kw, error, expected",
    [
        ({"config": {"data": {"dataset": "digits"}}}, ConfigError, "data.dataset='digits' is set"),
        ({"name": "my data"}, ConfigError, "name='my data'"),
        ({"workers": 0}, ConfigError, "`workers`=0"),
        ({"train": (TRAIN[0], TRAIN[1][:-1])}, DataError, "train: x has 1437 images but y"),
        ({"classes": NAMES[:5]}, DataError, "labels must be 0..4"),
        (  # an explicit classes= used to rename a Dataset's classes silently
            {"train": Named(TRAIN, NAMES), "classes": NAMES[::-1]},
            DataError,
            "classes= differ from the train Dataset's own classes (10 and 10 names; at index 0: "
            "'digit9' in classes=, 'digit0' in the Dataset), so label 0 would get the wrong name",
        ),
        (
            {"test": Named(TEST, NAMES), "classes": NAMES[:9] + ["nine"]},
            DataError,
            "at index 9: 'nine' in classes=, 'digit9' in the Dataset",
        ),
        ({"config": {**CFG, "loop": {"budget": 5000}}}, ConfigError, "Budget 5000 is larger"),
        (  # the budget won silently, as it once did in a file
            {"config": {**CFG, "loop": {"rounds": 2, "budget": 100}}},
            ConfigError,
            "config: `loop.rounds`=2 and `loop.budget`=100 both say when to stop (the budget "
            "would win); keep one.",
        ),
        (  # the training recipe as train=, as any other top-level key may be given
            {"train": {"max_epochs": 5}},
            ConfigError,
            "train= is the training data; the training recipe goes in the config: "
            "fishermask.run({..., 'train': {'max_epochs': 5}}, train=(x, y), ...)",
        ),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, kw: dict, error: type, expected: str
) -> None:
    config = kw.pop("config", CFG)
    args = {"train": TRAIN, "test": TEST, "out": tmp_path / "run", "progress": False, **kw}
    with pytest.raises(error) as exc:
        fishermask.run(config, **args)
    assert expected in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    assert not (tmp_path / "run").exists()


def test_a_keyword_loop_replaces_the_config_s_rounds_or_budget() -> None:
    """``loop=`` given as a keyword replaces the config's other stop key, as a profile does in
    a file; the budget won over a keyword's rounds."""
    from fishermask.run_api import _raw_config

    def sizes(config: dict, **settings) -> list[int]:
        raw = _raw_config(config, settings)
        return ExperimentConfig.from_dict(raw).loop.query_sizes(1000)

    budget = {**CFG, "loop": {"initial": 20, "query_size": 10, "budget": 60}}
    assert sizes(budget) == [10] * 4
    assert sizes(budget, loop={"rounds": 2}) == [10] * 2
    assert sizes(CFG, loop={"budget": 60}) == [10] * 4
    assert sizes(ExperimentConfig.from_dict(budget), loop={"rounds": 1}) == [10]
    with pytest.raises(ConfigError, match=r"^settings: `loop.rounds`=1 and `loop.budget`=60 "):
        sizes(CFG, loop={"rounds": 1, "budget": 60})


def test_a_script_without_main_guard_is_told_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With workers > 1, spawned workers import the user's script; a fishermask.run at its top
    level then runs again inside each worker. There it stops with the fix, and the parent's
    error (the pool breaks) names the fix too."""
    monkeypatch.setattr(mp.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(ConfigError, match='under `if __name__ == "__main__":`'):
        _run(tmp_path / "run")
    assert not (tmp_path / "run").exists()
    err = trial_failed("random", 0, BrokenProcessPool("terminated abruptly"))
    assert 'put the call under `if __name__ == "__main__":`, or use workers=1' in str(err)


def test_image_size_resizes_in_memory_data_as_the_npz_loader_does(tmp_path: Path) -> None:
    from fishermask.data import load_dataset
    from fishermask.data.memory import dataset_sha256, from_memory
    from fishermask.experiments.experiment import load_experiment_data

    npz = tmp_path / "d.npz"
    np.savez(npz, x_train=TRAIN[0], y_train=TRAIN[1], x_test=TEST[0], y_test=TEST[1])
    ds = from_memory(TRAIN, TEST, name="d")
    raw = {"data": {"dataset": str(npz), "sha256": dataset_sha256(ds), "image_size": [12, 10]}}
    cfg = ExperimentConfig.from_dict(raw)
    ref = load_dataset(npz, image_size=(12, 10), cache_dir=tmp_path / "cache")
    for got in (load_experiment_data(cfg, data=ds), load_experiment_data(cfg)):
        assert got.x_train.shape == (1437, 1, 12, 10)
        assert torch.equal(got.x_train, ref.x_train) and torch.equal(got.x_test, ref.x_test)


def test_sha256_pins_npz_files_only() -> None:
    with pytest.raises(ConfigError, match="`data.sha256` pins the content of an .npz"):
        ExperimentConfig.from_dict({"data": {"dataset": "digits", "sha256": "0" * 64}})


@pytest.mark.parametrize("what", ["strategy", "model"])
def test_code_in_a_scriptless_main_with_workers_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    """A strategy or model defined in `python -c` or a notebook used to start the run (data,
    config.json, results.csv written) and then fail in the first worker, which cannot import
    it."""
    from dataclasses import dataclass
    from types import ModuleType

    from fishermask.models import register_model
    from fishermask.strategies import Selection, Strategy, register

    @dataclass(frozen=True)
    class MainOnly(Strategy):
        name = f"main_only_{what}"

        def query(self, ctx, budget):
            return Selection(ctx.pool.unlabeled[:budget])

    def builder(c, shape, width):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, c))

    MainOnly.__module__ = builder.__module__ = "__main__"
    register(MainOnly)
    register_model(f"main_only_{what}", builder)
    monkeypatch.setitem(sys.modules, "__main__", ModuleType("__main__"))  # no __file__
    strategy = f"main_only_{what}" if what == "strategy" else "random"
    model = f"main_only_{what}" if what == "model" else "mlp"
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=rf"{what} 'main_only_{what}' is defined in .*__main__"):
        _run(out, workers=2, strategies=[strategy], model=model)
    assert not out.exists()


GUARDED_SCRIPT = """
import sys
from dataclasses import dataclass
import fishermask
from fishermask.strategies import Selection, Strategy, register
from sklearn.datasets import load_digits

if __name__ == "__main__":
    @register
    @dataclass(frozen=True)
    class Guarded(Strategy):
        name = "guarded"

        def query(self, ctx, budget):
            return Selection(ctx.pool.unlabeled[:budget])

    d = load_digits()
    x, y = d.images / 16.0, d.target
    try:
        fishermask.run({"model": "mlp", "train": {"epochs": 1}, "strategies": ["random", "guarded"],
                        "seeds": 1, "loop": {"initial": 20, "query_size": 10, "rounds": 1}},
                       train=(x[:1400], y[:1400]), test=(x[1400:], y[1400:]),
                       out=sys.argv[1], device="cpu", workers=2, progress=False)
    except fishermask.errors.ConfigError as e:
        print("refused:", e)
"""


def test_a_strategy_registered_under_the_main_guard_with_workers_is_refused_before_writing(
    tmp_path: Path,
) -> None:
    """A script's strategy defined under `if __name__ == "__main__":` is missing in the spawned
    workers (they import the script anew); the run used to write config.json, data/*.npz,
    results.csv and queries.jsonl, then fail in its first trial, leaving a half-made run."""
    import os
    import subprocess

    script = tmp_path / "guarded.py"
    script.write_text(GUARDED_SCRIPT)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr
    assert "refused: strategy 'guarded' is defined or registered under this script's" in res.stdout
    assert "workers=1" in res.stdout
    assert not out.exists()


def test_a_script_without_the_main_guard_with_workers_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    """A script that defines a strategy and calls fishermask.run at its top level: the worker
    that looks for the strategy (it imports the script) runs the call again and dies; the run
    ended in a BrokenProcessPool traceback, 'terminated abruptly', without the fix."""
    import os
    import subprocess

    script = tmp_path / "unguarded.py"
    body = GUARDED_SCRIPT.replace('if __name__ == "__main__":\n', "if True:\n")
    body = body.replace("    except fishermask.errors.ConfigError", "    except ValueError")
    script.write_text(body)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run(
        [sys.executable, str(script), str(out)], capture_output=True, text=True, env=env
    )
    assert res.returncode == 1
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("fishermask.errors.ConfigError: a worker process died as it imported")
    assert last.endswith(
        'put the run\'s call under `if __name__ == "__main__":`, or use workers=1.'
    )
    assert not out.exists()


def test_code_in_a_script_with_the_ray_executor_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray tasks import fishermask and `imports` only, never the driver's script: a strategy
    defined in it used to start the run and fail in its first task."""
    from dataclasses import dataclass
    from types import ModuleType

    from fishermask.strategies import Selection, Strategy, register

    @dataclass(frozen=True)
    class InScript(Strategy):
        name = "in_script_ray"

        def query(self, ctx, budget):
            return Selection(ctx.pool.unlabeled[:budget])

    InScript.__module__ = "__main__"
    register(InScript)
    main = ModuleType("__main__")
    main.__file__ = str(tmp_path / "script.py")
    monkeypatch.setitem(sys.modules, "__main__", main)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="'in_script_ray' is defined in the script .* Ray tasks"):
        _run(out, workers=2, executor="ray", strategies=["in_script_ray"])
    assert not out.exists()


def test_a_config_file_path_as_config_says_how_to_read_it(tmp_path: Path) -> None:
    # fishermask.run("exp.yaml", ...) said only "config is str; give ... a mapping"
    x, y = np.zeros((8, 8, 8), np.uint8), np.arange(8) % 2
    with pytest.raises(ConfigError) as e:
        fishermask.run("exp.yaml", train=(x, y), test=(x, y), out=tmp_path / "r")
    assert str(e.value) == (
        "config is the str 'exp.yaml'; give an ExperimentConfig or a mapping ({'model': 'mlp', "
        "'loop': {...}, ...}); for a config file, read_config_file('exp.yaml', profile=None) "
        "(fishermask.experiments.config) gives that mapping."
    )
    assert not (tmp_path / "r").exists()
