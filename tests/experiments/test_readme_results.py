"""The "Reading the results in Python" example runs on a run's results.csv and on
the records fishermask.run returns, and gives the numbers of summary.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return next(b for b in blocks if "read_results(" in b and "summarize(" in b)


def _rows() -> list[dict]:
    rows = []
    for strategy, accs in (("random", (0.5, 0.6)), ("entropy", (0.5, 0.7))):
        for seed in (0, 1):
            for r, acc in enumerate(accs):
                rows.append(
                    dict(
                        strategy=strategy,
                        seed=seed,
                        round=r,
                        n_labeled=20 * (r + 1),
                        accuracy=acc + 0.02 * seed,
                        query_seconds=0.0 if r == 0 else 0.1,
                        train_seconds=1.0,
                    )
                )
    return rows


def _write_run(tmp_path: Path, rows: list[dict]) -> Path:
    """``rows`` as a run directory's results.csv, at the path the example reads."""
    run = tmp_path / "runs/digits-mem"
    run.mkdir(parents=True)
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(str(r[k]) for k in header) for r in rows]
    (run / "results.csv").write_text("\n".join(lines) + "\n")
    return run


def test_the_readme_results_example_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    rows = _rows()
    _write_run(tmp_path, rows)
    monkeypatch.chdir(tmp_path)
    exec(compile(_example(), "docs/api.md", "exec"), {})
    out = capsys.readouterr().out
    assert "| entropy | 2 | 40 | 71.00 ± 1.00 |" in out  # final accuracy, mean ± std in %
    assert re.search(r"random \[20 40\] \[0.51 0.61\] \[0.01 0.01\]", out)
    # the records fishermask.run returns work the same way
    from fishermask.reporting import summarize

    assert summarize(rows)[1].final_mean == pytest.approx(0.71)


def test_the_readme_results_example_counts_seeds_by_the_planned_rounds(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """A run whose config.json plans 3 rounds, every trial stopped at round 1: the example
    printed them as finished (the most rounds any trial had); with the planned rounds none
    is."""
    import json

    rows = _rows()
    run = _write_run(tmp_path, rows)
    (run / "config.json").write_text(json.dumps({"query_sizes": [20, 20]}))
    monkeypatch.chdir(tmp_path)
    exec(compile(_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "| entropy |" not in out and "random [" not in out
