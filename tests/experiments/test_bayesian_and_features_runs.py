"""Runs with MC-dropout models and with features you bring: resumable, deterministic."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fishermask.data import load_dataset
from fishermask.errors import ConfigError
from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.runner import Experiment, open_run_dir, run_experiment

DROPOUT = {
    "data": {"dataset": "digits"},
    "model": "cnn:dropout=0.3,hidden_dropout=0.1,width=0.25",
    "train": {"max_epochs": 2, "batch_size": 32},
    "loop": {"initial": 20, "query_size": 6, "rounds": 2},
    "strategies": [
        "bald:mc_samples=4",
        "batchbald:mc_samples=4,num_samples=30",
        "typiclust",
        "probcover",
        "entropy:stochastic=power,beta=2",
    ],
    "seeds": [0],
    "device": "cpu",
}


def _run(tmp: Path, raw: dict) -> list[dict]:
    return run_experiment(Experiment.prepare(ExperimentConfig.from_dict(raw)), tmp)


def test_model_option_form_and_errors() -> None:
    cfg = ExperimentConfig.from_dict(DROPOUT)
    assert (cfg.model.name, cfg.model.dropout, cfg.model.hidden_dropout) == ("cnn", 0.3, 0.1)
    assert cfg.model.width == 0.25
    with pytest.raises(ConfigError, match="Unknown key.*foo.*model"):
        ExperimentConfig.from_dict({"model": "cnn:foo=1"})
    with pytest.raises(ConfigError, match=r"`model.dropout`=1.5, must be a rate in \[0, 1\)"):
        ExperimentConfig.from_dict({"model": {"name": "cnn", "dropout": 1.5}})
    with pytest.raises(ConfigError, match="`model.dropout`='lots', must be a valid number"):
        ExperimentConfig.from_dict({"model": {"name": "cnn", "dropout": "lots"}})
    with pytest.raises(ConfigError, match="needs a model with dropout"):
        Experiment.prepare(ExperimentConfig.from_dict({**DROPOUT, "model": "cnn"}))


def test_mc_dropout_run_resumes_to_the_same_queries(tmp_path: Path) -> None:
    _run(tmp_path / "full", DROPOUT)
    _run(tmp_path / "cut", DROPOUT)
    trials = tmp_path / "cut/trials"
    for name in ("bald", "batchbald", "entropy"):
        (trials / f"{name}__seed0/round_002.json").unlink()
    (trials / "probcover__seed0/round_001.json").unlink()
    (trials / "probcover__seed0/round_002.json").unlink()
    _run(tmp_path / "cut", DROPOUT)
    full = (tmp_path / "full/queries.jsonl").read_text()
    assert (tmp_path / "cut/queries.jsonl").read_text() == full
    a = [r["accuracy"] for r in csv.DictReader(open(tmp_path / "full/results.csv"))]
    b = [r["accuracy"] for r in csv.DictReader(open(tmp_path / "cut/results.csv"))]
    assert a == b


def _features(tmp_path: Path) -> Path:
    ds = load_dataset("digits")
    x = torch.cat([ds.x_train, ds.x_test]).flatten(1).numpy().astype(np.float32)
    path = tmp_path / "digits_features.npy"
    np.save(path, x[:, ::2])  # 32 "features" per image
    return path


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_features_run_with_embedding_and_gradient_strategies(tmp_path: Path, model: str) -> None:
    raw = {
        "data": {"dataset": "digits", "features": str(_features(tmp_path))},
        "model": {"name": model, "width": 1.0 if model == "linear" else 0.25},
        "train": {"max_epochs": 3, "batch_size": 32},
        "loop": {"initial": 20, "query_size": 10, "rounds": 1},
        "strategies": [
            "fishermask:sparsity=1" if model == "linear" else "fishermask:sparsity=0.1",
            "bait",
            "badge",
            "kcenter",
            "typiclust",
            "probcover",
            "margin",
        ],
        "seeds": [0],
        "device": "cpu",
    }
    exp = Experiment.prepare(ExperimentConfig.from_dict(raw))
    assert exp.data.image_shape == (32, 1, 1)
    recs = run_experiment(exp, tmp_path / "run")
    assert len(recs) == 7 * 2 and all(r["n_labeled"] in (20, 30) for r in recs)
    meta = json.loads((tmp_path / "run/config.json").read_text())
    assert meta["config"]["data"]["features"].endswith("digits_features.npy")
    # on a linear head k-center on the model's embedding is k-center on the features
    assert all(r["train_epochs"] >= 1 for r in recs)


def test_features_refuse_image_augmentation_and_lpl(tmp_path: Path) -> None:
    raw = {
        "data": {"dataset": "digits", "features": str(_features(tmp_path))},
        "model": {"name": "linear"},
        "train": {"augment": "crop"},
        "strategies": ["random"],
    }
    with pytest.raises(ConfigError, match="use --augment none"):
        Experiment.prepare(ExperimentConfig.from_dict(raw))
    raw = {**raw, "train": {}, "strategies": ["lpl"]}
    with pytest.raises(ConfigError, match="feature"):
        Experiment.prepare(ExperimentConfig.from_dict(raw))
    with pytest.raises(ConfigError, match="not both"):
        ExperimentConfig.from_dict({"data": {"features": "a.npy", "backbone": "b.pt"}})


def test_runs_recorded_before_new_fields_still_resume(tmp_path: Path) -> None:
    exp = Experiment.prepare(
        ExperimentConfig.from_dict({**DROPOUT, "model": "cnn", "strategies": ["random"]})
    )
    open_run_dir(exp, tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    for key in ("dropout", "hidden_dropout"):
        del meta["config"]["model"][key]
    for key in ("features", "backbone"):
        del meta["config"]["data"][key]
    (tmp_path / "config.json").write_text(json.dumps(meta))
    open_run_dir(exp, tmp_path)  # same experiment: accepted
