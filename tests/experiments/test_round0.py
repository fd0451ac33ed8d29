"""One round-0 model per seed, shared by the trials that train no auxiliary module."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from fishermask.errors import ConfigError, DataError
from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.runner import Experiment, run_experiment
from fishermask.experiments.store import SharedRound0

BASE = {
    "data": {"dataset": "digits"},
    "model": {"name": "cnn", "width": 0.25},
    "train": {"max_epochs": 2, "batch_size": 32},
    "loop": {"initial": 20, "query_size": 10, "rounds": 2},
    "seeds": [0],
    "device": "cpu",
}


def _run(out: Path, strategies: list, seeds: list[int] | None = None, **kw) -> None:
    raw = {**BASE, "strategies": strategies, "seeds": seeds or [0]}
    run_experiment(Experiment.prepare(ExperimentConfig.from_dict(raw), **kw), out)


def _rows(out: Path, strategy: str) -> list[list[str]]:
    """results.csv rows of one strategy without the timing columns."""
    rows = list(csv.DictReader(open(out / "results.csv")))
    keep = ("seed", "round", "n_labeled", "accuracy", "balanced_accuracy", "train_epochs")
    return [[r[k] for k in keep] for r in rows if r["strategy"] == strategy]


def _round(out: Path, strategy: str, seed: int, r: int) -> dict:
    return json.loads((out / f"trials/{strategy}__seed{seed}/round_{r:03d}.json").read_text())


def test_plain_trials_share_round0_with_the_same_results_as_training_it(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    _run(shared, ["random", "entropy", "kcenter"], seeds=[0, 1])
    assert sorted(p.name for p in (shared / "round0").iterdir()) == ["seed0.pt", "seed1.pt"]
    for seed in (0, 1):
        assert "round0_from" not in _round(shared, "random", seed, 0)  # trained it
        for s in ("entropy", "kcenter"):
            rec = _round(shared, s, seed, 0)
            assert rec["round0_from"] == "random" and rec["strategy"] == s
    # the same trials, each alone in its own run (nothing shared): bit-identical results
    for s in ("entropy", "kcenter"):
        _run(tmp_path / s, [s], seeds=[0, 1])
        assert "round0_from" not in _round(tmp_path / s, s, 0, 0)
        assert _rows(tmp_path / s, s) == _rows(shared, s)
        q = lambda out: (out / "queries.jsonl").read_text().replace('"', "")  # noqa: E731
        lines = [ln for ln in q(shared).splitlines() if f"strategy: {s}," in ln]
        assert q(tmp_path / s).splitlines() == lines


def test_a_trial_starts_from_the_shared_model_not_its_own(tmp_path: Path) -> None:
    _run(tmp_path / "a", ["random"])
    src = tmp_path / "a/round0/seed0.pt"
    _run(tmp_path / "alone", ["entropy"])
    # untouched shared model: the trial's results are those of training round 0 itself
    (tmp_path / "same/round0").mkdir(parents=True)
    shutil.copy(src, tmp_path / "same/round0/seed0.pt")
    _run(tmp_path / "same", ["entropy"])
    assert _rows(tmp_path / "same", "entropy") == _rows(tmp_path / "alone", "entropy")
    # a different shared model (as if trained on another machine): the trial follows it
    got = torch.load(src)
    rec = json.loads(got["record"])
    rec["accuracy"] = 0.123
    state = {
        k: v + 0.5 * torch.randn_like(v) if v.is_floating_point() else v
        for k, v in got["state"]["model"].items()
    }
    (tmp_path / "other/round0").mkdir(parents=True)
    torch.save(
        {"record": json.dumps(rec), "state": {**got["state"], "model": state}},
        tmp_path / "other/round0/seed0.pt",
    )
    _run(tmp_path / "other", ["entropy"])
    r0 = _round(tmp_path / "other", "entropy", 0, 0)
    assert r0["accuracy"] == 0.123 and r0["round0_from"] == "random"
    assert r0["queried"] == _round(tmp_path / "alone", "entropy", 0, 0)["queried"]
    q1 = _round(tmp_path / "other", "entropy", 0, 1)["queried"]
    assert q1 != _round(tmp_path / "alone", "entropy", 0, 1)["queried"]


def test_strategies_with_an_auxiliary_module_neither_read_nor_write_it(tmp_path: Path) -> None:
    _run(tmp_path / "lpl", ["lpl"])
    assert not (tmp_path / "lpl/round0").exists()
    assert "round0_from" not in _round(tmp_path / "lpl", "lpl", 0, 0)
    _run(tmp_path / "a", ["random"])
    shutil.copytree(tmp_path / "a/round0", tmp_path / "both/round0")
    _run(tmp_path / "both", ["lpl"])
    assert _rows(tmp_path / "both", "lpl") == _rows(tmp_path / "lpl", "lpl")


def test_a_shared_model_from_another_run_or_environment_is_refused(tmp_path: Path) -> None:
    _run(tmp_path / "a", ["random"])
    src = tmp_path / "a/round0/seed0.pt"
    got = torch.load(src)

    def place(out: Path, edit) -> None:
        rec = json.loads(got["record"])
        edit(rec)
        (out / "round0").mkdir(parents=True)
        torch.save({"record": json.dumps(rec), "state": got["state"]}, out / "round0/seed0.pt")

    place(tmp_path / "b", lambda r: r.update(queried=r["queried"][::-1]))
    with pytest.raises(DataError, match=r"not seed 0's round 0 of this run .*Delete it"):
        _run(tmp_path / "b", ["entropy"])
    assert not (tmp_path / "b/trials/entropy__seed0/round_000.json").exists()

    place(tmp_path / "c", lambda r: r["environment"].update(torch="1.0.0"))
    with pytest.raises(ConfigError, match=r"another environment \(torch '1.0.0' -> .*--allow-env"):
        _run(tmp_path / "c", ["entropy"])
    _run(tmp_path / "c", ["entropy"], allow_env_change=True)
    assert _round(tmp_path / "c", "entropy", 0, 0)["environment"]["torch"] == "1.0.0"
    assert _round(tmp_path / "c", "entropy", 0, 1)["environment"]["torch"] != "1.0.0"

    (tmp_path / "d/round0").mkdir(parents=True)
    (tmp_path / "d/round0/seed0.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"seed0.pt cannot be read .*delete it and rerun"):
        _run(tmp_path / "d", ["entropy"])


def test_written_once_and_backfilled_by_a_trial_that_committed_round_0_before(
    tmp_path: Path,
) -> None:
    store = SharedRound0(tmp_path, 3)
    assert store.load() is None
    state = {"model": {"w": torch.ones(2)}, "aux": None}
    assert store.save({"seed": 3, "v": 1}, state)
    assert not store.save({"seed": 3, "v": 2}, {"model": {"w": torch.zeros(2)}, "aux": None})
    got = store.load()
    assert got is not None and got["record"]["v"] == 1 and got["state"]["model"]["w"][0] == 1
    assert [p.name for p in (tmp_path / "round0").iterdir()] == ["seed3.pt"]  # no temporaries

    out = tmp_path / "run"
    _run(out, ["random"])
    trial = out / "trials/random__seed0"
    # as if round 0 had been committed by a version that did not share it, then killed
    (out / "round0/seed0.pt").unlink()
    for r in (1, 2):
        (trial / f"round_{r:03d}.json").unlink()
    (trial / "model_002.pt").rename(trial / "model_000.pt")
    _run(out, ["random"])
    got = SharedRound0(out, 0).load()
    assert got is not None and got["record"] == _round(out, "random", 0, 0)
