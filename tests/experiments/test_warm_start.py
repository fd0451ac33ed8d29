"""Warm start (``train.reinit: false``, the LPLgrad protocol): the model and the
loss-prediction module are kept across rounds, and resume stays exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fishermask.errors import ConfigError
from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.runner import Experiment, run_experiment
from fishermask.experiments.store import TrialStore

WARM = {
    "data": {"dataset": "digits"},
    "model": {"name": "cnn", "width": 0.25},
    "train": {"optimizer": "sgd", "lr": 0.05, "stop": "epochs", "epochs": 2, "reinit": False},
    "loop": {"initial": 20, "query_size": 10, "rounds": 2},
    "strategies": ["random", {"name": "lpl", "detach_fraction": 0.5}],
    "seeds": [0],
    "device": "cpu",
}


def _run(out: Path, raw: dict = WARM) -> list[dict]:
    return run_experiment(Experiment.prepare(ExperimentConfig.from_dict(raw)), out)


def _weights(out: Path, strategy: str, round_: int) -> dict[str, torch.Tensor]:
    return TrialStore(out, strategy, 0).checkpoint(round_)["model"]


def test_a_warm_round_starts_from_the_previous_model(tmp_path: Path) -> None:
    # with a vanishing learning rate, training barely moves the weights: a warm round 1 ends
    # where round 0 ended, a re-initialised round 1 somewhere else entirely
    train = {**WARM["train"], "lr": 1e-9}
    only_round0 = {**WARM, "train": train, "loop": {**WARM["loop"], "rounds": 0}}
    _run(tmp_path / "r0", only_round0)
    w0 = _weights(tmp_path / "r0", "random", 0)  # the same round 0 as the runs below
    for reinit in (False, True):
        out = tmp_path / f"reinit_{reinit}"
        _run(out, {**only_round0, "train": {**train, "reinit": reinit}, "loop": WARM["loop"]})
        w2 = _weights(out, "random", 2)
        params = [k for k in w0 if k.endswith(("weight", "bias"))]  # BN statistics move anyway
        close = all(torch.allclose(w0[k], w2[k], atol=1e-6) for k in params)
        assert close is not reinit


def test_warm_start_resume_is_exact(tmp_path: Path) -> None:
    _run(tmp_path / "full")
    _run(tmp_path / "cut")
    (tmp_path / "cut/trials/lpl__seed0/round_002.json").unlink()  # as if killed in round 2
    _run(tmp_path / "cut")
    for name in ("queries.jsonl", "results.csv"):
        full = (tmp_path / "full" / name).read_text()
        cut = (tmp_path / "cut" / name).read_text()
        if name == "results.csv":  # the timing columns differ between runs
            full, cut = (_drop_timings(t) for t in (full, cut))
        assert full == cut, name
    meta = json.loads((tmp_path / "full/config.json").read_text())
    assert meta["config"]["train"]["reinit"] is False


def _drop_timings(text: str) -> list[list[str]]:
    rows = [line.split(",") for line in text.splitlines()]
    keep = [i for i, h in enumerate(rows[0]) if not h.endswith("_seconds")]
    return [[r[i] for i in keep] for r in rows]


def test_a_run_published_without_checkpoints_resumes_to_the_same_results(tmp_path: Path) -> None:
    """What `benchmarks/publish_results.sh` keeps (config and round records, no models) is
    enough to continue a run in a later session: finished trials stay done, unfinished ones
    start over and give what an uninterrupted run gives."""
    _run(tmp_path / "full")
    _run(tmp_path / "cut")
    trials = tmp_path / "cut/trials"
    (trials / "lpl__seed0/round_002.json").unlink()  # lpl never finished
    for model in trials.rglob("model_*.pt"):
        model.unlink()
    done = (trials / "random__seed0/round_002.json").stat().st_mtime_ns
    _run(tmp_path / "cut")
    assert (trials / "random__seed0/round_002.json").stat().st_mtime_ns == done  # not redone
    assert not (trials / "random__seed0/model_002.pt").exists()
    assert (trials / "lpl__seed0/model_002.pt").exists()  # redone from round 0
    assert _drop_timings((tmp_path / "cut/results.csv").read_text()) == _drop_timings(
        (tmp_path / "full/results.csv").read_text()
    )


def test_a_run_made_before_a_config_field_existed_resumes(tmp_path: Path) -> None:
    """A field added later is absent from old config.json files: its default matches them."""
    out = tmp_path / "old"
    _run(out)
    path = out / "config.json"
    meta = json.loads(path.read_text())
    del meta["config"]["train"]["max_steps"]  # as written before `max_steps` existed
    path.write_text(json.dumps(meta))
    _run(out)  # max_steps keeps its default (0): the same experiment
    assert "max_steps" not in json.loads(path.read_text())["config"]["train"]  # not rewritten
    capped = {**WARM, "train": {**WARM["train"], "max_steps": 3}}
    with pytest.raises(ConfigError, match=r"differs in: config\.train\.max_steps\)"):
        _run(out, capped)
