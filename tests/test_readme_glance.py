"""The README's "Results at a glance" quotes the published results: every number in it must
appear in docs/results/README.md (whose numbers tests/test_published_docs.py checks against
the committed report.json), so a republished run cannot leave the README with old numbers."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _numbers(text: str) -> list[str]:
    """Signed decimals and percentages as written (`64.6`, `+4.6`, `[+3.5,`), normalised."""
    found = re.findall(r"[+−-]?\d+\.\d+", text)
    return [n.replace("−", "-") for n in found]


def test_every_number_at_a_glance_is_in_the_published_results() -> None:
    readme = (ROOT / "README.md").read_text()
    glance = readme.split("## Results at a glance", 1)[1].split("\n## ", 1)[0]
    published = set(_numbers((ROOT / "docs" / "results" / "README.md").read_text()))
    quoted = _numbers(glance)
    assert len(quoted) >= 10, "the section's numbers were not found"
    missing = [n for n in quoted if n not in published]
    assert not missing, f"README 'Results at a glance' quotes {missing}, not in docs/results"


def test_a_number_not_published_is_caught() -> None:
    published = set(_numbers("FisherMask +4.6 [+3.5, +5.8]"))
    assert "+4.6" in published and "+9.9" not in published
