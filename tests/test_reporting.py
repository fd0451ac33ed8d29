"""Tables and plots from results rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fishermask.reporting import aulc, curves, plot_learning_curves, summarize, summary_markdown


def _rows() -> list[dict]:
    rows = []
    for strat, base in (("a", 0.5), ("b", 0.6)):
        for seed in (0, 1):
            for r, n in enumerate((10, 20, 40)):
                rows.append(
                    {
                        "strategy": strat,
                        "seed": seed,
                        "round": r,
                        "n_labeled": n,
                        "accuracy": base + 0.1 * r + 0.02 * seed,
                        "query_seconds": 1.0,
                        "train_seconds": 2.0,
                    }
                )
    return rows


def test_aulc_is_mean_accuracy_over_the_label_range() -> None:
    assert aulc(np.array([0, 10]), np.array([0.2, 0.4])) == pytest.approx(0.3)
    assert aulc(np.array([10, 20, 40]), np.array([0.5, 0.6, 0.7])) == pytest.approx(
        (10 * 0.55 + 20 * 0.65) / 30
    )
    assert aulc(np.array([5]), np.array([0.4])) == pytest.approx(0.4)


def test_curves_and_summary() -> None:
    cs = curves(_rows())
    assert cs["a"].n_labeled.tolist() == [10, 20, 40]
    assert cs["a"].mean == pytest.approx([0.51, 0.61, 0.71])
    assert cs["a"].std == pytest.approx([0.01, 0.01, 0.01])
    s = {row.strategy: row for row in summarize(_rows())}
    assert s["b"].final_mean == pytest.approx(0.81) and s["b"].seeds == 2
    assert s["a"].aulc_mean == pytest.approx((10 * 0.56 + 20 * 0.66) / 30)
    md = summary_markdown(list(s.values()))
    assert "| b | 2 | 40 | 81.00 ± 1.00 |" in md
    # the units and the spread are said with the table (results.csv holds fractions)
    assert "| final accuracy (%) | AULC (%) |" in md
    assert "mean ± standard deviation over the seeds" in md and "ddof 0" in md


def test_curves_keep_only_seeds_that_finished_every_round() -> None:
    from fishermask.reporting.tables import incomplete

    rows = [r for r in _rows() if not (r["seed"] == 1 and r["round"] == 2)]
    a = curves(rows)["a"]
    assert a.n_labeled.tolist() == [10, 20, 40] and list(a.per_seed) == [0]
    assert incomplete(rows) == {"a": (1, 2), "b": (1, 2)}
    only_start = [r for r in _rows() if r["strategy"] == "b" or r["round"] == 0]
    assert "a" not in curves(only_start)  # a strategy with no finished seed is left out
    assert incomplete(only_start) == {"a": (0, 2)}


def test_plot_writes_png(tmp_path: Path) -> None:
    p = plot_learning_curves(_rows(), tmp_path / "x" / "curves.png", title="t")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("width", [None, 3.3])
def test_a_plot_of_a_run_whose_trials_all_run_on_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, width: float | None
) -> None:
    """A run planned for 4 rounds whose trials have 3: an empty figure that says why, not a
    warning about an empty legend."""
    import warnings

    import fishermask.reporting.plots as plots

    figs = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, *_: figs.append(fig) or path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_learning_curves(_rows(), tmp_path / "c.png", rounds=4, width=width)
    texts = [t.get_text() for t in figs[0].axes[0].texts]
    assert texts == ["no trial has finished every round yet"] and not figs[0].axes[0].get_lines()
    assert summarize(_rows(), rounds=4) == [] and summarize(_rows(), rounds=3) == summarize(_rows())


def test_every_strategy_of_a_full_run_has_a_line_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the 14 built-in strategies the 11th to 14th curves reused the colours of the
    first four (same solid line, same marker): bald looked like random in the figure."""
    import fishermask.reporting.plots as plots

    rows = [
        {"strategy": f"s{i}", "seed": 0, "round": r, "n_labeled": n, "accuracy": 0.5}
        | {"query_seconds": 0.0, "train_seconds": 0.0}
        for i in range(14)
        for r, n in enumerate((10, 20))
    ]
    figs = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, *_: figs.append(fig) or path)
    plot_learning_curves(rows, tmp_path / "c.png")
    lines = figs[0].axes[0].get_lines()
    assert len(lines) == 14
    styles = {(str(ln.get_color()), ln.get_linestyle(), ln.get_marker()) for ln in lines}
    assert len(styles) == 14
    legend = figs[0].axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [f"s{i} (n=1)" for i in range(14)]
    assert legend.get_title().get_text() == ""  # one seed: no band, nothing to explain
    # fourteen curves: the legend goes beside the axes, not over the data
    figs[0].canvas.draw()
    ax_box = figs[0].axes[0].get_window_extent()
    assert legend.get_window_extent().x0 >= ax_box.x1


def test_the_legend_says_what_line_and_band_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fishermask.reporting.plots as plots

    figs = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, *_: figs.append(fig) or path)
    plot_learning_curves(_rows(), tmp_path / "c.png")
    legend = figs[0].axes[0].get_legend()
    assert legend.get_title().get_text() == "mean ± 1 std over n seeds"


def test_summary_times_come_from_the_same_seeds_as_the_accuracies() -> None:
    """An unfinished seed's rounds were averaged into query and training seconds while its
    accuracies were (rightly) left out."""
    rows = [r for r in _rows() if not (r["seed"] == 1 and r["round"] == 2)]
    for r in rows:
        if r["seed"] == 1:  # the unfinished seed: other times
            r["query_seconds"], r["train_seconds"] = 100.0, 100.0
    a = next(s for s in summarize(rows) if s.strategy == "a")
    assert a.seeds == 1
    assert (a.query_seconds, a.train_seconds) == (1.0, 2.0)


def test_run_title_names_a_width_only_for_models_that_have_one(tmp_path):
    """The features run's title read "linear width 1.0": the linear model has no width."""
    import json

    from fishermask.reporting.outputs import run_title

    def title(model):
        cfg = {"data": {"dataset": "digits"}, "model": model}
        cfg["loop"] = {"initial": 10, "query_size": 5, "rounds": 2, "budget": None}
        (tmp_path / "config.json").write_text(json.dumps({"config": cfg, "dataset": {}}))
        return run_title(tmp_path)

    assert title({"name": "linear", "width": 1.0}) == "digits — linear, 10 → 20 labels by 5"
    assert title({"name": "cnn", "width": 0.5}) == "digits — cnn width 0.5, 10 → 20 labels by 5"


def test_a_run_config_is_read_once_per_version(tmp_path, monkeypatch) -> None:
    """The title, the planned trials and rounds and the strategy names come from one read of
    config.json; a config.json rewritten since (a run extended) is read again."""
    import json
    from pathlib import Path

    from fishermask.reporting.outputs import (
        planned_rounds,
        planned_trials,
        run_title,
        strategy_names,
    )

    specs = [{"name": "fishermask", "options": {}, "label": "fm"}]
    meta = {"config": {"strategies": specs, "seeds": [0, 1]}, "query_sizes": [10, 10]}
    (tmp_path / "config.json").write_text(json.dumps(meta))
    reads = []
    read_text = Path.read_text

    def counted(self, *args, **kwargs):
        if self.name == "config.json":
            reads.append(self)
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    for _ in range(2):
        run_title(tmp_path)
        assert planned_trials(tmp_path) == (["fm"], [0, 1])
        assert planned_rounds(tmp_path) == 3
        assert strategy_names(tmp_path) == {"fm": "fishermask"}
    assert len(reads) == 1
    # rewritten in place as a run extension does (write, then rename over it)
    meta["config"]["seeds"], meta["query_sizes"] = [0, 1, 2], [10] * 4
    (tmp_path / "new.json").write_text(json.dumps(meta))
    (tmp_path / "new.json").replace(tmp_path / "config.json")
    assert planned_trials(tmp_path) == (["fm"], [0, 1, 2]) and planned_rounds(tmp_path) == 5
    assert len(reads) == 2
    # without one: the directory's name, nothing planned
    (tmp_path / "config.json").unlink()
    assert planned_rounds(tmp_path) is None and planned_trials(tmp_path) is None
    assert run_title(tmp_path) == tmp_path.name and strategy_names(tmp_path) == {}


def test_a_damaged_run_config_is_one_line_naming_it(tmp_path) -> None:
    from fishermask.errors import DataError
    from fishermask.reporting.outputs import run_title

    (tmp_path / "config.json").write_text('{"config": {')  # cut short
    with pytest.raises(DataError, match=r"config\.json cannot be read as JSON; restore it"):
        run_title(tmp_path)


def test_run_complete_counts_the_planned_trials_and_rounds(tmp_path) -> None:
    """benchmarks/gpu_run.sh moves on to the next setting only when every trial config.json
    plans has finished every planned round: a seed not started yet, or a run extended to
    more rounds, is not complete (it counted as complete when only the rows were read)."""
    import csv
    import json

    from fishermask.reporting.outputs import run_complete

    def write(rows, seeds, sizes):
        specs = [{"name": "a", "options": {}}, {"name": "b", "options": {}}]
        meta = {"config": {"strategies": specs, "seeds": seeds}, "query_sizes": sizes}
        (tmp_path / "config.json").write_text(json.dumps(meta))
        with open(tmp_path / "results.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    assert not run_complete(tmp_path)  # nothing yet
    rows = _rows()  # strategies a and b, seeds 0 and 1, three rounds each
    write(rows, [0, 1], [10, 20])
    assert run_complete(tmp_path)
    write(rows, [0, 1, 2], [10, 20])  # seed 2 planned, not started
    assert not run_complete(tmp_path)
    write(rows, [0, 1], [10, 20, 20])  # extended by a round, none run yet
    assert not run_complete(tmp_path)
    write(
        [r for r in rows if (r["strategy"], r["seed"], r["round"]) != ("b", 1, 2)], [0, 1], [10, 20]
    )
    assert not run_complete(tmp_path)
    (tmp_path / "config.json").unlink()  # no plan: the rows alone
    write(rows, [0, 1], [10, 20])
    (tmp_path / "config.json").unlink()
    assert run_complete(tmp_path)
