"""``fishermask report``: figures, tables and a Markdown summary from run directories.

Reads only the results files of each run directory (``results.csv``, and when present
``config.json`` for the title, ``query_info.jsonl`` for FisherMask's mask profile and
``confusion.jsonl`` for the confusion matrices).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fishermask.errors import DataError  # noqa: E402
from fishermask.experiments.store import (  # noqa: E402
    read_confusion,
    read_results,
    write_json_atomic,
    write_text_atomic,
)
from fishermask.reporting.compare import (  # noqa: E402
    _p,
    holm,
    paired_aulc_differences,
    round_zero_differences,
)
from fishermask.reporting.confusion import confusions_at, last_round, plot_confusions  # noqa: E402
from fishermask.reporting.latex import (  # noqa: E402
    differences_latex,
    round_zero_latex,
    summary_latex,
)
from fishermask.reporting.outputs import (  # noqa: E402
    planned_rounds,
    planned_trials,
    run_title,
    strategy_names,
)
from fishermask.reporting.plots import (  # noqa: E402
    PAPER_FONTS,
    VECTOR_FORMATS,
    plot_learning_curves,
    save_figure,
    strategy_styles,
)
from fishermask.reporting.tables import (  # noqa: E402
    curves_csv,
    incomplete,
    summarize,
    summary_markdown,
)
from fishermask.text import did_you_mean, slug  # noqa: E402


def mask_profiles(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Mean kept fraction per parameter tensor over the queries of each strategy of a run.

    Keyed by the strategy's label in ``query_info.jsonl`` (first-seen order): two FisherMask
    variants of one run (``fishermask`` and ``fishermask:mask_mode=dispersed,label=fm-d``)
    keep different masks, so each gets its own profile rather than one average of both.
    """
    path = run_dir / "query_info.jsonl"
    if not path.exists():
        return {}
    kept: dict[str, dict[str, list[float]]] = {}
    sizes: dict[str, dict[str, int]] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        rows = rec.get("mask_profile") or []
        if not rows:
            continue
        strat = str(rec.get("strategy", "fishermask"))
        k = kept.setdefault(strat, defaultdict(list))
        z = sizes.setdefault(strat, {})
        for row in rows:
            z[row["name"]] = row["size"]  # first-seen order of the tensors
            k[row["name"]].append(row["kept"])
    return {
        strat: [
            {
                "name": n,
                "size": sizes[strat][n],
                "mean_kept": sum(kept[strat][n]) / len(kept[strat][n]),
                "fraction": sum(kept[strat][n]) / len(kept[strat][n]) / sizes[strat][n],
            }
            for n in sizes[strat]
        ]
        for strat in kept
    }


def mask_profile(run_dir: Path) -> list[dict[str, Any]] | None:
    """The first strategy's profile of :func:`mask_profiles` (None without any)."""
    profiles = mask_profiles(run_dir)
    return next(iter(profiles.values())) if profiles else None


def plot_mask_profile(
    profile: list[dict[str, Any]],
    path: Path,
    title: str = "",
    formats: tuple[str, ...] = (),
    width: float | None = None,
) -> Path:
    """The paper's Fig. 2: fraction of each parameter tensor's weights in the mask.

    ``width`` (inches): drawn at its printed size with :data:`PAPER_FONTS` (default 8).
    """
    with plt.rc_context(PAPER_FONTS if width is not None else {}):
        size = (8, 3.6) if width is None else (width, 0.45 * width + 0.5)
        fig, ax = plt.subplots(figsize=size, dpi=150 if width is None else 300)
        xs = range(1, len(profile) + 1)
        ax.bar(xs, [100 * p["fraction"] for p in profile], color="#3a6ea5")
        # tensors are numbered from 1: no tick at 0 or between two tensors; the first and
        # the last (the final layer's) always have one
        n = len(profile)
        ax.set_xlim(0.4, n + 0.6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        inner = [t for t in ax.get_xticks() if 1 < t < n and n - t >= n / 20]
        ax.set_xticks(sorted({1, n, *inner}))
        ax.set_xlabel(
            "parameter tensor (model order; conv, BatchNorm, linear weights and biases)"
            if width is None or width >= 5
            else "parameter tensor (model order)"
        )
        ax.set_ylabel("weights in mask (%)")
        ax.set_yscale("symlog", linthresh=0.1)
        if title:
            ax.set_title(title, fontsize=9 if width is None else None, wrap=width is not None)
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        return save_figure(fig, path, formats)


METHODS = ("fishermask", "lplgrad")


def compared_strategies(
    strategies: list[str], methods: tuple[str, ...], names: dict[str, str] | None = None
) -> list[str]:
    """The strategies a report compares with every other: each ``method`` itself, or its
    labelled variants, in run order. A variant is a label that starts with ``method-``
    (``lplgrad`` matches ``lplgrad`` and ``lplgrad-joint``) or, where ``names`` maps each
    label to its strategy's name (from the run's ``config.json``), any label of that
    strategy (``fishermask:mask_mode=dispersed,label=fm-dispersed``)."""
    names = names or {}

    def of_method(s: str) -> bool:
        return any(s == m or s.startswith(f"{m}-") or names.get(s) == m for m in methods)

    return [s for s in strategies if of_method(s)]


def check_methods(
    methods: tuple[str, ...], run_dirs: list[Path], tables: list[list[dict[str, Any]]]
) -> None:
    """Refuse a ``--method`` that matches no strategy (label, or name in ``config.json``) of
    any run in ``run_dirs``; the message names the strategies the runs have."""
    labels = list(dict.fromkeys(r["strategy"] for rows in tables for r in rows))
    names: dict[str, str] = {}
    for d in run_dirs:
        names |= strategy_names(d)
    unknown = [m for m in methods if not compared_strategies(labels, (m,), names)]
    if unknown:
        known = list(dict.fromkeys([*labels, *(names[s] for s in labels if s in names)]))
        raise DataError(
            did_you_mean(
                f"--method {', '.join(unknown)}: no such strategy in "
                f"{'this run' if len(run_dirs) == 1 else 'these runs'}; "
                f"choose from {', '.join(known)}.",
                unknown,
                known,
            )
        )


def output_names(run_dirs: list[Path]) -> list[str]:
    """One file-name stem per run directory: its name, with parent folders added where needed.

    ``runs/a`` and ``runs/b`` give ``a``, ``b``; ``A/run`` and ``B/run`` give ``A_run``,
    ``B_run``; the same directory twice gets ``_2``.
    """
    parts = [Path(os.path.abspath(d)).parts for d in run_dirs]  # symlinks kept
    depth = [1] * len(run_dirs)
    while True:
        names = [
            slug("_".join(p[-k:]), keep="-_.", unicode=True).strip("_") or "run"
            for p, k in zip(parts, depth, strict=True)
        ]
        paths: dict[str, set[tuple[str, ...]]] = defaultdict(set)
        for n, p in zip(names, parts, strict=True):
            paths[n].add(p)
        clash = {n for n, ps in paths.items() if len(ps) > 1}  # different dirs, same name
        grow = [i for i, n in enumerate(names) if n in clash and depth[i] < len(parts[i])]
        if not grow:
            break
        for i in grow:
            depth[i] += 1
    seen: dict[str, int] = {}
    unique = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        unique.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return unique


def report_titles(run_dirs: list[Path], stems: list[str] | None = None) -> list[str]:
    """One title per run directory: :func:`run_title`, with `` (stem)`` (the run's file-name
    stem, :func:`output_names`: its folder name, parents added where needed) appended where
    two runs would share it, so that no two sections, figures or LaTeX tables of one report
    read the same (runs of one setting with other strategy options, a v1 and a v2)."""
    stems = output_names(run_dirs) if stems is None else stems
    titles = [run_title(Path(d)) for d in run_dirs]
    count = Counter(titles)
    return [f"{t} ({stem})" if count[t] > 1 else t for t, stem in zip(titles, stems, strict=True)]


def check_overwrite(run_dirs: list[Path], out: Path) -> None:
    """Refuse to replace a report in ``out`` that covers run directories not in ``run_dirs``.

    Rebuilding a report from the same runs, or from more runs, is fine; dropping a run
    of the earlier report needs ``--force``.
    """
    previous = out / "report.json"
    if not previous.exists():
        if (out / "report.md").exists():
            raise DataError(
                f"{out} holds a report.md of unknown origin (no report.json); choose another "
                "--out, or pass --force to overwrite it."
            )
        return
    try:
        old = [str(e["run_dir"]) for e in json.loads(previous.read_text())]
    except (ValueError, TypeError, KeyError):
        raise DataError(
            f"{previous} cannot be read; choose another --out, or pass --force to overwrite it."
        ) from None
    new = {Path(d).resolve() for d in run_dirs}
    dropped = [d for d in old if Path(d).resolve() not in new]
    if dropped:
        raise DataError(
            f"{out} holds a report built from other run directories ({', '.join(dropped)}); "
            "choose another --out, or pass --force to overwrite it."
        )


def check_confusion_round(
    round_: int,
    run_dirs: list[Path],
    tables: list[list[dict[str, Any]]],
    confusions: list[list[dict[str, Any]]],
) -> None:
    """Refuse a ``--confusion-round`` that a run with confusion matrices does not reach."""
    for d, rows, lines in zip(run_dirs, tables, confusions, strict=True):
        last = last_round(rows)
        if lines and not 0 <= round_ <= last:
            raise DataError(
                f"--confusion-round {round_}: {d} has rounds 0 to {last}; choose one of "
                "those (the default is each run's final round)."
            )
    if not any(confusions):
        raise DataError(
            f"--confusion-round {round_}: none of the runs has confusion matrices (no "
            "confusion.jsonl: runs made before they were recorded); drop the option."
        )


def build_report(
    run_dirs: list[Path],
    out: Path,
    *,
    methods: tuple[str, ...] | None = None,
    force: bool = False,
    confusion_round: int | None = None,
    say: Callable[[str], None] | None = None,
    formats: tuple[str, ...] = (),
    latex: bool = False,
    figure_width: float | None = None,
) -> Path:
    """Write figures, ``report.md`` and ``report.json`` for ``run_dirs`` into ``out``.

    ``methods`` (default :data:`METHODS`) are compared with every other strategy; one given
    here that matches no strategy of any run is refused before anything is written (the
    defaults are not: a run without FisherMask or LPLgrad still gets its tables).
    Unless ``force``, a report already in ``out`` that covers other run directories is
    not overwritten (:func:`check_overwrite`).

    Each run with a ``confusion.jsonl`` gets a figure of its confusion matrices per strategy
    at ``confusion_round`` (default: the run's final round); a round that such a run does
    not have is refused before anything is written. Runs made before confusion matrices
    were recorded get none, which ``say`` (when given) is told once for all of them.

    A strategy has one colour, line style and marker in every learning-curve figure of the
    report (:func:`~fishermask.reporting.plots.strategy_styles` over all the runs). Each
    figure is also written in every vector format of ``formats`` (``pdf``, ``svg``: same
    name, other suffix); with ``latex``, each run's summary and comparison tables are also
    written as booktabs ``tabular`` files (``<run>_summary.tex``,
    ``<run>_<method>_vs_baselines.tex``, and ``<run>_round0.tex`` where the run has a Round 0
    table). ``figure_width`` (inches) draws the learning curves, mask profiles and confusion
    matrices at their printed width (:data:`~fishermask.reporting.plots.PAPER_FONTS`).
    None of these changes ``report.md`` or ``report.json``.
    """
    if figure_width is not None and not 2.0 <= figure_width <= 20.0:
        raise DataError(
            f"--figure-width {figure_width:g}: figures are drawn 2 to 20 inches wide; use "
            "e.g. 3.3 for one column of a two-column paper, 7 for the page's text width."
        )
    bad = [f for f in formats if f not in VECTOR_FORMATS]
    if bad:
        raise DataError(
            did_you_mean(
                f"--format {', '.join(bad)}: not a figure format fishermask writes; choose "
                f"from {', '.join(VECTOR_FORMATS)} (PNG is always written).",
                bad,
                VECTOR_FORMATS,
            )
        )
    formats = tuple(dict.fromkeys(formats))
    out = Path(out)
    for d in run_dirs:
        if not (Path(d) / "results.csv").exists():
            raise DataError(f"{d} has no results.csv; pass run directories made by fishermask run.")
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file, not a directory; choose a directory.")
    if not force:
        check_overwrite(run_dirs, out)
    tables = [read_results(Path(d) / "results.csv") for d in run_dirs]  # all read before writing
    confusions = [read_confusion(Path(d)) for d in run_dirs]
    if confusion_round is not None:
        check_confusion_round(confusion_round, run_dirs, tables, confusions)
    if methods is None:
        methods = METHODS
    else:
        check_methods(methods, run_dirs, tables)
    out.mkdir(parents=True, exist_ok=True)
    md = ["# Active learning results", ""]
    data: list[dict[str, Any]] = []
    every: dict[str, str] = {}
    for d in run_dirs:
        every |= strategy_names(Path(d))
    styles = strategy_styles([r["strategy"] for rows in tables for r in rows], every)
    stems = output_names(run_dirs)
    titles = report_titles(run_dirs, stems)
    runs = zip(map(Path, run_dirs), tables, confusions, stems, titles, strict=True)
    for d, rows, confusion, stem, title in runs:
        # a trial is finished at the rounds config.json plans (a run being extended to more
        # rounds: the longer schedule), not at the most any trial has reached
        rounds = planned_rounds(d)
        fig = plot_learning_curves(
            rows,
            out / f"{stem}_curves.png",
            title=title,
            styles=styles,
            formats=formats,
            width=figure_width,
            rounds=rounds,
        )
        # the figure's numbers
        write_text_atomic(out / f"{stem}_curves.csv", curves_csv(rows, rounds=rounds))
        summary = summarize(rows, rounds=rounds)
        pending = incomplete(rows, planned_trials(d), rounds=rounds)
        if latex:
            tex = summary_latex(summary, title, pending=pending)
            write_text_atomic(out / f"{stem}_summary.tex", tex)
        md += [
            f"## {title}",
            "",
            f"Run directory: `{d}`",
            "",
            f"![learning curves]({fig.name})",
            "",
            summary_markdown(summary),
        ]
        if pending:
            md += [
                "Not finished (only seeds that finished every round are counted above): "
                + ", ".join(
                    f"{s} ({done} of {n} seeds finished)" for s, (done, n) in pending.items()
                )
                + ".",
                "",
            ]
        entry: dict[str, Any] = {
            "run_dir": str(d),
            "title": title,
            "summary": [s.__dict__ for s in summary],
            "incomplete": {s: {"finished_seeds": d, "seeds": n} for s, (d, n) in pending.items()},
            "differences": [],
        }
        present = [x.strategy for x in summary]
        names = strategy_names(d)
        running = compared_strategies(list(pending), methods, names)
        if len(present) > 1 and not compared_strategies(present, methods, names):
            md += [
                # running, not missing: the comparison comes with its first finished seed
                f"No paired comparison yet: {', '.join(running)} "
                f"{'has' if len(running) == 1 else 'have'} no seed that finished every round."
                if running
                else f"No paired comparison: none of {', '.join(methods)} is among this run's "
                "strategies; `fishermask report --method NAME` compares NAME with every other "
                "strategy.",
                "",
            ]
        for method in compared_strategies(present, methods, names):
            diffs = paired_aulc_differences(rows, method, rounds=rounds)
            if not diffs:
                continue
            adjusted = holm(diffs)
            if latex:
                name = f"{stem}_{slug(method, keep='-_.')}_vs_baselines.tex"
                write_text_atomic(out / name, differences_latex(diffs, adjusted, title))
            entry["differences"] += [
                x.__dict__ | {"verdict": x.verdict, "p_holm": ph, "verdict_holm": vh}
                for x, (ph, vh) in zip(diffs, adjusted, strict=True)
            ]
            md += [
                f"**{method} vs each baseline** — difference in AULC (accuracy points, "
                "paired over seeds, 95 % t-interval; p from the paired t-test, Holm-adjusted "
                f"over the {len(diffs)} baseline{'s' if len(diffs) != 1 else ''}):",
                "",
                "| baseline | seeds | Δ AULC | 95 % interval | p | p (Holm) | verdict (Holm) |",
                "|---|---:|---:|---|---:|---:|---|",
            ]
            for x, (ph, vh) in zip(diffs, adjusted, strict=True):
                ci = "—" if math.isnan(x.low) else f"[{100 * x.low:+.2f}, {100 * x.high:+.2f}]"
                md.append(
                    f"| {x.baseline} | {x.seeds} | {100 * x.mean:+.2f} | {ci} | "
                    f"{_p(x.p_value)} | {_p(ph)} | {vh} |"
                )
            md.append("")
        zero = round_zero_differences(rows)
        if zero:
            entry["round_zero"] = [x.__dict__ | {"verdict": x.verdict} for x in zero]
            if latex:
                write_text_atomic(out / f"{stem}_round0.tex", round_zero_latex(zero, title))
            md += [
                "**Round 0** (the initial labels, before any query) — strategies whose round-0 "
                f"result differs from {zero[0].baseline}'s on the same seed: a classifier "
                "trained differently (LPL/LPLgrad's jointly trained module) or, in runs made "
                "before round 0 was shared per seed, trained on another CPU model (CPU results "
                "depend on it; the round records name it). Balanced accuracy against the plain "
                "model on the same seeds "
                "(accuracy points, paired, 95 % t-interval):",
                "",
                "| strategy | seeds | plain model | Δ balanced accuracy | 95 % interval "
                "| verdict |",
                "|---|---:|---:|---:|---|---|",
            ]
            for x in zero:
                ci = "—" if math.isnan(x.low) else f"[{100 * x.low:+.2f}, {100 * x.high:+.2f}]"
                md.append(
                    f"| {x.strategy} | {x.seeds} | {100 * x.baseline_mean:.2f} | "
                    f"{100 * x.mean:+.2f} | {ci} | {x.verdict} |"
                )
            md.append("")
        profiles = mask_profiles(d)
        run_order = list(dict.fromkeys(r["strategy"] for r in rows))  # results.csv order
        rank = {s: i for i, s in enumerate(run_order)}
        profiles = dict(sorted(profiles.items(), key=lambda kv: rank.get(kv[0], len(rank))))
        for i, (strat, profile) in enumerate(profiles.items()):
            # the first keeps the historical name; each other variant gets its own file
            tag = "" if i == 0 else "_" + slug(strat, keep="-_.")
            name = f"{stem}{tag}_mask_profile.png"
            mp = plot_mask_profile(
                profile, out / name, f"{strat} mask profile — {title}", formats, figure_width
            )
            md += [f"![{strat} mask profile]({mp.name})", ""]
        if profiles:
            entry["mask_profile"] = next(iter(profiles.values()))
            entry["mask_profiles"] = profiles
        if confusion:  # runs made before confusion matrices were recorded: no section at all
            r = last_round(rows) if confusion_round is None else confusion_round
            at = confusions_at(confusion, r, run_order)
            if at:
                fig = plot_confusions(
                    at, out / f"{stem}_confusion.png", title, formats, figure_width
                )
                md += [f"![confusion matrices at round {r}]({fig.name})", ""]
                entry["confusion"] = {s: c.to_json() for s, c in at.items()}
            lacking = [s for s in run_order if s not in at]
            if lacking:
                md += [
                    f"No confusion matrix at round {r} for {', '.join(lacking)} (rounds "
                    "committed before confusion matrices were recorded, or not run yet).",
                    "",
                ]
        data.append(entry)
    without = [str(d) for d, c in zip(run_dirs, confusions, strict=True) if not c]
    if without and say is not None:
        say(
            f"note: no confusion matrices in {', '.join(without)} (no confusion.jsonl: "
            f"{'a run' if len(without) == 1 else 'runs'} made before they were recorded); "
            "the report has none for "
            f"{'it' if len(without) == 1 else 'them'}."
        )
    write_text_atomic(out / "report.md", "\n".join(md) + "\n")
    write_json_atomic(out / "report.json", data)
    return out / "report.md"
