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


def _ranks(run: str, metric: str) -> list[str]:
    import json

    report = json.loads((ROOT / "docs" / "results" / "report.json").read_text())
    (entry,) = [r for r in report if r["run_dir"] == f"docs/results/{run}"]
    return [s["strategy"] for s in sorted(entry["summary"], key=lambda s: -s[metric])]


# (words of the README's bullet, run, strategy, metric, its rank from 1): each ranking the
# section states, checked against the committed report.json
CLAIMS = [
    (
        "FisherMask has the highest final accuracy",
        "cifar10_setting1_low_cpu_v2",
        "fishermask",
        "final_mean",
        1,
    ),
    ("and the third AULC", "cifar10_setting1_low_cpu_v2", "fishermask", "aulc_mean", 3),
    ("LPLgrad is 8th of 9 by AULC", "cifar10_setting1_low_cpu_v2", "lplgrad", "aulc_mean", 8),
    (
        "FisherMask has the highest mean AULC",
        "cifar10_setting1_high_cpu_v2",
        "fishermask",
        "aulc_mean",
        1,
    ),
    ("level\n  with margin", "cifar10_setting1_high_cpu_v2", "margin", "aulc_mean", 2),
    ("LPLgrad is 7th of 9 by AULC", "cifar10_setting1_high_cpu_v2", "lplgrad", "aulc_mean", 7),
    (
        "LPLgrad has the highest\n  mean AULC",
        "cifar10_lplgrad_cpu",
        "lplgrad-detached",
        "aulc_mean",
        1,
    ),
    ("and final accuracy (58.9", "cifar10_lplgrad_cpu", "lplgrad-joint", "final_mean", 1),
    (
        "FisherMask is last by final accuracy",
        "cifar10_setting2_cpu_v2",
        "fishermask",
        "final_mean",
        9,
    ),
    ("FisherMask is 3rd of 9 by AULC", "cifar10_setting2_cpu_v2", "fishermask", "aulc_mean", 3),
    ("the\n  first, BAIT, has 46.17", "cifar10_setting2_cpu_v2", "bait", "aulc_mean", 1),
    ("LPLgrad is first by final accuracy", "cifar10_setting2_cpu_v2", "lplgrad", "final_mean", 1),
    (
        "8th by AULC\n  (44.35), ahead of random only",
        "cifar10_setting2_cpu_v2",
        "lplgrad",
        "aulc_mean",
        8,
    ),
]


def test_every_ranking_at_a_glance_holds_in_the_report() -> None:
    readme = (ROOT / "README.md").read_text()
    glance = readme.split("## Results at a glance", 1)[1].split("\n## ", 1)[0]
    for words, run, strategy, metric, rank in CLAIMS:
        assert words in glance, f"README 'Results at a glance' no longer says {words!r}"
        ranks = _ranks(run, metric)
        assert ranks.index(strategy) + 1 == rank, (words, run, metric, ranks)
