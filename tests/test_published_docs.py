"""The hand-written prose of docs/results/README.md against the generated report.json.

report.md is checked byte for byte against the committed results (test_report.py); the
README's own comparison tables are copied by hand, so they are checked here: every
difference, interval and verdict must be what report.json holds, verdicts Holm-adjusted
as in report.md (an unadjusted "better" read as a claim the report does not make).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs/results"


def _num(text: str) -> float:
    return float(text.replace("−", "-").replace("+", ""))


def _readme_lines() -> Iterator[tuple[str | None, str]]:
    """``(run, line)`` for each line of the README; ``run`` from the latest ``--out runs/<run>``
    above it (the section's run), None before the first."""
    run = None
    for line in (RESULTS / "README.md").read_text().splitlines():
        m = re.search(r"--out runs/(\S+)", line)
        if m:
            run = m.group(1)
        yield run, line


def _readme_comparisons() -> list[tuple[str, str, list[str]]]:
    """``(run, baseline, cells)`` of every row of a "Does FisherMask beat each baseline?"
    table in the README; ``run`` from the section's ``--out runs/<run>``."""
    out = []
    in_table = False
    rows_here = 0
    for run, line in _readme_lines():
        if line.startswith("**Does FisherMask beat each baseline?**"):
            in_table, rows_here = True, 0
            continue
        if in_table and line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] in ("baseline",) or set(cells[0]) <= set("-:"):
                continue
            assert run is not None
            out.append((run, cells[0], cells))
            rows_here += 1
        elif in_table and rows_here and not line.startswith("|") and line.strip():
            in_table = False
    return out


def test_readme_comparison_tables_match_report_json_with_holm_verdicts() -> None:
    report = {Path(e["run_dir"]).name: e for e in json.loads((RESULTS / "report.json").read_text())}
    rows = _readme_comparisons()
    assert len(rows) >= 24, "the README's three comparison tables were not found"
    for run, baseline, cells in rows:
        diffs = {
            d["baseline"]: d for d in report[run]["differences"] if d["strategy"] == "fishermask"
        }
        d = diffs[baseline]
        where = f"docs/results/README.md, {run}, fishermask vs {baseline}"
        assert abs(_num(cells[1]) - 100 * d["mean"]) < 0.006, where
        low, high = (_num(x) for x in cells[2].strip("[]").split(","))
        assert abs(low - 100 * d["low"]) < 0.006 and abs(high - 100 * d["high"]) < 0.006, where
        verdict = re.sub(r"\s*\(.*\)$", "", cells[-1]).removeprefix("FisherMask ")
        assert verdict == d["verdict_holm"], f"{where}: says {cells[-1]!r}, report.md Holm: {d}"


def test_readme_summary_tables_match_report_json() -> None:
    """The README's per-run results tables (final accuracy, AULC, seconds) are copies too."""
    report = {Path(e["run_dir"]).name: e for e in json.loads((RESULTS / "report.json").read_text())}
    checked = 0
    for run, line in _readme_lines():
        if not (line.startswith("|") and run in report) or "---" in line:
            continue
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
        summary = {s["strategy"]: s for s in report[run]["summary"]}
        if cells[0] not in summary or "±" not in line:
            continue
        s = summary[cells[0]]
        final, area = (c.split("±") for c in cells[1:3])
        where = f"docs/results/README.md, {run}, {cells[0]}"
        assert _num(final[0].strip("* ")) == pytest.approx(100 * s["final_mean"], abs=0.006), where
        assert _num(final[1].strip("* ")) == pytest.approx(100 * s["final_std"], abs=0.006), where
        assert _num(area[0].strip("* ")) == pytest.approx(100 * s["aulc_mean"], abs=0.006), where
        assert _num(area[1].strip("* ")) == pytest.approx(100 * s["aulc_std"], abs=0.006), where
        assert _num(cells[3]) == pytest.approx(s["query_seconds"], abs=0.006), where
        assert _num(cells[4]) == pytest.approx(s["train_seconds"], abs=0.006), where
        checked += 1
    assert checked == 27  # three settings x nine strategies


@pytest.mark.parametrize(
    "run",
    ["cifar10_setting1_low_cpu_v2", "cifar10_setting1_high_cpu_v2", "cifar10_setting2_cpu_v2"],
)
def test_results_tables_script_writes_the_readme_tables(run: str) -> None:
    """benchmarks/results_tables.py prints a run section's tables as the README has them:
    the next run's section (Setting 2) is pasted from it, not typed."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "benchmarks/results_tables.py", f"docs/results/{run}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    readme = (RESULTS / "README.md").read_text().splitlines()
    tables = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    # the results, per-point and FisherMask tables are in the README (LPLgrad's is prose there)
    lplgrad_at = out.index("**Does LPLgrad beat each baseline?**")
    wanted = [line for line in tables if out.index(line) < lplgrad_at]
    assert len(wanted) >= 3 + 9 + 9 + 8
    missing = [line for line in wanted if line not in readme]
    assert not missing, f"not in docs/results/README.md: {missing[:3]}"
