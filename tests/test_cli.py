"""The command line: bad input gives one clear line, a non-zero exit, and writes nothing."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fishermask.cli import app

runner = CliRunner()
FAST = [
    "--model",
    "cnn",
    "--width",
    "0.25",
    "--max-epochs",
    "1",
    "--seeds",
    "1",
    "--no-progress",
    "--device",
    "cpu",
]


def _tree(root: Path, sizes: dict[str, list[tuple[int, int]]]) -> Path:
    """An image-folder tree with train/test splits; ``sizes`` maps class -> image sizes."""
    for split in ("train", "test"):
        for cls, shapes in sizes.items():
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i, (w, h) in enumerate(shapes):
                arr = np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i}.png")
    return root


def _fails(args: list[str], tmp_path: Path, *expected: str) -> str:
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", *args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    msg = res.stderr.strip()
    assert len(msg.splitlines()) == 1, msg
    assert msg.startswith("error:")
    for e in expected:
        assert e in msg, msg
    assert not out.exists(), "a failed run must not leave a run directory behind"
    return msg


def test_unknown_dataset(tmp_path: Path) -> None:
    _fails(["--dataset", str(tmp_path / "nope")], tmp_path, "nope")


def test_budget_larger_than_pool(tmp_path: Path) -> None:
    _fails(["--dataset", "digits", "--budget", "5000", *FAST], tmp_path, "5000", "1437")


def test_rounds_beyond_pool(tmp_path: Path) -> None:
    _fails(
        ["--dataset", "digits", "--initial", "400", "--query-size", "400", "--rounds", "3", *FAST],
        tmp_path,
        "1600",
        "1437",
    )


def test_preset_asks_for_too_many(tmp_path: Path) -> None:
    _fails(["--dataset", "digits", "--preset", "setting1", *FAST], tmp_path, "250", "142")


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data", {"a": [(8, 8)] * 3, "b": [(8, 8)] * 3})
    (root / "train" / "b" / "1.png").write_bytes(b"not an image at all")
    _fails(["--dataset", str(root), *FAST], tmp_path, "1.png")


def test_mixed_sizes_refused_with_fix(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data", {"a": [(8, 8)] * 3, "b": [(8, 8), (9, 7), (8, 8)]})
    _fails(["--dataset", str(root), *FAST], tmp_path, "image-size")


def test_empty_class_folder(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data", {"a": [(8, 8)] * 3, "b": [(8, 8)] * 3})
    (root / "train" / "c").mkdir()
    _fails(["--dataset", str(root), *FAST], tmp_path, "c")


def test_labels_out_of_range(tmp_path: Path) -> None:
    x = np.zeros((10, 8, 8), dtype=np.uint8)
    y = np.arange(10) % 3
    y_bad = y.copy()
    y_bad[4] = -1
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=x, y_train=y_bad, x_test=x, y_test=y)
    _fails(["--dataset", str(path), *FAST], tmp_path, "-1")


def test_unknown_strategy_and_config_key(tmp_path: Path) -> None:
    _fails(["--dataset", "digits", "--strategy", "nope", *FAST], tmp_path, "nope", "entropy")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("loop: {initial: 10, qurey_size: 5}\n")
    _fails(["--config", str(cfg)], tmp_path, "qurey_size")


def test_config_file_profile_and_cli_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fishermask.reporting import outputs

    titles: list[str] = []
    plot = outputs.plot_learning_curves
    monkeypatch.setattr(
        outputs,
        "plot_learning_curves",
        lambda rows, path, **kw: titles.append(kw["title"]) or plot(rows, path, **kw),
    )
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        "data: {dataset: digits}\n"
        "model: {name: mlp, width: 0.25}\n"
        "train: {stop: epochs, epochs: 3}\n"
        "loop: {initial: 10, query_size: 5, rounds: 3}\n"
        "strategies: [random, entropy]\n"
        "seeds: [4]\n"
        "profiles:\n  tiny: {loop: {rounds: 1}}\n"
    )
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "run",
            "--config",
            str(cfg),
            "--profile",
            "tiny",
            "--query-size",
            "7",
            "--max-steps",
            "2",
            "--no-progress",
            "--device",
            "cpu",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "config.json").read_text())["config"]
    assert meta["loop"] == {"initial": 10, "query_size": 7, "rounds": 1, "budget": None}
    assert meta["model"]["name"] == "mlp" and meta["seeds"] == [4]
    for f in ("results.csv", "queries.jsonl", "config.json", "learning_curves.png", "summary.md"):
        assert (out / f).exists(), f
    assert "learning_curves.png" in res.stdout
    # the run's plot, summary and table are titled with the model, width and schedule
    title = "digits — mlp width 0.25, 10 → 17 labels by 7"
    assert titles == [title]
    assert (out / "summary.md").read_text().startswith(f"# {title}\n")
    assert f"{title}: accuracy (%)" in " ".join(res.stdout.split())
    assert meta["train"]["max_steps"] == 2 and meta["train"]["epochs"] == 3
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 2 * 2
    # one batch per epoch (<= 17 images), 3 epochs, capped at 2 steps
    assert [(r["train_epochs"], r["train_steps"]) for r in rows] == [("2", "2")] * 4


def test_toml_config(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        'seeds = [1]\nstrategies = ["margin"]\n[data]\ndataset = "digits"\n'
        '[model]\nname = "cnn"\nwidth = 0.25\n[train]\nmax_epochs = 1\n'
        "[loop]\ninitial = 10\nquery_size = 5\nrounds = 1\n"
    )
    res = runner.invoke(
        app, ["run", "--config", str(cfg), "--no-progress", "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 0, res.output


def test_strategies_listing() -> None:
    res = runner.invoke(app, ["strategies"])
    assert res.exit_code == 0 and "kcenter" in res.stdout


@pytest.mark.parametrize("stream", [io.StringIO()])
def test_help(stream: io.StringIO) -> None:
    res = runner.invoke(app, ["run", "--help"])
    assert res.exit_code == 0 and "--query-size" in res.stdout


def test_every_help_page_shows_every_option_whole_at_80_columns() -> None:
    # typer's rich tables cut what did not fit an 80-column terminal with "…":
    # `--no-allow-env-c…`, `name:key=value,ke…`, a default `[default: no-allow-env-chan…]`;
    # the command lists cut each description to one line ("write results,...")
    import click
    import typer

    def pages(group: click.Group, path: list[str]):
        yield path, group
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):  # typer 0.29 vendors click: not a click.Group
                yield from pages(cmd, [*path, name])
            else:
                yield [*path, name], cmd

    for path, cmd in pages(typer.main.get_command(app), []):
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert res.exit_code == 0, (path, res.output)
        for line in res.output.splitlines():
            assert len(line) <= 80 and "…" not in line, (path, line)
            assert line.startswith("Usage:") or not line.endswith("..."), (path, line)
        for param in cmd.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("-"):
                    assert opt in res.output, (path, opt, res.output)
        if hasattr(cmd, "commands"):  # typer 0.29 vendors click: not a click.Group
            for name, sub in cmd.commands.items():
                first = sub.get_short_help_str(limit=10_000)
                assert " ".join(first.split()[-3:]) in " ".join(res.output.split()), (name, first)


def test_no_help_page_shows_a_python_type_as_an_options_value() -> None:
    # typer 0.29's plain layout names an option's value by its annotation:
    # `-s, --strategy <list[str]>`, `--import <list[str]>`; a repeatable option says what one
    # value is (NAME[:KEY=VALUE,...])
    import click
    import typer

    def commands(group: click.Group, path: list[str]):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):  # typer 0.29 vendors click: not a click.Group
                yield from commands(cmd, [*path, name])
            else:
                yield [*path, name]

    found = []
    for path in commands(typer.main.get_command(app), []):
        res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        options = [line.strip() for line in res.output.splitlines() if line.startswith("  -")]
        found += [(path, line) for line in options if "<list[" in line]
    assert not found, found
    res = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert "-s, --strategy NAME[:KEY=VALUE,...]" in res.output


def _command_paths() -> list[str]:
    import click
    import typer

    def walk(group: click.Group, path: list[str]):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):  # typer 0.29 vendors click: not a click.Group
                yield from walk(cmd, [*path, name])
            else:
                yield " ".join([*path, name])

    return list(walk(typer.main.get_command(app), []))


@pytest.mark.parametrize("command", _command_paths())
def test_every_value_in_the_help_has_a_name_not_a_python_type(command: str) -> None:
    # typer 0.29 named single values by their annotation too: `--dataset <str>`,
    # `--rounds <int>`, `--lr <float>`, `--out <path>`, `RUN_DIR <list[Path]>`; the label
    # commands `--images <path>`, `project <path>`, and a usage line `label init [OPTIONS]
    # {project}`, braces that read as a set of choices
    import re

    res = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    usage = res.output.splitlines()[0]
    assert "{" not in usage, usage
    # option and argument lines (their help's continuation lines are indented further)
    listed = [line.strip() for line in res.output.splitlines() if re.match(r"  \S", line)]
    names = [re.split(r"\s{2,}", line)[0] for line in listed]  # the option/argument column
    typed = [n for n in names if re.search(r"<[\w\[\], |]+>", n)]
    assert not typed, typed
    expected = {
        "run": [
            "--dataset NAME|PATH",
            "--rounds N",
            "--lr RATE",
            "--class-counts N,N,...",
            "-c, --config FILE",
            "--out DIR",
            "--executor local|ray",
        ],
        "report": ["RUN_DIR", "--out DIR", "--confusion-round ROUND", "--figure-width INCHES"],
        "strategies": ["--import MODULE|FILE.py"],
        "label init": ["PROJECT", "--images DIR", "--image-size HxW", "--batch N", "--width X"],
        "label history": ["PROJECT", "IMAGE"],
    }.get(command, [])
    for name in expected:
        assert name in names, (name, names)


def test_every_help_paragraph_is_one_line_so_that_it_wraps_at_the_terminal_width() -> None:
    # typer (0.29) joins the lines of a help text's first paragraph but keeps the line breaks of
    # the later ones, so a docstring wrapped at 100 columns broke mid-sentence on the screen;
    # the group's list of commands (`fishermask label --help`) keeps the first paragraph's
    # breaks too, so it must be one line as well
    import inspect

    from fishermask.label.cli import label_app

    for typer_app in (app, label_app):
        for command in typer_app.registered_commands:
            text = inspect.cleandoc(command.help or command.callback.__doc__ or "")
            for paragraph in text.split("\n\n"):
                assert "\n" not in paragraph, (command.callback.__name__, paragraph)


def test_recipe_flags_reach_the_config(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--dataset", "digits", "--model", "mlp", "--width", "0.25", "-s", "random"]
    args += ["--initial", "10", "--query-size", "5", "--rounds", "1", "--seeds", "1"]
    args += ["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.5", "--weight-decay", "5e-4"]
    args += ["--epochs", "3", "--milestones", "1,2", "--no-reinit", "--no-progress"]
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    train = json.loads((out / "config.json").read_text())["config"]["train"]
    assert train["optimizer"] == "sgd" and train["momentum"] == 0.5
    assert train["weight_decay"] == 5e-4 and train["milestones"] == [1, 2]
    assert train["reinit"] is False and train["stop"] == "epochs"
    assert "; 1 strategy x 1 seed x 2 rounds -> " in res.output  # it said "1 strategies x 1 seeds"


def test_a_misspelt_name_is_suggested(tmp_path: Path) -> None:
    base = ["--dataset", "digits", "--seeds", "1", "--no-progress"]
    _fails([*base, "-s", "entrpy"], tmp_path, "supported: ", "; did you mean 'entropy'?")
    _fails([*base, "--model", "resnt18"], tmp_path, "linear; did you mean 'resnet18'?")
    _fails([*base, "-s", "fishermask:sparsty=0.01"], tmp_path, "did you mean 'sparsity'?")
    _fails([*base, "--preset", "setting3"], tmp_path, "did you mean 'setting1' or 'setting2'?")
    _fails([*base[2:], "--dataset", "mnst5k"], tmp_path, "did you mean 'mnist5k'?")


def test_bad_milestones_is_one_line(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", "--milestones", "80,x", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "--milestones '80,x': give integers separated by commas." in res.output


def test_model_options_and_features_errors(tmp_path: Path) -> None:
    base = ["--dataset", "digits", "--seeds", "1", "--no-progress"]
    _fails([*base, "--model", "cnn:dropout=2"], tmp_path, "`model.dropout`=2", "[0, 1)")
    _fails([*base, "--model", "cnn:drop=0.1"], tmp_path, "Unknown key(s) drop in [model]")
    _fails([*base, "--model", "cnn", "-s", "bald"], tmp_path, "needs a model with dropout")
    _fails([*base, "--model", "linear", "--features", str(tmp_path / "f.npy")], tmp_path, "f.npy")
    np.save(tmp_path / "short.npy", np.zeros((5, 3), np.float32))
    _fails(
        [*base, "--model", "linear", "--features", str(tmp_path / "short.npy")],
        tmp_path,
        "5 rows of features",
    )
    _fails([*base, "--model", "resnet18:hidden_dropout=0.1"], tmp_path, "hidden_dropout")
    # linear has no width: it used to run as width 1 with width 0.5 recorded
    for model in (["--model", "linear", "--width", "0.5"], ["--model", "linear:width=0.5"]):
        _fails([*base, *model], tmp_path, "model 'linear' has no width", "width 0.5 cannot be")


def test_momentum_with_adam_is_refused_not_ignored(tmp_path: Path) -> None:
    # Adam has no momentum parameter: the flag would change nothing and the run would look
    # like a momentum run
    args = ["run", "--dataset", "digits", "--model", "mlp", "--width", "0.25", "-s", "random"]
    args += ["--initial", "10", "--query-size", "5", "--rounds", "1", "--seeds", "1"]
    args += ["--epochs", "1", "--momentum", "0.5", "--no-progress"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "--momentum" in res.output and "adam" in res.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        # --stop epochs trained the default 200 epochs, ignoring --max-epochs 3
        (["--stop", "epochs", "--max-epochs", "3"], "--max-epochs 3"),
        (["--epochs", "2", "--max-epochs", "3"], "--max-epochs 3"),
        # --stop accuracy trained to the accuracy target, ignoring --epochs 2
        (["--stop", "accuracy", "--epochs", "2"], "--epochs 2"),
        # the local executor ran without a word about the Ray cluster named
        (["--address", "127.0.0.1:6379"], "--executor ray"),
    ],
)
def test_a_flag_the_run_would_ignore_is_refused(
    tmp_path: Path, flags: list[str], expected: str
) -> None:
    base = ["--dataset", "digits", "--model", "mlp", "-s", "random", "--seeds", "1"]
    _fails([*base, *flags], tmp_path, expected, "ignore")


def test_a_milestone_past_the_epoch_limit_warns(tmp_path: Path) -> None:
    args = ["run", "--dataset", "digits", "--model", "mlp", "--width", "0.25", "-s", "random"]
    args += ["--initial", "10", "--query-size", "5", "--rounds", "1", "--seeds", "1"]
    args += ["--optimizer", "sgd", "--epochs", "3", "--milestones", "2,3", "--no-progress"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "milestone 3" in res.output and "never" in res.output
    ok_args = [*args[:-3], "--milestones", "2", "--no-progress", "--out", str(tmp_path / "s")]
    ok = runner.invoke(app, ok_args)
    assert ok.exit_code == 0, ok.output
    assert "never" not in ok.output


def test_the_command_exits_without_a_last_collection_over_torch(monkeypatch):
    """The interpreter's last garbage collection walked torch's whole object graph at every
    command's exit: ~1 s after `label serve` said "stopped" (10 s under load). The
    ``fishermask`` script (pyproject) is ``main``, which freezes the heap on the way out,
    error or not."""
    import gc
    import re
    import sys

    from fishermask import cli

    root = Path(__file__).resolve().parents[1]
    scripts = re.search(r"\[project\.scripts\]\n([^\[]*)", (root / "pyproject.toml").read_text())
    assert 'fishermask = "fishermask.cli:main"' in scripts.group(1)
    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    for argv in (["fishermask", "--help"], ["fishermask", "no-such-command"]):
        monkeypatch.setattr(sys, "argv", argv)
        frozen.clear()
        with pytest.raises(SystemExit):
            cli.main()
        assert frozen == [True], argv


def test_python_dash_m_fishermask_is_the_command() -> None:
    # `python -m fishermask` (a venv not activated, a cluster job script) said "No module
    # named fishermask.__main__; 'fishermask' is a package and cannot be directly executed"
    import os
    import subprocess
    import sys

    from fishermask import __version__

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # runpy's RuntimeWarning ("found in sys.modules after import of package ..., but prior
    # to execution") is the sign of a module run twice, as `fishermask.__main__` would be if
    # the package imported it; an error here, for both entry modules
    for module in ("fishermask", "fishermask.cli"):
        res = subprocess.run(
            [sys.executable, "-W", "error::RuntimeWarning", "-m", module, "--version"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert res.returncode == 0 and res.stdout.strip() == f"fishermask {__version__}", res
        assert not res.stderr, res
    res = subprocess.run(
        [sys.executable, "-m", "fishermask", "run", "--lr", "x"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 2 and "Usage: python -m fishermask run" in res.stderr, res


def test_strategies_lists_a_strategy_without_docstring_without_its_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # @dataclass gives a class without docstring one, its signature: the README's example
    # was listed as "lowest_max_prob  LowestMaxProb(top: int = 1)"
    from fishermask.strategies import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    path = tmp_path / "undocumented.py"
    path.write_text(
        "from dataclasses import dataclass\n"
        "from fishermask.strategies import Selection, Strategy, register\n\n"
        "@register\n@dataclass(frozen=True)\nclass Undocumented(Strategy):\n"
        "    name = 'undocumented'\n    top: int = 1\n\n"
        "    def query(self, ctx, budget):\n"
        "        return Selection(ctx.pool.unlabeled[:budget])\n"
    )
    res = runner.invoke(app, ["strategies", "--import", str(path)])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("undocumented"))
    assert "Undocumented(" not in line
    assert "(no description: the first line of its class docstring goes here)" in line


def test_a_ray_address_nothing_answers_at_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--executor ray --address HOST:PORT` with a wrong port wrote config.json, then ray.init
    # retried for minutes, a warning every 5 s
    import socket

    from fishermask.experiments import parallel

    def no_ray(*args: object, **kw: object) -> None:
        raise AssertionError("Ray was started for an address nothing answers at")

    monkeypatch.setattr(parallel, "_run_ray", no_ray)

    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    args = ["run", "--dataset", "digits", "--model", "mlp", "-s", "random", "--seeds", "1"]
    args += ["--initial", "10", "--query-size", "5", "--rounds", "1", "--epochs", "1"]
    args += ["--executor", "ray", "--address", f"127.0.0.1:{port}", "--no-progress"]
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert f"error: --address 127.0.0.1:{port}: no Ray cluster answers there" in res.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run", "--rounds", "abc"], "'abc' is not a whole number (e.g. `--rounds 3`)."),
        (["run", "--rounds", "1.5"], "'1.5' is not a whole number (e.g. `--rounds 3`)."),
        (["run", "--width", "wide"], "'wide' is not a number (e.g. `--width 0.5`)."),
        (
            ["label", "serve", "P", "--port", "http"],
            "'http' is not a whole number (e.g. `--port 8765`).",
        ),
    ],
)
def test_a_value_that_is_not_a_number_is_said_with_the_value(args: list[str], said: str) -> None:
    """typer said "Input should be a valid integer, unable to parse string as an integer",
    naming neither the value nor what to give; every command (sub-commands of `label`
    included) now says the value and an example, the option's default where it has one."""
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert "Input should be" not in res.output
    assert f"Invalid value for '{args[-2]}': {said}" in res.output


def test_run_help_states_what_a_plain_fishermask_run_uses() -> None:
    # `fishermask run --help` said what --initial, --rounds, --model... mean but not what a
    # plain `fishermask run` (the README's first command) uses for them
    import typer

    from fishermask.experiments.config import ExperimentConfig, ModelConfig

    cfg = ExperimentConfig()
    want = {
        "--dataset": cfg.data.dataset,
        "--strategy": ",".join(s.key for s in cfg.strategies),
        "--seeds": f"{len(cfg.seeds)}",
        "--initial": cfg.loop.initial,
        "--query-size": cfg.loop.query_size,
        "--rounds": cfg.loop.rounds,
        "--model": cfg.model.name,
        "--width": "1; a plain fishermask run, without --model or a config file's model, uses "
        f"{cfg.model.name} at {cfg.model.width}",
        "--max-epochs": cfg.train.max_epochs,
        "--lr": cfg.train.lr,
        "--batch-size": cfg.train.batch_size,
        "--stop": cfg.train.stop,
        "--augment": cfg.train.augment,
        "--device": cfg.device,
        "--out": "runs/run-<date>-<time>",
    }
    assert ModelConfig().width == 1  # what --model or a [model] section starts from
    cmd = typer.main.get_command(app).commands["run"]
    helps = {opt: p.help or "" for p in cmd.params for opt in p.opts}
    missing = {o: helps[o] for o, v in want.items() if f"(default {v})" not in helps[o]}
    assert not missing, missing


# The command as its script runs it, with one step of its start-up (an import, typer reading
# the commands' signatures, click the command line) blocked, after saying so on stdout, until
# a signal interrupts it: a Ctrl-C at that moment, not after a guessed delay. The hook is this
# test's own, in the child process, not the CLI's.
_BLOCKED_START = """
import sys, time

def block(what):
    print("blocked in", what, flush=True)
    for _ in range(600):
        time.sleep(0.1)

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            sys.meta_path.remove(self)
            block(name)
        return None

if {module!r} == "get_command":
    import typer.main
    get_command = typer.main.get_command
    def slow(app):
        block("get_command")
        return get_command(app)
    typer.main.get_command = slow
if {module!r} == "make_context":
    import typer.core
    make_context = typer.core.TyperGroup.make_context
    def slow(*args, **kw):
        block("make_context")
        return make_context(*args, **kw)
    typer.core.TyperGroup.make_context = slow
sys.meta_path.insert(0, Block())
sys.argv[0] = "fishermask"
from fishermask.cli import main
sys.exit(main())
"""
_STARTING = "error: interrupted while fishermask was starting; nothing was done."


@pytest.mark.parametrize(
    ("module", "said"),
    [  # the CLI's own imports (typer, rich, numpy: a second or more on a busy machine)
        ("typer", _STARTING),
        # the standard library's, first imported by the package (typing: 50 ms) or by the
        # CLI before it caught Ctrl-C (contextlib, shlex): a traceback
        ("typing", _STARTING),
        ("contextlib", _STARTING),
        ("shlex", _STARTING),
        ("get_command", _STARTING),  # typer reading the commands' signatures
        ("make_context", _STARTING),  # click reading the command line
        # a command's, before it runs (torch, for `run`): typer's exit 130 said nothing
        ("torch", "error: interrupted."),
    ],
)
def test_ctrl_c_while_the_command_starts_says_so_and_exits_130(
    tmp_path: Path, module: str, said: str
) -> None:
    """Ctrl-C during the start-up ended with a KeyboardInterrupt traceback (the CLI's own
    imports, typer reading the commands) or with exit 130 and not a word (click reading the
    command line, a command's imports: typer's own exit)."""
    import os
    import signal
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = ["run", "--dataset", "digits", "--workers", "-1", "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(
        [sys.executable, "-c", _BLOCKED_START.format(module=module), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # a background shell (CI, nohup) starts children with SIGINT ignored; a terminal,
        # where Ctrl-C is pressed, does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first = proc.stdout.readline()
        assert first == f"blocked in {module}\n", (first, proc.communicate(timeout=60))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, (out, err)
    assert err.splitlines() == [said] and out == "", (out, err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_stopped_while_the_data_set_loads_says_where_and_how_to_continue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: str
) -> None:
    """Ctrl-C while a data set was decoded exited 130 without a word (typer's own exit);
    SIGTERM there killed the command (its handler was set once the data were loaded)."""
    import fishermask.cli as cli
    import fishermask.experiments.experiment as experiment

    def load_dataset(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt if stop == "ctrl-c" else cli._Terminated

    args = ["run", "--dataset", "digits", "-s", "random", "--rounds", "1", *FAST]
    out = tmp_path / "run"
    how, code = ("interrupted", 130) if stop == "ctrl-c" else ("stopped by SIGTERM", 143)
    for existed, word in ((False, "start"), (True, "continue")):
        if existed:
            res = runner.invoke(app, [*args, "--out", str(out)])
            assert res.exit_code == 0, res.output
            before = {
                f: f.read_bytes() for f in out.rglob("*") if f.is_file() and f.name != "run.lock"
            }
        with monkeypatch.context() as m:
            m.setattr(experiment, "load_dataset", load_dataset)
            res = runner.invoke(app, [*args, "--out", str(out)])
        text = " ".join(res.output.split())
        assert res.exit_code == code and len(res.output.strip().splitlines()) == 1, res.output
        assert text.startswith(
            f"error: {how} while loading the data set digits, before the run "
            f"{word + 'ed' if word == 'start' else 'continued'}: nothing was written to {out}; "
            f"to {word} it, run the same command again (a decoding cut short starts over): "
            "fishermask run "
        ), text
        assert text.endswith(f"--out {out}"), text
        if existed:
            assert {
                f: f.read_bytes() for f in out.rglob("*") if f.is_file() and f.name != "run.lock"
            } == before
        else:
            assert not out.exists()
