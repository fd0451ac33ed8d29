"""`fishermask report` and the paired AULC comparison, from results files alone."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from scipy import stats
from typer.testing import CliRunner

from fishermask.cli import app
from fishermask.reporting.compare import Difference, holm, paired_aulc_differences

FIELDS = "strategy,seed,round,n_labeled,accuracy,balanced_accuracy,query_seconds,train_seconds"


def _write_run(d: Path, acc: dict[str, list[list[float]]]) -> None:
    d.mkdir(parents=True)
    lines = [FIELDS]
    for strat, seeds in acc.items():
        for seed, curve in enumerate(seeds):
            for r, a in enumerate(curve):
                lines.append(f"{strat},{seed},{r},{10 * (r + 1)},{a},{a},0.5,1.5")
    (d / "results.csv").write_text("\n".join(lines) + "\n")


def test_paired_differences_known_values(tmp_path: Path) -> None:
    # two points per curve: AULC = mean of the two accuracies
    _write_run(
        tmp_path / "r",
        {
            "fishermask": [[0.5, 0.7], [0.5, 0.9], [0.5, 0.8]],  # AULC .60 .70 .65
            "random": [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]],  # AULC .50 .50 .50
            "entropy": [[0.5, 0.7], [0.5, 0.9], [0.5, 0.8]],  # identical -> 0
        },
    )
    from fishermask.experiments.store import read_results

    diffs = {
        d.baseline: d
        for d in paired_aulc_differences(read_results(tmp_path / "r/results.csv"), "fishermask")
    }
    d = diffs["random"]
    assert d.mean == pytest.approx(0.15) and d.seeds == 3
    half = stats.t.ppf(0.975, 2) * 0.05 / math.sqrt(3)  # sd of (.10,.20,.15) is .05
    assert (d.low, d.high) == pytest.approx((0.15 - half, 0.15 + half))
    assert d.verdict == "better"
    expected_p = stats.ttest_rel([0.60, 0.70, 0.65], [0.5, 0.5, 0.5]).pvalue
    assert d.p_value == pytest.approx(expected_p) and d.p_value < 0.05
    assert diffs["entropy"].mean == pytest.approx(0.0)
    assert diffs["entropy"].verdict == "no significant difference"
    assert diffs["entropy"].p_value == 1.0  # the same AULC on every seed


def test_holm_adjustment_by_hand() -> None:
    def diff(mean: float, p: float) -> Difference:
        return Difference("m", f"b{p}", 5, mean, math.nan, math.nan, p)

    # sorted p: .01 -> 3 x .01 = .03; .03 -> 2 x .03 = .06; .04 -> max(.06, 1 x .04) = .06
    diffs = [diff(-0.02, 0.04), diff(0.05, 0.01), diff(0.01, 0.03), diff(0.0, math.nan)]
    out = holm(diffs)
    assert [p for p, _ in out[:3]] == pytest.approx([0.06, 0.03, 0.06])
    assert [v for _, v in out] == [
        "no significant difference",
        "better",
        "no significant difference",
        "one seed: no test",
    ]
    assert holm([diff(-0.05, 0.001)]) == [(0.001, "worse")]


def test_report_command(tmp_path: Path) -> None:
    _write_run(
        tmp_path / "s1",
        {
            "fishermask": [[0.4, 0.6], [0.5, 0.6]],
            "margin": [[0.4, 0.5], [0.5, 0.5]],
            "bait": [[0.4], [0.5, 0.9]],  # seed 0 still running
        },
    )
    (tmp_path / "s1/query_info.jsonl").write_text(
        json.dumps(
            {
                "strategy": "fishermask",
                "seed": 0,
                "round": 1,
                "mask_profile": [
                    {"name": "conv.weight", "kept": 3, "size": 10},
                    {"name": "fc.weight", "kept": 4, "size": 4},
                ],
            }
        )
        + "\n"
    )
    _write_run(tmp_path / "s2", {"random": [[0.3, 0.4]]})
    res = CliRunner().invoke(
        app, ["report", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "rep")]
    )
    assert res.exit_code == 0, res.output
    md = (tmp_path / "rep/report.md").read_text()
    assert "| fishermask | 2 | 20 | 60.00 ± 0.00 |" in md
    assert "| margin | 2 |" in md and "s1_curves.png" in md and "s2_curves.png" in md
    assert "s1_mask_profile.png" in md
    assert "Not finished" in md and "bait (1 of 2 seeds finished)" in md
    # only the finished seed counts; one seed has no spread to show ("± 0.00" said none)
    assert "| bait | 1 | 20 | 90.00 | " in md
    data = json.loads((tmp_path / "rep/report.json").read_text())
    assert data[0]["mask_profile"][0]["fraction"] == pytest.approx(0.3)
    assert data[0]["differences"][0]["mean"] == pytest.approx(0.05)
    assert "| p | p (Holm) | verdict (Holm) |" in md
    for f in ("s1_curves.png", "s2_curves.png", "s1_mask_profile.png"):
        assert (tmp_path / "rep" / f).stat().st_size > 1000
    # reproducible: the same inputs give the same tables
    first = md
    CliRunner().invoke(
        app, ["report", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "rep")]
    )
    assert (tmp_path / "rep/report.md").read_text() == first


def test_report_writes_each_runs_curves_as_csv(tmp_path: Path) -> None:
    # a paper's table of accuracy at each budget, or a pgfplots figure, needed the plotted
    # means and spreads, which report.md and report.json did not hold (results.csv has every
    # seed's rows, a running seed's too)
    _write_run(
        tmp_path / "s1",
        {
            "random": [[0.4, 0.6], [0.5, 0.8]],
            "bait": [[0.4], [0.5, 0.9]],  # seed 0 still running: left out, as in the figure
        },
    )
    res = CliRunner().invoke(app, ["report", str(tmp_path / "s1"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r/s1_curves.csv").read_text().splitlines() == [
        "strategy,round,n_labeled,seeds,accuracy_mean,accuracy_std,"
        "balanced_accuracy_mean,balanced_accuracy_std",
        "random,0,10,2,0.450000,0.050000,0.450000,0.050000",
        "random,1,20,2,0.700000,0.100000,0.700000,0.100000",
        "bait,0,10,1,0.500000,0.000000,0.500000,0.000000",
        "bait,1,20,1,0.900000,0.000000,0.900000,0.000000",
    ]


def test_report_rejects_non_run_dir(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "has no results.csv" in res.stderr


def test_report_title_names_data_model_and_label_schedule(tmp_path: Path) -> None:
    _write_run(tmp_path / "s1", {"random": [[0.3, 0.4]]})
    config = {
        "dataset": {"name": "cifar10-jpeg"},
        "config": {
            "data": {"preset": "setting1"},
            "model": {"name": "resnet18", "width": 0.125},
            "loop": {"initial": 250, "query_size": 1375, "rounds": None, "budget": 5750},
        },
    }
    (tmp_path / "s1/config.json").write_text(json.dumps(config))
    res = CliRunner().invoke(app, ["report", str(tmp_path / "s1"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "r/report.md").read_text()
    assert "## cifar10-jpeg setting1 — resnet18 width 0.125, 250 → 5750 labels by 1375" in md


REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    not (REPO / "docs/results/report.md").exists(), reason="no published results in this tree"
)
@pytest.mark.parametrize(
    "report_md",
    sorted(str(p.relative_to(REPO)) for p in (REPO / "docs/results").rglob("report.md")),
)
def test_published_report_reproduces_from_committed_results(
    report_md: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/results/report.md, and every run's own report.md beside its results, is what
    `fishermask report` makes of the committed results (a run's own one went stale when the
    report's format changed and nothing checked it)."""
    monkeypatch.chdir(REPO)
    published = (REPO / report_md).read_text()
    runs = [line.split("`")[1] for line in published.splitlines() if line.startswith("Run dir")]
    assert runs, "report.md names no run directory"
    res = CliRunner().invoke(app, ["report", *runs, "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report.md").read_text() == published


def _report(*args: str | Path) -> object:
    return CliRunner().invoke(app, ["report", *map(str, args)])


def test_report_refuses_to_overwrite_a_report_of_other_runs(tmp_path: Path) -> None:
    _write_run(tmp_path / "s1", {"random": [[0.3, 0.4]]})
    _write_run(tmp_path / "s2", {"random": [[0.5, 0.6]]})
    out = tmp_path / "rep"
    assert _report(tmp_path / "s1", "--out", out).exit_code == 0
    first = (out / "report.md").read_text()
    # the same runs again, or more runs: fine (publish_results.sh adds runs this way)
    assert _report(tmp_path / "s1", "--out", out).exit_code == 0
    assert _report(tmp_path / "s1", tmp_path / "s2", "--out", out).exit_code == 0
    # a report that drops a run of the one in --out: refused, nothing written
    before = (out / "report.md").read_text()
    res = _report(tmp_path / "s2", "--out", out)
    assert res.exit_code == 2
    assert "built from other run directories" in res.stderr and "--force" in res.stderr
    assert str(tmp_path / "s1") in res.stderr.replace("\n", "")
    assert (out / "report.md").read_text() == before != first
    res = _report(tmp_path / "s2", "--out", out, "--force")
    assert res.exit_code == 0, res.output
    assert "s1" not in (out / "report.md").read_text().replace(str(tmp_path), "")


def test_report_names_outputs_of_same_named_runs_apart(tmp_path: Path) -> None:
    _write_run(tmp_path / "A/run", {"random": [[0.3, 0.4]]})
    _write_run(tmp_path / "B/run", {"random": [[0.5, 0.6]]})
    res = _report(tmp_path / "A/run", tmp_path / "B/run", "--out", tmp_path / "rep")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "rep/report.md").read_text()
    assert "(A_run_curves.png)" in md and "(B_run_curves.png)" in md
    assert (tmp_path / "rep/A_run_curves.png").read_bytes() != (
        tmp_path / "rep/B_run_curves.png"
    ).read_bytes()


def test_report_output_names_keep_plain_names() -> None:
    from fishermask.reporting.report import output_names

    assert output_names([Path("x/s1"), Path("y/s2")]) == ["s1", "s2"]
    assert output_names([Path("x/a/run"), Path("y/a/run")]) == ["x_a_run", "y_a_run"]
    assert output_names([Path("x/run"), Path("x/run")]) == ["run", "run_2"]


@pytest.mark.parametrize("damage", ["truncate", "drop_column", "extra_cell"])
def test_report_on_a_damaged_results_file_is_one_line(tmp_path: Path, damage: str) -> None:
    _write_run(tmp_path / "s1", {"random": [[0.3, 0.4]], "entropy": [[0.3, 0.5]]})
    path = tmp_path / "s1/results.csv"
    text = path.read_text()
    if damage == "truncate":
        text = text[: len(text) - 12]  # cut inside the last row
    elif damage == "drop_column":
        text = "\n".join(",".join(line.split(",")[:3]) for line in text.splitlines())
    else:
        text += "random,1,0,10,0.3,0.3,0.5,1.5,9\n"
    path.write_text(text)
    res = _report(tmp_path / "s1", "--out", tmp_path / "rep")
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and "results.csv" in res.stderr
    assert "Traceback" not in res.output and not (tmp_path / "rep").exists()


def test_report_out_naming_a_file_is_one_line(tmp_path: Path) -> None:
    _write_run(tmp_path / "s1", {"random": [[0.3, 0.4]]})
    (tmp_path / "f").write_text("x")
    res = _report(tmp_path / "s1", "--out", tmp_path / "f")
    assert res.exit_code == 2 and "is a file" in res.stderr


def test_report_refuses_an_unknown_method(tmp_path: Path) -> None:
    # a typo used to give exit 0 and only "No paired comparison" in report.md
    _write_run(tmp_path / "s1", {"random": [[0.3, 0.4]], "entropy": [[0.3, 0.5]]})
    res = _report(tmp_path / "s1", "--out", tmp_path / "rep", "--method", "entropi")
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: --method entropi: no such strategy in this run;")
    assert "choose from random, entropy; did you mean 'entropy'?" in res.stderr
    assert len(res.stderr.splitlines()) == 1 and not (tmp_path / "rep").exists()
    # a known one, a strategy's name for its labelled variant, or a method that only some of
    # the runs have: fine
    _write_run(tmp_path / "s2", {"random": [[0.3, 0.4]], "lplgrad-joint": [[0.3, 0.5]]})
    for method in ("entropy", "lplgrad"):
        res = _report(
            tmp_path / "s1", tmp_path / "s2", "--out", tmp_path / method, "--method", method
        )
        assert res.exit_code == 0, res.output


def test_headline_names_the_winner_and_its_margin(tmp_path: Path) -> None:
    from fishermask.experiments.store import read_results
    from fishermask.reporting.compare import headline

    _write_run(
        tmp_path / "r",
        {
            "random": [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]],  # AULC .50
            "fishermask": [[0.5, 0.7], [0.5, 0.9], [0.5, 0.8]],  # AULC .60 .70 .65
            "entropy": [[0.5, 0.7], [0.5, 0.8], [0.5, 0.8]],  # AULC .60 .65 .65
        },
    )
    line = headline(read_results(tmp_path / "r/results.csv"))
    half = 100 * stats.t.ppf(0.975, 2) * 0.05 / math.sqrt(3)
    # Holm over the two strategies vs random: entropy's p (t = 8) doubled, then fishermask's
    p_fm, p_en = 2 * stats.t.sf(15 / (5 / math.sqrt(3)), 2), 2 * stats.t.sf(8, 2)
    p_holm = max(2 * p_en, p_fm)
    assert line is not None and line.startswith(
        "best AULC: fishermask (65.00 %, picked from 3 strategies); vs random +15.00 points"
        " over 3 paired seeds"
    )
    assert f"[{15 - half:+.2f}, {15 + half:+.2f}], unadjusted): better (p {p_holm:.3f}, " in line
    assert "Holm-adjusted over the 2 strategies vs random" in line
    assert "vs entropy (the runner-up) +1.67 points" in line
    assert "Holm-adjusted over all 3 pairs of strategies" in line
    _write_run(tmp_path / "one", {"random": [[0.5, 0.5]]})
    assert headline(read_results(tmp_path / "one/results.csv")) is None


def test_headline_names_the_runner_up_where_it_is_compared(tmp_path: Path) -> None:
    # "vs entropy +0.66 points over 2 paired seeds (...): no significant difference (p 0.804,
    # Holm-adjusted over all 1 pairs of strategies) — the runner-up": the runner-up was named
    # a sentence after its name, and one pair read "all 1 pairs"
    from fishermask.experiments.store import read_results
    from fishermask.reporting.compare import headline

    _write_run(tmp_path / "r", {"random": [[0.5, 0.6], [0.5, 0.7]], "entropy": [[0.5, 0.5]] * 2})
    line = headline(read_results(tmp_path / "r/results.csv"))
    assert line is not None and "vs entropy (the runner-up) +7.50 points" in line
    assert line.endswith("Holm-adjusted over the 1 pair of strategies)"), line
    _write_run(tmp_path / "s", {"random": [[0.5, 0.6]] * 2, "margin": [[0.5, 0.8], [0.5, 0.7]]})
    line = headline(read_results(tmp_path / "s/results.csv"))
    assert line is not None and "Holm-adjusted over the 1 strategy vs random)" in line, line
    res = CliRunner().invoke(
        app,
        [
            "report",
            str(tmp_path / "s"),
            "--method",
            "margin",
            "--latex",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Holm-adjusted over the 1 baseline):" in (tmp_path / "o/report.md").read_text()
    assert (
        "Holm-adjusted over the 1 baseline."
        in (tmp_path / "o/s_margin_vs_baselines.tex").read_text()
    )


def test_headline_adjusts_for_picking_the_best(tmp_path: Path) -> None:
    # fishermask beats random with an unadjusted p of 0.035 (its 95 % interval excludes 0),
    # but it was picked as the best of five strategies: Holm over the five comparisons with
    # random gives 5 x 0.035 > 0.05, so the headline must not call it better than random
    from fishermask.experiments.store import read_results
    from fishermask.reporting.compare import headline, paired_aulc_differences

    weak = [[0.5, 0.5], [0.5, 0.7], [0.5, 0.6]]  # AULC vs random +0, +.10, +.05: p 0.23
    _write_run(
        tmp_path / "r",
        {
            "random": [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]],
            "fishermask": [[0.5, 0.7], [0.5, 0.9], [0.5, 0.8]],  # +.10 +.20 +.15: p 0.035
            **{name: weak for name in ("entropy", "margin", "kcenter", "badge")},
        },
    )
    rows = read_results(tmp_path / "r/results.csv")
    unadjusted = {d.baseline: d for d in paired_aulc_differences(rows, "fishermask")}
    assert unadjusted["random"].verdict == "better"  # what the headline used to print
    line = headline(rows)
    assert line is not None
    vs_random = line.split("; ")[1]
    assert vs_random.startswith("vs random +15.00 points") and "unadjusted" in vs_random
    assert ": no significant difference (p 0.175, Holm-adjusted over the 5 strategies" in vs_random
    assert "picked from 6 strategies" in line


def test_round_zero_compares_only_models_trained_differently(tmp_path: Path) -> None:
    # round 0 of entropy equals random's on every seed (same initial set, same training):
    # left out; lpl's round-0 model differs: paired against random's, seeds 0-2
    _write_run(
        tmp_path / "r",
        {
            "random": [[0.50, 0.6], [0.60, 0.6], [0.40, 0.6]],
            "entropy": [[0.50, 0.7], [0.60, 0.7], [0.40, 0.7]],
            "lpl": [[0.40, 0.6], [0.55, 0.6], [0.30, 0.6]],  # -0.10, -0.05, -0.10
        },
    )
    from fishermask.experiments.store import read_results
    from fishermask.reporting.compare import round_zero_differences

    rows = read_results(tmp_path / "r/results.csv")
    (z,) = round_zero_differences(rows)
    assert (z.strategy, z.baseline, z.seeds) == ("lpl", "random", 3)
    assert z.baseline_mean == pytest.approx(0.5)
    d = [-0.10, -0.05, -0.10]
    half = stats.t.ppf(0.975, 2) * stats.tstd(d) / math.sqrt(3)
    assert z.mean == pytest.approx(sum(d) / 3)
    assert (z.low, z.high) == pytest.approx((sum(d) / 3 - half, sum(d) / 3 + half))
    assert z.verdict == "lower"
    # an unfinished trial's round 0 counts; one seed gives no interval
    partial = [r for r in rows if r["strategy"] != "lpl" or (r["seed"], r["round"]) == (0, 0)]
    (z1,) = round_zero_differences(partial)
    assert z1.seeds == 1 and z1.verdict == "one seed: no interval"
    assert round_zero_differences(rows, baseline="margin") == []  # no such baseline

    assert _report(tmp_path / "r", "--out", tmp_path / "out").exit_code == 0
    md = (tmp_path / "out/report.md").read_text()
    assert "| lpl | 3 | 50.00 | -8.33 |" in md and "| entropy | 3 |" not in md.split("Round 0")[1]
    data = json.loads((tmp_path / "out/report.json").read_text())
    assert [x["strategy"] for x in data[0]["round_zero"]] == ["lpl"]
    assert not (tmp_path / "out/r_round0.tex").exists()
    # --latex: the same table as a booktabs tabular, the report's numbers
    assert _report(tmp_path / "r", "--out", tmp_path / "tex", "--latex").exit_code == 0
    tex = (tmp_path / "tex/r_round0.tex").read_text()
    body = [ln for ln in tex.splitlines() if not ln.startswith("%")]
    assert body[0] == r"\begin{tabular}{lrrrll}" and body[-1] == r"\end{tabular}"
    ci = f"$[{100 * z.low:+.2f}, {100 * z.high:+.2f}]$"
    assert f"lpl & 3 & $50.00$ & $-8.33$ & {ci} & lower \\\\" in body
    assert "entropy" not in "".join(body)
    assert "% Round 0 (the initial labels, before any query)" in tex


def test_a_run_without_the_compared_methods_says_how_to_compare(tmp_path: Path) -> None:
    """A run of baselines (or of your own strategy) got no comparison and no word on why."""
    _write_run(tmp_path / "r", {"random": [[0.5, 0.6]] * 2, "mine": [[0.5, 0.7]] * 2})
    assert _report(tmp_path / "r", "--out", tmp_path / "o").exit_code == 0
    md = (tmp_path / "o/report.md").read_text()
    assert "No paired comparison: none of fishermask, lplgrad is among this run's" in md
    assert "--method NAME" in md
    assert _report(tmp_path / "r", "--out", tmp_path / "o2", "--method", "mine").exit_code == 0
    md = (tmp_path / "o2/report.md").read_text()
    assert "No paired comparison" not in md and "**mine vs each baseline**" in md


def test_a_compared_method_still_running_is_not_called_missing(tmp_path: Path) -> None:
    """A run whose FisherMask trials had not finished a seed said "none of fishermask, lplgrad
    is among this run's strategies", as if it had never been asked for."""
    curves = {"random": [[0.5, 0.6]] * 2, "entropy": [[0.5, 0.7]] * 2}
    _write_run(tmp_path / "r", {**curves, "fishermask": [[0.5]]})
    assert _report(tmp_path / "r", "--out", tmp_path / "o").exit_code == 0
    md = (tmp_path / "o/report.md").read_text()
    assert "fishermask (0 of 1 seeds finished)" in md
    assert "No paired comparison yet: fishermask has no seed that finished every round." in md
    assert "is among this run's strategies" not in md


def test_mask_profile_per_fishermask_variant(tmp_path: Path) -> None:
    """Two FisherMask variants of one run keep different masks: the report gives each its own
    profile (and figure) instead of one average of both."""
    _write_run(
        tmp_path / "s1",
        {"fishermask": [[0.4, 0.6]], "fm-dispersed": [[0.4, 0.5]], "random": [[0.4, 0.5]]},
    )

    def rec(strategy: str, conv: int, fc: int) -> str:
        rows = [{"name": "conv.weight", "kept": conv, "size": 10}]
        rows.append({"name": "fc.weight", "kept": fc, "size": 4})
        return json.dumps({"strategy": strategy, "seed": 0, "round": 1, "mask_profile": rows})

    (tmp_path / "s1/query_info.jsonl").write_text(
        rec("fm-dispersed", 10, 0) + "\n" + rec("fishermask", 0, 4) + "\n"
    )
    res = CliRunner().invoke(app, ["report", str(tmp_path / "s1"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "rep/report.json").read_text())[0]
    fractions = {s: [row["fraction"] for row in p] for s, p in data["mask_profiles"].items()}
    assert fractions == {"fishermask": [0.0, 1.0], "fm-dispersed": [1.0, 0.0]}
    assert [r["fraction"] for r in data["mask_profile"]] == [0.0, 1.0]  # run order: fishermask
    md = (tmp_path / "rep/report.md").read_text()
    assert "![fishermask mask profile](s1_mask_profile.png)" in md
    assert "![fm-dispersed mask profile](s1_fm-dispersed_mask_profile.png)" in md
    assert (tmp_path / "rep/s1_fm-dispersed_mask_profile.png").stat().st_size > 1000


def test_a_labelled_variant_is_compared_whatever_its_label(tmp_path: Path) -> None:
    """README's own example, `fishermask:mask_mode=dispersed,label=fm-dispersed`, was left out
    of the paired comparisons: only labels starting with `fishermask-` counted as variants.
    The run's config.json names each label's strategy."""
    _write_run(
        tmp_path / "s1",
        {
            "fishermask": [[0.4, 0.6], [0.5, 0.6]],
            "fm-dispersed": [[0.4, 0.5], [0.5, 0.7]],
            "random": [[0.4, 0.5], [0.5, 0.5]],
        },
    )
    specs = [
        {"name": "fishermask", "options": {}, "label": ""},
        {"name": "fishermask", "options": {"mask_mode": "dispersed"}, "label": "fm-dispersed"},
        {"name": "random", "options": {}, "label": ""},
    ]
    (tmp_path / "s1/config.json").write_text(json.dumps({"config": {"strategies": specs}}))
    res = CliRunner().invoke(app, ["report", str(tmp_path / "s1"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "r/report.md").read_text()
    assert "**fishermask vs each baseline**" in md
    assert "**fm-dispersed vs each baseline**" in md
    data = json.loads((tmp_path / "r/report.json").read_text())[0]
    pairs = {(x["strategy"], x["baseline"]) for x in data["differences"]}
    assert ("fm-dispersed", "random") in pairs and ("fm-dispersed", "fishermask") in pairs


def _write_confusion(d: Path, matrices: dict[tuple[str, int, int], list[list[int]]]) -> None:
    """confusion.jsonl as `fishermask run` writes it: classes cat, dog."""
    (d / "confusion.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "strategy": s,
                    "seed": seed,
                    "round": r,
                    "n_labeled": 10 * (r + 1),
                    "classes": ["cat", "dog"],
                    "matrix": m,
                }
            )
            + "\n"
            for (s, seed, r), m in matrices.items()
        )
    )


def test_report_draws_each_strategys_confusion_matrix_at_the_final_or_chosen_round(
    tmp_path: Path,
) -> None:
    run = tmp_path / "r"
    _write_run(run, {"random": [[0.5, 0.6], [0.5, 0.7]], "entropy": [[0.5, 0.8], [0.5, 0.9]]})
    _write_confusion(
        run,
        {
            ("random", 0, 0): [[3, 1], [2, 4]],
            ("random", 0, 1): [[4, 0], [1, 5]],
            ("random", 1, 1): [[3, 1], [0, 6]],
            ("entropy", 0, 1): [[4, 0], [0, 6]],
            ("entropy", 1, 1): [[4, 0], [1, 5]],
        },
    )
    res = _report(run, "--out", tmp_path / "rep")
    assert res.exit_code == 0, res.output
    assert "no confusion matrices" not in res.stderr
    md = (tmp_path / "rep/report.md").read_text()
    assert "![confusion matrices at round 1](r_confusion.png)" in md
    assert (tmp_path / "rep/r_confusion.png").read_bytes()[:4] == b"\x89PNG"
    got = json.loads((tmp_path / "rep/report.json").read_text())[0]["confusion"]
    assert list(got) == ["random", "entropy"]  # results.csv order
    assert got["random"] == {
        "round": 1,
        "n_labeled": 20,
        "seeds": [0, 1],
        "classes": ["cat", "dog"],
        "matrix": [[7, 1], [1, 11]],  # summed over the seeds
    }
    # a chosen round; a strategy without a matrix there is named
    res = _report(run, "--out", tmp_path / "rep0", "--confusion-round", "0")
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "rep0/report.json").read_text())[0]["confusion"]
    assert list(got) == ["random"] and got["random"]["matrix"] == [[3, 1], [2, 4]]
    assert "No confusion matrix at round 0 for entropy" in (tmp_path / "rep0/report.md").read_text()
    # a round the run does not have: refused, nothing written
    res = _report(run, "--out", tmp_path / "rep9", "--confusion-round", "9")
    assert res.exit_code == 2
    assert f"--confusion-round 9: {run} has rounds 0 to 1" in " ".join(res.stderr.split())
    assert not (tmp_path / "rep9").exists()


def test_report_of_runs_without_confusion_matrices_says_so_once(tmp_path: Path) -> None:
    _write_run(tmp_path / "a", {"random": [[0.3, 0.4]]})
    _write_run(tmp_path / "b", {"random": [[0.5, 0.6]]})
    res = _report(tmp_path / "a", tmp_path / "b", "--out", tmp_path / "rep")
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert said.count("no confusion matrices") == 1
    assert f"{tmp_path / 'a'}, {tmp_path / 'b'}" in said
    assert "confusion" not in (tmp_path / "rep/report.md").read_text()
    assert not list((tmp_path / "rep").glob("*confusion*"))


def test_headline_never_shows_the_winner_behind_the_runner_up_unexplained(tmp_path: Path) -> None:
    from fishermask.experiments.store import read_results
    from fishermask.reporting.compare import headline

    # a tie: the same AULCs on other seeds; float rounding ranks fishermask first
    # (0.61666...67 vs ...66) while the paired mean comes out at -1.9e-17: it read "-0.00"
    _write_run(
        tmp_path / "tie",
        {
            "random": [[0.2], [0.2], [0.2]],
            "fishermask": [[0.31], [0.72], [0.82]],
            "entropy": [[0.82], [0.31], [0.72]],
        },
    )
    line = headline(read_results(tmp_path / "tie/results.csv"))
    assert line is not None and line.startswith("best AULC: fishermask (61.67 %")
    assert "vs entropy (the runner-up) +0.00 points over 3 paired seeds" in line
    assert "-0.00" not in line
    # a run stopped part-way: fishermask ranks first over its 2 finished seeds (AULC .55 and
    # .75), entropy second over its 1 (.63), which beats fishermask's .55 on that seed
    _write_run(
        tmp_path / "part",
        {
            "random": [[0.5, 0.5], [0.5, 0.5]],
            "fishermask": [[0.5, 0.6], [0.5, 1.0]],
            "entropy": [[0.5, 0.76], [0.5]],
        },
    )
    line = headline(read_results(tmp_path / "part/results.csv"))
    assert line is not None
    assert "vs entropy (the runner-up) -8.00 points over 1 paired seed: one seed: no test, " in line
    assert line.endswith(
        "entropy ahead of fishermask on the seeds both finished; fishermask ranks first by its "
        "mean AULC over its 2 finished seeds (entropy: 1)"
    )


def _curve_styles(figs: list) -> list[dict[str, tuple[str, str, str]]]:
    """Per learning-curve figure: legend label (without ``(n=..)``) -> colour, dash, marker."""
    from matplotlib.colors import to_hex

    out = []
    for fig in figs:
        ax = fig.axes[0]
        out.append(
            {
                ln.get_label().split(" (n=")[0]: (
                    to_hex(ln.get_color()),
                    ln.get_linestyle(),
                    ln.get_marker(),
                )
                for ln in ax.get_lines()
            }
        )
    return out


def test_a_strategy_keeps_its_look_in_every_figure_of_a_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Colours went by position in each run: FisherMask was purple in one figure and brown
    in the next of the same paper (C4 after random..kcenter, C5 after bait)."""
    import fishermask.reporting.plots as plots

    _write_run(
        tmp_path / "a",
        {s: [[0.3, 0.4]] for s in ("random", "entropy", "fishermask", "mine")},
    )
    _write_run(
        tmp_path / "b",
        {s: [[0.3, 0.4]] for s in ("random", "margin", "kcenter", "bait", "mine", "fishermask")},
    )
    figs: list = []
    real = plots.save_figure
    monkeypatch.setattr(
        plots, "save_figure", lambda fig, path, formats=(): figs.append(fig) or real(fig, path)
    )
    assert _report(tmp_path / "a", tmp_path / "b", "--out", tmp_path / "rep").exit_code == 0
    a, b = _curve_styles(figs)
    assert (
        a["fishermask"]
        == b["fishermask"]
        == _curve_styles([_single_figure(tmp_path, monkeypatch, "fishermask")])[0]["fishermask"]
    )
    assert a["random"] == b["random"] and a["mine"] == b["mine"]
    for styles in (a, b):
        assert len(set(styles.values())) == len(styles)


def _single_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str):
    """The figure of a one-strategy run (``strategy`` alone, so first in the run)."""
    import fishermask.reporting.plots as plots
    from fishermask.experiments.store import read_results

    _write_run(tmp_path / "alone", {strategy: [[0.3, 0.4]]})
    figs: list = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, formats=(): figs.append(fig))
    plots.plot_learning_curves(read_results(tmp_path / "alone/results.csv"), tmp_path / "x.png")
    return figs[0]


def test_built_in_strategies_have_colour_blind_safe_distinct_colours_and_markers() -> None:
    from fishermask.reporting.plots import BUILTIN_STYLES, strategy_styles
    from fishermask.strategies import available

    assert set(available()) <= set(BUILTIN_STYLES)
    colours = [c.lower() for c, _ in BUILTIN_STYLES.values()]
    markers = [m for _, m in BUILTIN_STYLES.values()]
    assert len(set(colours)) == len(colours) and len(set(markers)) == len(markers)
    # tab10's red/green pair (C2/C3) and yellow on white are gone
    assert not {"#2ca02c", "#d62728", "#f0e442"} & set(colours)
    # a labelled variant keeps its strategy's colour and marker, with a dash of its own
    s = strategy_styles(
        ["lplgrad-joint", "lplgrad-detached", "fm-dispersed", "fishermask"],
        {"fm-dispersed": "fishermask"},
    )
    assert (
        s["lplgrad-joint"]["color"]
        == s["lplgrad-detached"]["color"]
        == BUILTIN_STYLES["lplgrad"][0]
    )
    assert s["lplgrad-joint"]["linestyle"] != s["lplgrad-detached"]["linestyle"]
    assert s["fishermask"]["linestyle"] == "-" and s["fm-dispersed"]["linestyle"] != "-"
    assert s["fm-dispersed"]["marker"] == BUILTIN_STYLES["fishermask"][1]


def _fm_run(d: Path) -> None:
    _write_run(
        d,
        {
            "random": [[0.3, 0.4], [0.3, 0.5], [0.3, 0.45]],
            "least_confidence": [[0.3, 0.5], [0.3, 0.6], [0.3, 0.5]],
            "fishermask": [[0.3, 0.6], [0.3, 0.6], [0.3, 0.65]],
        },
    )


def test_report_writes_vector_figures_on_request_without_changing_report_md(
    tmp_path: Path,
) -> None:
    _fm_run(tmp_path / "s1")
    assert _report(tmp_path / "s1", "--out", tmp_path / "plain").exit_code == 0
    assert not list((tmp_path / "plain").glob("*.pdf")) and not list(
        (tmp_path / "plain").glob("*.svg")
    )
    for out in ("v1", "v2"):
        res = _report(
            tmp_path / "s1", "--out", tmp_path / out, "--format", "pdf", "--format", "svg"
        )
        assert res.exit_code == 0, res.output
    v1 = tmp_path / "v1"
    assert (v1 / "s1_curves.pdf").read_bytes()[:5] == b"%PDF-"
    assert b"<svg" in (v1 / "s1_curves.svg").read_bytes()[:1000]
    # no creation date: the same results give the same bytes
    for name in ("s1_curves.pdf", "s1_curves.svg"):
        assert (v1 / name).read_bytes() == (tmp_path / "v2" / name).read_bytes()
    assert (v1 / "report.md").read_text() == (tmp_path / "plain/report.md").read_text()
    assert (v1 / "s1_curves.png").read_bytes() == (tmp_path / "plain/s1_curves.png").read_bytes()


def test_report_refuses_an_unknown_figure_format_before_writing(tmp_path: Path) -> None:
    _fm_run(tmp_path / "s1")
    res = _report(tmp_path / "s1", "--out", tmp_path / "rep", "--format", "eps")
    assert res.exit_code == 2
    assert "--format eps" in res.stderr and "pdf, svg" in res.stderr
    assert "did you mean" not in res.stderr  # nothing close
    assert not (tmp_path / "rep").exists()
    res = _report(tmp_path / "s1", "--out", tmp_path / "rep", "--format", "sgv")
    assert res.exit_code == 2 and "(PNG is always written); did you mean 'svg'?" in res.stderr


def test_report_latex_tables_are_booktabs_with_the_report_numbers(tmp_path: Path) -> None:
    _fm_run(tmp_path / "s1")
    assert _report(tmp_path / "s1", "--out", tmp_path / "plain").exit_code == 0
    res = _report(tmp_path / "s1", "--out", tmp_path / "rep", "--latex")
    assert res.exit_code == 0, res.output
    rep = tmp_path / "rep"
    assert (rep / "report.md").read_text() == (tmp_path / "plain/report.md").read_text()
    summary = (rep / "s1_summary.tex").read_text()
    diffs = (rep / "s1_fishermask_vs_baselines.tex").read_text()
    data = json.loads((rep / "report.json").read_text())[0]
    for tex in (summary, diffs):
        body = [ln for ln in tex.splitlines() if not ln.startswith("%")]
        assert body[0].startswith(r"\begin{tabular}") and body[-1] == r"\end{tabular}"
        assert [r"\toprule", r"\midrule", r"\bottomrule"] == [
            ln for ln in body if ln in (r"\toprule", r"\midrule", r"\bottomrule")
        ]
        cols = len(body[0].rsplit("{", 1)[1].rstrip("}"))  # \begin{tabular}{lrr...}
        rows = [ln for ln in body[1:-1] if ln.endswith(r"\\")]
        assert all(ln.count(" & ") == cols - 1 for ln in rows)
        assert "_" not in tex.replace(r"\_", "").split("\n", 3)[-1]  # escaped in the table
    assert r"least\_confidence" in summary and r"final accuracy (\%)" in summary
    fm = next(s for s in data["summary"] if s["strategy"] == "fishermask")
    assert f"${100 * fm['aulc_mean']:.2f} \\pm {100 * fm['aulc_std']:.2f}$" in summary
    d = next(x for x in data["differences"] if x["baseline"] == "random")
    assert f"${100 * d['mean']:+.2f}$" in diffs and f"{d['p_holm']:.3f}" in diffs
    assert "Holm-adjusted over the 2 baselines" in diffs


def _text_sizes(fig) -> list[float]:
    """The font sizes (pt) of every visible, non-empty text of a drawn figure."""
    texts = [t for t in fig.findobj(lambda o: hasattr(o, "get_fontsize")) if t.get_visible()]
    return [t.get_fontsize() for t in texts if getattr(t, "get_text", lambda: "")()]


def _six_confusions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any):
    """The confusion figure of six strategies of a ten-class run, drawn (not saved)."""
    import numpy as np

    import fishermask.reporting.confusion as confusion

    classes = [f"class{i}" for i in range(10)]
    at = {
        s: confusion.RoundConfusion(s, 3, 200, [0, 1], classes, np.eye(10, dtype=np.int64) * 9 + 1)
        for s in ("random", "entropy", "margin", "kcenter", "fishermask", "lplgrad")
    }
    figs: list = []
    monkeypatch.setattr(confusion, "save_figure", lambda fig, path, *_: figs.append(fig) or path)
    confusion.plot_confusions(at, tmp_path / "c.png", "a title", **kw)
    figs[0].canvas.draw()
    return figs[0]


def test_confusion_figure_stays_readable_at_a_pages_text_width(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six strategies of a ten-class run made a 13.6-inch-wide figure: at a page's 7-inch
    text width its cell numbers came out at 3 pt."""
    fig = _six_confusions(tmp_path, monkeypatch)
    width = fig.get_size_inches()[0]
    smallest = min(_text_sizes(fig))
    assert smallest * min(1.0, 7.0 / width) >= 5.0, (width, smallest)


@pytest.mark.parametrize(
    ("classes", "n", "width"),
    [
        (["cargo ship", "cat", "dog"], 3, None),
        (["airplane", "automobile", "bird", "cat"], 2, None),
        (["airplane", "automobile", "bird", "cat"], 2, 3.3),
    ],
)
def test_confusion_figure_is_not_cut_at_its_edges(
    tmp_path: Path, classes: list[str], n: int, width: float | None
) -> None:
    """Constrained layout placed "predicted class" from a first guess at the tilted class
    names: the PNG ended inside its descenders (ink in the last pixel rows)."""
    import numpy as np
    from PIL import Image

    import fishermask.reporting.confusion as confusion

    k = len(classes)
    at = {
        s: confusion.RoundConfusion(s, 5, 120, [0, 1], classes, np.eye(k, dtype=np.int64) * 9 + 1)
        for s in ("random", "entropy", "fishermask")[:n]
    }
    png = confusion.plot_confusions(at, tmp_path / "c.png", "pets — cnn", width=width)
    ink = np.asarray(Image.open(png).convert("L")) < 200  # [H, W]
    edges = {"top": ink[0], "bottom": ink[-1], "left": ink[:, 0], "right": ink[:, -1]}
    assert not any(e.any() for e in edges.values()), {k: int(e.sum()) for k, e in edges.items()}


@pytest.mark.parametrize("n", [3, 14, 62])
def test_mask_profile_ticks_name_tensors_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    """The x axis had a tick at 0 (no tensor 0) and, for a few tensors, ticks between two."""
    import fishermask.reporting.report as report

    figs: list = []
    monkeypatch.setattr(report, "save_figure", lambda fig, path, *_: figs.append(fig) or path)
    profile = [{"name": f"t{i}", "size": 10, "mean_kept": 1.0, "fraction": 0.1} for i in range(n)]
    report.plot_mask_profile(profile, tmp_path / "m.png")
    ticks = list(figs[0].axes[0].get_xticks())
    assert all(float(t).is_integer() and 1 <= t <= n for t in ticks), ticks
    assert {1, n} <= set(ticks)  # the first tensor and the final layer's are labelled


def test_a_runs_own_plot_draws_a_labelled_variant_in_its_strategys_colour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fishermask.reporting.plots as plots
    from fishermask.reporting.outputs import write_run_outputs

    run = tmp_path / "r"
    _write_run(run, {s: [[0.3, 0.4]] for s in ("random", "fishermask", "fm-d")})
    specs = [
        {"name": "random"},
        {"name": "fishermask"},
        {"name": "fishermask", "label": "fm-d"},
    ]
    (run / "config.json").write_text(json.dumps({"config": {"strategies": specs}}))
    figs: list = []
    real = plots.save_figure
    monkeypatch.setattr(
        plots, "save_figure", lambda fig, path, *_: figs.append(fig) or real(fig, path)
    )
    write_run_outputs(run, ["random", "fishermask", "fm-d"], "t")
    (styles,) = _curve_styles(figs)
    assert styles["fm-d"][0] == styles["fishermask"][0]  # same colour
    assert styles["fm-d"][1] != styles["fishermask"][1]  # another dash


def test_figure_width_draws_figures_at_their_printed_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At one column of a two-column paper (3.3 in) the default 6.4-8.4-inch figures
    shrank to half: 8 pt legend text printed at 3-4 pt."""
    import fishermask.reporting.confusion as confusion
    import fishermask.reporting.plots as plots
    import fishermask.reporting.report as report

    _write_run(
        tmp_path / "s1",
        {s: [[0.3, 0.4], [0.3, 0.5]] for s in ("random", "entropy", "margin", "kcenter")}
        | {s: [[0.3, 0.6], [0.3, 0.5]] for s in ("bait", "fishermask", "lpl", "lplgrad", "badge")},
    )
    rows = [
        {"name": f"t{i}", "size": 10, "kept": 1 if i == 3 else 0, "fraction": 0.1} for i in range(4)
    ]
    (tmp_path / "s1/query_info.jsonl").write_text(
        json.dumps({"strategy": "fishermask", "seed": 0, "round": 1, "mask_profile": rows}) + "\n"
    )
    figs: list = []
    for module in (plots, report, confusion):
        real = module.save_figure
        monkeypatch.setattr(
            module,
            "save_figure",
            lambda fig, path, *a, real=real: figs.append(fig) or real(fig, path, *a),
        )
    _write_confusion(tmp_path / "s1", {(s, 0, 1): [[3, 1], [2, 4]] for s in ("random", "bait")})
    res = _report(tmp_path / "s1", "--out", tmp_path / "rep", "--figure-width", "3.3")
    assert res.exit_code == 0, res.output
    assert len(figs) == 3  # learning curves, mask profile, confusion matrices
    assert figs[2].get_size_inches()[0] == pytest.approx(3.3)
    for fig in figs[:2]:
        fig.canvas.draw()
        assert fig.get_size_inches()[0] == pytest.approx(3.3)
        sizes = _text_sizes(fig)
        assert min(sizes) >= 7, sorted(sizes)[:5]
        # nothing drawn outside the figure (a legend beside the axes would be cut off)
        box = fig.bbox
        ax = fig.axes[0]
        parts = [*fig.legends, ax.get_legend(), ax.title, ax.xaxis.label, ax.yaxis.label]
        for part in (p for p in parts if p is not None and p.get_visible()):
            e = part.get_window_extent()
            assert box.x0 - 1 <= e.x0 and e.x1 <= box.x1 + 1, part
            assert box.y0 - 1 <= e.y0 and e.y1 <= box.y1 + 1, part
    # a width no figure has: refused before anything is written
    res = _report(tmp_path / "s1", "--out", tmp_path / "bad", "--figure-width", "0.5")
    assert res.exit_code == 2 and "--figure-width 0.5" in res.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(("width", "across", "numbers"), [(3.3, 2, False), (7.0, 3, True)])
def test_confusion_figure_at_a_printed_width(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, width: float, across: int, numbers: bool
) -> None:
    """--figure-width drew the learning curves at their printed size but left the confusion
    figure at its screen size (9.6 inches wide for six strategies of ten classes)."""
    fig = _six_confusions(tmp_path, monkeypatch, width=width)
    w, h = fig.get_size_inches()
    assert w == pytest.approx(width) and h <= 9.0
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 6
    assert len({round(ax.get_position().x0, 3) for ax in panels}) == across
    cells = [t for ax in panels for t in ax.texts]
    assert bool(cells) == numbers
    # true size in print: nothing under 6 pt, nothing outside the figure
    assert min(_text_sizes(fig)) >= 6
    box = fig.bbox
    for part in [*panels, fig._suptitle]:
        e = part.get_tightbbox() if part in panels else part.get_window_extent()
        assert box.x0 - 1 <= e.x0 and e.x1 <= box.x1 + 1 and box.y0 - 1 <= e.y0, part
    # panel titles do not run into their neighbours'
    titles = sorted((ax.title.get_window_extent() for ax in panels), key=lambda e: (-e.y0, e.x0))
    for a, b in zip(titles, titles[1:], strict=False):
        assert a.y0 != b.y0 or a.x1 <= b.x0, (a, b)
    # the outer panels' class names do not overlap one another: tilted names are spaced
    # (perpendicular to the text) by the tick spacing times sin(angle), at least their height
    names = [t for t in panels[-1].get_xticklabels() if t.get_text()]
    step = panels[-1].get_window_extent().width / 10 / fig.dpi * 72  # points
    for t in names:
        assert step * math.sin(math.radians(t.get_rotation())) >= t.get_fontsize(), step
    if numbers:  # each cell wide enough for "100" at its size
        cell = panels[0].get_window_extent().width / 10 / fig.dpi * 72  # points
        assert cell >= 3 * 0.6 * max(t.get_fontsize() for t in cells), cell


def test_latex_summary_of_a_run_still_going_says_which_seeds_it_counts(tmp_path: Path) -> None:
    _write_run(
        tmp_path / "s1", {"random": [[0.3, 0.4], [0.3, 0.5]], "entropy": [[0.3, 0.4], [0.3]]}
    )
    res = _report(tmp_path / "s1", "--out", tmp_path / "rep", "--latex")
    assert res.exit_code == 0, res.output
    tex = (tmp_path / "rep/s1_summary.tex").read_text()
    assert (
        "% Not finished (only seeds that finished every round are counted): entropy (1 of 2" in tex
    )


def test_report_of_a_run_in_progress_lists_the_trials_not_started(tmp_path: Path) -> None:
    # a run published while going (docs/results): its config.json plans 3 strategies x 3
    # seeds; random and entropy finished seed 0 (entropy's seed 1 is at round 0), fishermask
    # has no row
    _write_run(tmp_path / "r", {"random": [[0.3, 0.4]], "entropy": [[0.3, 0.5], [0.3]]})
    config = {
        "config": {
            "strategies": [
                {"name": "random", "options": {}, "label": ""},
                {"name": "entropy", "options": {}, "label": ""},
                {"name": "fishermask", "options": {}, "label": "fm"},
            ],
            "seeds": [0, 1, 2],
        }
    }
    (tmp_path / "r/config.json").write_text(json.dumps(config))
    res = CliRunner().invoke(app, ["report", str(tmp_path / "r"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "rep/report.md").read_text()
    assert (
        "Not finished (only seeds that finished every round are counted above): random (1 of "
        "3 seeds finished), entropy (1 of 3 seeds finished), fm (0 of 3 seeds finished)."
    ) in md
    # the method is planned, not missing: its comparison comes with its first finished seed
    assert "No paired comparison yet: fm has no seed that finished every round." in md
    entry = json.loads((tmp_path / "rep/report.json").read_text())[0]
    assert entry["incomplete"]["fm"] == {"finished_seeds": 0, "seeds": 3}
    # without a config.json only the trials with rows are known (as before)
    (tmp_path / "r/config.json").unlink()
    CliRunner().invoke(app, ["report", str(tmp_path / "r"), "--out", str(tmp_path / "rep2")])
    md = (tmp_path / "rep2/report.md").read_text()
    assert "entropy (1 of 2 seeds finished)." in md and "fm" not in md


def _planned(d: Path, strategies: list[str], seeds: list[int], queries: int) -> None:
    """A config.json as a run writes it, planning ``queries`` queries per trial."""
    config = {
        "config": {
            "strategies": [{"name": s, "options": {}, "label": ""} for s in strategies],
            "seeds": seeds,
        },
        "query_sizes": [10] * queries,
    }
    (d / "config.json").write_text(json.dumps(config))


def test_headline_counts_finished_trials_by_the_planned_rounds(tmp_path: Path) -> None:
    # config.json plans 3 queries (4 rounds); every trial stopped at round 2: none finished,
    # as `fishermask report` says, but the headline (counting a trial finished at the most
    # rounds any has) named a winner of the unfinished curves
    from fishermask.experiments.store import read_results
    from fishermask.reporting.compare import headline
    from fishermask.reporting.outputs import planned_rounds

    run = tmp_path / "r"
    _write_run(run, {"random": [[0.3, 0.4, 0.5]] * 2, "fishermask": [[0.3, 0.6, 0.7]] * 2})
    _planned(run, ["random", "fishermask"], [0, 1], queries=3)
    rows = read_results(run / "results.csv")
    assert headline(rows, rounds=planned_rounds(run)) is None
    _planned(run, ["random", "fishermask"], [0, 1], queries=2)  # 3 rounds: all finished
    line = headline(rows, rounds=planned_rounds(run))
    assert line is not None and line.startswith("best AULC: fishermask (55.00 %, picked from 2")


def test_a_run_with_only_partial_trials_reports_no_finished_trial(tmp_path: Path) -> None:
    # config.json plans 3 queries (4 rounds); every trial is at round 1 or 2: none finished,
    # although some have as many rounds as any (once counted finished at that shorter length)
    run = tmp_path / "r"
    _write_run(run, {"random": [[0.3, 0.4, 0.5], [0.3, 0.4]], "fishermask": [[0.3, 0.6, 0.7]]})
    _planned(run, ["random", "fishermask"], [0, 1], queries=3)
    res = _report(run, "--out", tmp_path / "rep")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "rep/report.md").read_text()
    assert (
        "Not finished (only seeds that finished every round are counted above): random (0 of "
        "2 seeds finished), fishermask (0 of 2 seeds finished)."
    ) in md
    assert "| random |" not in md and "| fishermask |" not in md
    entry = json.loads((tmp_path / "rep/report.json").read_text())[0]
    assert entry["summary"] == [] and entry["differences"] == []
    assert (tmp_path / "rep/r_curves.csv").read_text().count("\n") == 1  # its header alone


def test_a_run_being_extended_to_more_rounds_reports_its_trials_unfinished(
    tmp_path: Path,
) -> None:
    """A finished 1-query run extended to 3 queries: the extension records the longer schedule
    in config.json before its first new round; until the trials reach it, none is finished
    (they were reported finished at the shorter schedule, their tables compared as final)."""
    from fishermask.experiments.config import ExperimentConfig
    from fishermask.experiments.runner import Experiment, Extension, open_run_dir

    def exp(rounds: int) -> Experiment:
        raw = {
            "data": {"dataset": "digits"},
            "loop": {"initial": 20, "query_size": 10, "rounds": rounds},
            "strategies": ["random", "fishermask"],
            "seeds": [0, 1],
            "device": "cpu",
        }
        return Experiment.prepare(ExperimentConfig.from_dict(raw))

    run = tmp_path / "r"
    _write_run(run, {"random": [[0.3, 0.4], [0.3, 0.5]], "fishermask": [[0.3, 0.6], [0.3, 0.7]]})
    open_run_dir(exp(1), run)
    res = _report(run, "--out", tmp_path / "before")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "before/report.md").read_text()
    assert "| random | 2 |" in md and "Not finished" not in md  # finished at 1 query
    assert open_run_dir(exp(3), run) == Extension(rounds=(2, 4))  # no new round committed yet
    res = _report(run, "--out", tmp_path / "during")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "during/report.md").read_text()
    assert "random (0 of 2 seeds finished), fishermask (0 of 2 seeds finished)." in md, md
    assert "| random |" not in md and "| fishermask |" not in md
    assert "fishermask vs each baseline" not in md
    entry = json.loads((tmp_path / "during/report.json").read_text())[0]
    assert entry["summary"] == [] and entry["differences"] == []
    assert entry["incomplete"]["random"] == {"finished_seeds": 0, "seeds": 2}
    assert (tmp_path / "during/r_curves.csv").read_text().count("\n") == 1
    # fishermask's seed 0 reaches the new last round: it alone is finished
    rows = (run / "results.csv").read_text().splitlines()
    rows += [f"fishermask,0,{r},{10 * (r + 1)},0.8,0.8,0.5,1.5" for r in (2, 3)]
    (run / "results.csv").write_text("\n".join(rows) + "\n")
    res = _report(run, "--out", tmp_path / "later")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "later/report.md").read_text()
    assert "| fishermask | 1 | 40 | 80.00 |" in md and "| random |" not in md
    assert "random (0 of 2 seeds finished), fishermask (1 of 2 seeds finished)." in md


def test_runs_of_one_setting_get_distinct_titles(tmp_path: Path) -> None:
    """Two runs of the same data, model and schedule (other strategy options, a v1 and a
    v2) got the same section heading, figure and LaTeX titles: the report could not be told
    apart. A title shared by two runs gets each run's folder name; the others stay as
    they were."""
    config = {
        "dataset": {"name": "digits"},
        "config": {
            "data": {"dataset": "digits"},
            "model": {"name": "cnn", "width": 0.5},
            "loop": {"initial": 10, "query_size": 10, "rounds": 1},
        },
    }
    for name in ("a/v1", "b/v1", "v2"):
        _write_run(tmp_path / name, {"random": [[0.3, 0.4]], "entropy": [[0.3, 0.5]]})
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    config["config"]["loop"]["query_size"] = 20  # type: ignore[index]
    _write_run(tmp_path / "other", {"random": [[0.3, 0.4]]})
    (tmp_path / "other/config.json").write_text(json.dumps(config))
    dirs = [tmp_path / n for n in ("a/v1", "b/v1", "v2", "other")]
    res = _report(*dirs, "--out", tmp_path / "rep", "--latex")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "rep/report.md").read_text()
    title = "digits — cnn width 0.5, 10 → 20 labels by 10"
    heads = [line for line in md.splitlines() if line.startswith("## ")]
    assert heads == [
        f"## {title} (a_v1)",
        f"## {title} (b_v1)",
        f"## {title} (v2)",
        "## digits — cnn width 0.5, 10 → 30 labels by 20",
    ]
    data = json.loads((tmp_path / "rep/report.json").read_text())
    assert [e["title"] for e in data] == [h[3:] for h in heads]
    assert f"{title} (b_v1)" in (tmp_path / "rep/b_v1_summary.tex").read_text()
