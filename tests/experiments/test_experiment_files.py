"""Every shipped experiment file parses, in each of its profiles, into a valid config."""

from __future__ import annotations

from pathlib import Path

import pytest

from fishermask import strategies
from fishermask.experiments.config import ExperimentConfig, read_config_file

FILES = sorted((Path(__file__).parents[2] / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("profile", ["cpu", "paper"])
def test_experiment_file(path: Path, profile: str) -> None:
    cfg = ExperimentConfig.from_dict(read_config_file(path, profile))
    names = {s.name for s in cfg.strategies}
    assert len(cfg.seeds) >= 5
    assert cfg.loop.budget is not None and cfg.loop.rounds is None
    for s in cfg.strategies:
        strategies.get(s.name, **s.options)
    if path.stem == "cifar10_lplgrad":  # the LPLgrad paper's protocol: SGD, warm start
        assert names == {"random", "entropy", "lpl", "lplgrad"}
        fractions = {s.options["detach_fraction"] for s in cfg.strategies if "lpl" in s.name}
        assert fractions == {0.6, 0.0}
        assert cfg.train.optimizer == "sgd" and not cfg.train.reinit and cfg.train.stop == "epochs"
        assert cfg.train.milestones == (round(0.8 * cfg.train.epochs),)
        return
    assert {"random", "entropy", "margin", "kcenter", "bait", "fishermask"} <= names
    assert cfg.train.max_steps == 0  # no step cap: training follows the paper's stop rule
    assert len(cfg.loop.query_sizes(10**6)) + 1 >= 6  # at least 6 points per curve
    if profile == "paper":
        assert cfg.model.width == 1.0 and cfg.train.optimizer == "adam" and cfg.train.lr == 1e-3


def test_files_exist_for_every_setting() -> None:
    stems = {p.stem for p in FILES}
    for data in ("cifar10", "fashionmnist"):
        for setting in ("setting1_low", "setting1_high", "setting2"):
            assert f"{data}_{setting}" in stems
