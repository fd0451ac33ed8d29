"""Every strategy the README, docs/ and benchmarks/*.sh pass with ``-s`` / ``--strategy``
(``fishermask:sparsity=0.005,mask_mode=dispersed,label=fm-dispersed``) is a registered
strategy with options it has and values it accepts, split as the command line splits them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fishermask.errors import ConfigError
from fishermask.experiments.config import StrategySpec, _split_top_level
from fishermask.strategies import registry

ROOT = Path(__file__).resolve().parents[1]
FILES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "benchmarks").glob("*.sh")),
]
FLAG = re.compile(r"(?:^|[\s`[])(?:-s|--strategy)\s+([^\s`\"'\]]+)", re.M)


def specs(path: Path) -> list[tuple[int, str]]:
    """(line, value) of each ``-s`` / ``--strategy`` value in the file."""
    text = path.read_text()
    # a list wrapped over lines ("kcenter,\n  fishermask"), a shell line continued
    joined = re.sub(r",[ \t]*\n\s*", ",", re.sub(r"\\\n\s*", " ", text))
    out = []
    for m in FLAG.finditer(joined):
        value = m[1]
        if value.startswith("...") or re.fullmatch(r"[A-Z_]+", value):
            continue  # a placeholder (--strategy ..., timeout -s INT)
        line = text.count("\n", 0, text.find(value.split(",")[0], m.start())) + 1
        out.append((line, value))
    return out


CASES = [(p, line, v) for p in FILES for line, v in specs(p)]


def test_the_docs_pass_strategies() -> None:
    assert len(CASES) >= 20
    assert any("label=" in v for _, _, v in CASES)


@pytest.mark.parametrize(
    ("path", "line", "value"),
    CASES,
    ids=[f"{p.relative_to(ROOT)}:{line}:{v}" for p, line, v in CASES],
)
def test_documented_strategy_is_accepted(path: Path, line: int, value: str) -> None:
    text = path.read_text()
    for item in _split_top_level(value):
        spec = StrategySpec.parse(item)
        if spec.name not in registry.available() and f'name = "{spec.name}"' in text:
            continue  # a strategy of your own, defined in that document
        try:
            registry.get(spec.name, **spec.options)
        except ConfigError as e:
            pytest.fail(f"{path.relative_to(ROOT)}:{line}: {item}: {e}")
