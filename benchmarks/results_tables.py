"""Print the markdown tables of one run's section in docs/results/README.md.

    python benchmarks/results_tables.py docs/results/cifar10_setting1_high_cpu_v2 [--minority]

The README's tables are copies of what `fishermask report` computed (report.json, beside the
run folders) and of the run's own results.csv; tests/test_published_docs.py checks the copies
against report.json. This script writes them, so that a section is pasted, not typed:

- **Results**: final accuracy, AULC and seconds per round, per strategy (report.json's
  summary: seeds that finished every round), FisherMask and the best means in bold;
- **Mean accuracy at each point**: per labeled-set size, over the same seeds (the curves
  `fishermask report` computes from results.csv, as in ``<run>_curves.csv``);
- **Does FisherMask beat each baseline?** (and the same for LPLgrad when the report compares
  it): paired Δ AULC, 95 % interval, Holm-adjusted p and verdict (report.json's differences);
- with ``--minority``: how many images of the minority classes (every class but the one
  with the most pool images) each strategy's queries took, mean over the seeds, per query.
  This loads the run's data set (from its config.json; the path is relative to the
  repository root, where this script must run).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

MINUS = "−"


def signed(x: float, digits: int = 2) -> str:
    """``+1.23`` / ``−0.45`` (a typographic minus, as in the README)."""
    s = f"{x:+.{digits}f}"
    return s.replace("-", MINUS)


def thousands(n: int) -> str:
    """``5 750`` (a space between thousands, as in the README's prose)."""
    return f"{n:,}".replace(",", " ")


def report_entry(run: Path, report: Path) -> dict:
    for entry in json.loads(report.read_text()):
        if Path(entry["run_dir"]).name == run.name:
            return entry
    raise SystemExit(
        f"{run.name} is not in {report}: publish it first (benchmarks/publish_results.sh)"
    )


def results_table(entry: dict) -> list[str]:
    """FisherMask's name in bold (the method the report is about), and the best mean of the
    final-accuracy and AULC columns."""
    rows = entry["summary"]
    best_final = max(r["final_mean"] for r in rows)
    best_aulc = max(r["aulc_mean"] for r in rows)
    final = rows[0]["final_labels"]
    out = [
        f"| strategy | final accuracy ({thousands(final)} labels) | AULC | query s/round "
        "| train s/round |",
        "|---|---:|---:|---:|---:|",
    ]

    def cell(mean: float, std: float, best: bool) -> str:
        text = f"{100 * mean:.2f} ± {100 * std:.2f}"
        return f"**{text}**" if best else text

    for r in rows:
        name = f"**{r['strategy']}**" if r["strategy"] == "fishermask" else r["strategy"]
        final_cell = cell(r["final_mean"], r["final_std"], r["final_mean"] == best_final)
        aulc_cell = cell(r["aulc_mean"], r["aulc_std"], r["aulc_mean"] == best_aulc)
        out.append(
            f"| {name} | {final_cell} | {aulc_cell} "
            f"| {r['query_seconds']:.2f} | {r['train_seconds']:.2f} |"
        )
    return out


def run_curves(run: Path) -> dict:
    """The run's learning curves over the seeds that finished every planned round: what
    `fishermask report` computes (and publishes as ``<run>_curves.csv``)."""
    from fishermask.experiments.store import read_results
    from fishermask.reporting.outputs import planned_rounds
    from fishermask.reporting.tables import curves

    return curves(read_results(run / "results.csv"), rounds=planned_rounds(run))


def points_table(run: Path, strategies: list[str]) -> list[str]:
    cs = run_curves(run)
    sizes = sorted({int(n) for c in cs.values() for n in c.n_labeled})
    out = [
        "| strategy | " + " | ".join(thousands(n) for n in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for s in strategies:
        c = cs.get(s)
        at = {int(n): m for n, m in zip(c.n_labeled, c.mean, strict=True)} if c else {}
        cells = [f"{100 * at[n]:.1f}" if n in at else "" for n in sizes]
        out.append(f"| {s} | " + " | ".join(cells) + " |")
    return out


def comparison_table(entry: dict, strategy: str) -> list[str]:
    diffs = [d for d in entry["differences"] if d["strategy"] == strategy]
    if not diffs:
        return []
    who = {"fishermask": "FisherMask", "lplgrad": "LPLgrad"}.get(strategy, strategy)
    out = [
        f"**Does {who} beat each baseline?** Δ AULC, {who} minus baseline, paired over the",
        f"{diffs[0]['seeds']} seeds, 95 % t-intervals, Holm-adjusted over the {len(diffs)} "
        "baselines (as in report.md):",
        "",
        "| baseline | Δ AULC (points) | 95 % interval | p (Holm) | verdict (Holm) |",
        "|---|---:|---|---:|---|",
    ]
    for d in diffs:
        verdict = d["verdict_holm"]
        if verdict in ("better", "worse"):
            verdict = f"{who} {verdict}"
        out.append(
            f"| {d['baseline']} | {signed(100 * d['mean'])} "
            f"| [{signed(100 * d['low'])}, {signed(100 * d['high'])}] "
            f"| {d['p_holm']:.3f} | {verdict} |"
        )
    return out


def minority_table(run: Path, strategies: list[str]) -> list[str]:
    from fishermask.data import apply_preset, load_dataset

    data = json.loads((run / "config.json").read_text())["config"]["data"]
    ds = load_dataset(data["dataset"])
    ds = apply_preset(
        ds, data["preset"], class_counts=data["class_counts"], seed=data["preset_seed"]
    )
    labels = [int(y) for y in ds.y_train]
    counts = defaultdict(int)
    for y in labels:
        counts[y] += 1
    majority = max(counts, key=counts.get)
    finished = {s: set(c.per_seed) for s, c in run_curves(run).items()}
    picked: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    with open(run / "queries.jsonl") as f:
        for line in f:
            q = json.loads(line)
            if q["round"] == 0 or q["seed"] not in finished.get(q["strategy"], set()):
                continue
            n = sum(labels[i] != majority for i in q["indices"])
            picked[q["strategy"]][q["round"]].append(n)
    rounds = sorted({r for s in picked.values() for r in s})
    out = [
        f"Minority-class images (every class but {majority}, "
        f"{len(labels) - counts[majority]} in the pool) taken by each query, mean over seeds:",
        "",
        "| strategy | " + " | ".join(f"query {r}" for r in rounds) + " |",
        "|---|" + "---:|" * len(rounds),
    ]
    for s in strategies:
        cells = [f"{statistics.fmean(picked[s][r]):.0f}" if picked[s][r] else "" for r in rounds]
        out.append(f"| {s} | " + " | ".join(cells) + " |")
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a published run folder, docs/results/<run>")
    ap.add_argument("--report", type=Path, help="report.json (default: beside the run folder)")
    ap.add_argument("--minority", action="store_true", help="also the minority-class picks")
    return ap


def main() -> None:
    args = build_parser().parse_args()
    run: Path = args.run
    if not (run / "results.csv").is_file() or not (run / "config.json").is_file():
        raise SystemExit(f"{run} holds no results.csv and config.json: give a run folder")
    entry = report_entry(run, args.report or run.parent / "report.json")
    strategies = [r["strategy"] for r in entry["summary"]]
    parts = [results_table(entry), points_table(run, strategies)]
    parts += [t for s in ("fishermask", "lplgrad") if (t := comparison_table(entry, s))]
    if args.minority:
        parts.append(minority_table(run, strategies))
    print("\n\n".join("\n".join(p) for p in parts))


if __name__ == "__main__":
    main()
