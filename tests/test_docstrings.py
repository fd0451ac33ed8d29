"""The public docstrings say what the code does: ``help(fishermask)``, ``fishermask.query``
and the strategy classes (their options and defaults, and which strategies return scores)."""

from __future__ import annotations

import dataclasses
import inspect
import re
import warnings
from pathlib import Path

import pytest
import torch
import typer

import fishermask
from fishermask import strategies
from fishermask.cli import app
from fishermask.experiments.config import read_config_file
from fishermask.models import build_model
from fishermask.strategies import registry
from fishermask.training.config import TrainConfig


def test_package_docstring_names_what_exists() -> None:
    doc = fishermask.__doc__ or ""
    calls = re.findall(r"``fishermask\.(\w+)\(([^`]*)\)``", doc)
    assert {name for name, _ in calls} == {"query", "run"}
    for name, args in calls:
        params = inspect.signature(getattr(fishermask, name)).parameters
        for keyword in re.findall(r"(\w+)=", args):
            assert keyword in params, f"fishermask.{name} has no argument {keyword!r}"
    for name in re.findall(r"``(\w+)``", doc):
        if name[0].isupper():
            assert hasattr(fishermask, name), name
    commands = set(typer.main.get_command(app).commands)
    said = re.search(r"the command line: (.*?), each with", doc, flags=re.S)
    assert said is not None
    assert set(re.findall(r"``(?:fishermask )?(\w+)``", said[1])) == commands


def test_query_documents_every_argument() -> None:
    doc = fishermask.query.__doc__ or ""
    args = doc.split("Args:")[1].split("Returns:")[0]
    documented = set(re.findall(r"(?:^ {8}|; ``)(\w+)(?:``)?:", args, flags=re.M))
    documented |= {"options"} if "``**options``" in args else set()
    params = set(inspect.signature(fishermask.query).parameters)
    assert params - documented == set()


def test_query_scores_are_none_for_the_strategies_its_docstring_names() -> None:
    """``Returns:`` names the strategies without scores; every other one returns them."""
    doc = " ".join((fishermask.query.__doc__ or "").split())
    listed = re.search(r"scores ``None`` for strategies that have none \(([^)]*)\)", doc)
    assert listed is not None
    none = {w.lower() for w in re.split(r", ", listed[1])}
    assert none <= set(strategies.available())
    torch.manual_seed(0)
    x = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8)
    wrong = []
    for name in strategies.available():
        model = build_model("cnn", 3, (1, 8, 8), width=0.25, dropout=0.3)
        aux = strategies.get(name).make_auxiliary(model) if name in ("lpl", "lplgrad") else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = fishermask.query(
                model, x, labeled=range(6), labels=[0, 1, 2] * 2, budget=3, strategy=name, aux=aux
            )
        if (r.scores is None) != (name in none):
            wrong.append(name)
    assert wrong == []


@pytest.mark.parametrize("name", registry.available())
def test_strategy_docstring_options(name: str) -> None:
    """A strategy docstring that lists options lists every option, each with the code's
    default where it gives one in parentheses (``purity`` (0.95))."""
    cls = registry.strategy_class(name)
    own = cls.__doc__ or ""
    if "Option" not in own:
        return  # a one-line docstring (its options: `fishermask strategies`)
    docs = " ".join(" ".join((c.__doc__ or "").split()) for c in cls.__mro__)
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    listed = [f for f in fields if f"``{f}``" in docs or re.search(rf"^\s+{f}:", own, re.M)]
    assert [f for f in fields if f not in listed] == []
    for opt, shown in re.findall(r"``(\w+)`` \(([\d.]+)\)", " ".join(own.split())):
        if opt in fields and isinstance(fields[opt], int | float):
            assert float(shown) == fields[opt], f"{name}: {opt} ({shown})"


def test_train_config_says_which_profiles_cap_steps() -> None:
    """TrainConfig's docstring says whether the experiment files' cpu profiles set
    ``max_steps``; they cap epochs only (docs/decisions.md), so it must not say they use it."""
    files = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))
    uses = [f.name for f in files if read_config_file(f, "cpu")["train"].get("max_steps")]
    doc = " ".join((TrainConfig.__doc__ or "").split())
    said = "the ``cpu`` experiment profiles do not" in doc
    assert said == (uses == []), uses
