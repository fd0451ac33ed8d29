"""The example strategy of docs/api.md runs, passes the strategy contract, and uses its option."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from fishermask.strategies import check_strategy, registry

README = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return next(b for b in blocks if "class LowestMaxProb(Strategy)" in b)


def test_readme_strategy_runs_and_every_option_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example declared `temperature: float = 1.0` and never read it: copied as it was,
    `lowest_max_prob:temperature=0.5` was accepted and changed nothing."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # keep registry clean
    code = _example()
    space: dict = {}
    exec(compile(code, "docs/api.md", "exec"), space)
    cls = space["LowestMaxProb"]
    for f in dataclasses.fields(cls):
        if f.name != "label":
            assert f"self.{f.name}" in code, f"option {f.name!r} of the example is never used"
    check_strategy(cls())
    if any(f.name == "top" for f in dataclasses.fields(cls)):
        check_strategy(cls(top=2))
