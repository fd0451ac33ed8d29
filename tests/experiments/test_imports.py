"""Your own strategies from a module or file (`--import`, `imports:`), in every process."""

from __future__ import annotations

import csv
import hashlib
import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fishermask import strategies
from fishermask.cli import app
from fishermask.errors import ConfigError
from fishermask.experiments.config import ExperimentConfig
from fishermask.experiments.parallel import _trial_job
from fishermask.plugins import load_imports

STRATEGY = '''
from dataclasses import dataclass

from fishermask.strategies import Selection, Strategy, register, top_k

RUNS = []
RUNS.append(1)


@register
@dataclass(frozen=True)
class LowestTop(Strategy):
    """Lowest top-class probability (a test plugin)."""

    name = "{name}"
    power: float = 1.0

    def query(self, ctx, budget):
        unlabeled = ctx.pool.unlabeled
        pick = top_k(-ctx.probs(unlabeled).max(dim=1).values, budget)
        return Selection(unlabeled[pick])
'''


MODEL = """

from torch import nn

from fishermask.models import register_model


class Net(nn.Module):
    def __init__(self, num_classes, channels):
        super().__init__()
        self.head = nn.Linear(8, num_classes)
        self.body = nn.Sequential(nn.Conv2d(channels, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten())

    def forward(self, x):
        return self.head(self.body(x))


register_model("{name}_net", lambda c, shape, width: Net(c, shape[0]))
"""


def _plugin(tmp_path: Path, name: str, model: bool = False) -> Path:
    path = tmp_path / f"{name}.py"
    text = STRATEGY.format(name=name) + (MODEL.format(name=name) if model else "")
    path.write_text(textwrap.dedent(text))
    return path


def test_a_file_registers_its_strategies_once(tmp_path: Path) -> None:
    path = _plugin(tmp_path, "plugin_once")
    (first,) = load_imports([str(path)])
    (again,) = load_imports([str(path)])
    assert first is again and first.RUNS == [1]  # run once: no "registered twice"
    assert strategies.get("plugin_once", power="2").power == 2.0


def test_missing_module_or_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot import 'no_such_mod'.*--import ./no_such_mod"):
        load_imports(["no_such_mod"])
    with pytest.raises(ConfigError, match=r"cannot import '.*nope.py'.*no such file"):
        load_imports([str(tmp_path / "nope.py")])


def test_a_plugin_missing_its_own_dependency_keeps_its_error(tmp_path: Path) -> None:
    bad = tmp_path / "needs_dep.py"
    bad.write_text("import surely_not_installed_xyz\n")
    # its own missing dependency is named (not "no such module" for the entry), in one line
    with pytest.raises(ConfigError, match="ModuleNotFoundError.*surely_not_installed_xyz") as e:
        load_imports([str(bad)])
    assert isinstance(e.value.__cause__, ModuleNotFoundError)


def test_config_reads_imports_from_a_file_or_a_comma_list() -> None:
    cfg = ExperimentConfig.from_dict({"imports": "a.b, ./c.py"})
    assert cfg.imports == ("a.b", "./c.py")
    assert ExperimentConfig.from_dict({"imports": ["x"]}).to_dict()["imports"] == ["x"]
    assert ExperimentConfig.from_dict({}).imports == ()


def test_worker_without_the_strategy_says_how_to_register_it(tmp_path: Path) -> None:
    """A strategy registered only in the parent (under `if __name__ == "__main__"`, or in a
    notebook) used to fail in a worker as an `Unknown strategy` the user had registered."""
    config = ExperimentConfig.from_dict(
        {"data": {"dataset": "digits"}, "strategies": ["random"], "seeds": [0]}
    ).to_dict()
    config["strategies"] = [{"name": "only_in_parent", "options": {}, "label": ""}]
    with pytest.raises(
        ConfigError, match=r"'only_in_parent' is not registered in this worker.*--import"
    ):
        _trial_job(config, "only_in_parent", 0, str(tmp_path / "run"), False)


def test_cli_runs_a_strategy_and_model_from_a_file_in_worker_processes(tmp_path: Path) -> None:
    path = _plugin(tmp_path, "plugin_cli", model=True)
    out = tmp_path / "run"
    args = ["run", "--dataset", "digits", "--model", "plugin_cli_net", "--epochs", "1"]
    args += ["--initial", "20", "--query-size", "10", "--rounds", "1", "--seeds", "1"]
    args += ["-s", "random,plugin_cli,kcenter", "--import", str(path), "--workers", "2"]
    result = CliRunner().invoke(app, [*args, "--no-progress", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {(r["strategy"], r["round"]) for r in rows} >= {("plugin_cli", "1")}
    listing = CliRunner().invoke(app, ["strategies", "--import", str(path)])
    assert "plugin_cli" in listing.output and "power=1.0" in listing.output


def test_resume_with_changed_import_code_is_refused(tmp_path: Path) -> None:
    """A resume used to run the remaining rounds with whatever the --import file held then
    (edited, or another ./plugin.py in another directory), mixing two strategies' rounds in
    one trial silently. Each round records the SHA-256 of the source it imported."""
    path = _plugin(tmp_path, "plugin_resume")
    out = tmp_path / "run"
    args = ["run", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--initial", "20"]
    args += ["--query-size", "10", "--rounds", "2", "--seeds", "1", "-s", "plugin_resume"]
    args += ["--import", str(path), "--workers", "1", "--no-progress", "--device", "cpu"]
    args += ["--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    trial = out / "trials" / "plugin_resume__seed0"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    last = json.loads((trial / "round_001.json").read_text())
    assert last["import_sha256"] == {str(path): digest}
    # interrupted after round 1 (its checkpoint kept); the file changed before the resume
    (trial / "round_002.json").unlink()
    (trial / "model_002.pt").rename(trial / "model_001.pt")
    last["import_sha256"] = {str(path): "0" * 64}
    (trial / "round_001.json").write_text(json.dumps(last))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"--import {path} sha256 '000000000000' -> '{digest[:12]}'" in result.output
    assert not (trial / "round_002.json").exists()
    assert CliRunner().invoke(app, [*args, "--allow-env-change"]).exit_code == 0


def test_a_relative_import_in_a_config_file_names_the_directory_it_is_taken_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`imports: [./mine.py]` in experiments/exp.yaml, run from the project root, used to say
    only "no such file (/root/mine.py)", leaving the reader to guess that paths are taken
    from the current directory and not from the config file's folder."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    _plugin(folder, "plugin_relative")
    (folder / "exp.yaml").write_text(
        "imports: [./plugin_relative.py]\ndata: {dataset: digits}\nstrategies: [plugin_relative]\n"
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "--config", "experiments/exp.yaml", "--out", "r"])
    assert result.exit_code == 2, result.output
    assert (
        f"taken from the current directory, {tmp_path}, not from the config file's folder"
        in " ".join(result.output.split())
    )
    assert not (tmp_path / "r").exists()


def test_a_width_the_registered_model_ignores_is_refused(tmp_path: Path) -> None:
    """A builder that ignores `width` used to run at its one size while config.json, the
    summary and the banner recorded --width 0.25."""
    path = _plugin(tmp_path, "plugin_width", model=True)  # its builder ignores width
    args = ["run", "--dataset", "digits", "--model", "plugin_width_net", "--width", "0.25"]
    args += ["--import", str(path), "-s", "random", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "model 'plugin_width_net' ignores `width`" in " ".join(result.output.split())
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("code", "want"),
    [
        ("def broken(:\n", "importing it failed: SyntaxError"),
        (STRATEGY.format(name="entropy"), "registered twice"),  # a built-in's name
        ("raise RuntimeError('no weights file here')\n", "RuntimeError: no weights file here"),
    ],
)
def test_an_import_whose_code_fails_is_one_line(tmp_path, code, want):
    # the user's code failing as it is imported: one line naming the entry and the error (the
    # CLI's run and strategies used to print a 40-line traceback; the labeling tool did not)
    path = tmp_path / "mine.py"
    path.write_text(code)
    out = tmp_path / "run"
    for args in (
        ["strategies", "--import", str(path)],
        ["run", "--dataset", "digits", "--model", "mlp", "-s", "random", "--rounds", "1"]
        + ["--import", str(path), "--no-progress", "--out", str(out)],
    ):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2, r.output
        text = " ".join(r.output.split())
        assert want in text and "fix it and run again" in text and "Traceback" not in text
        assert len(r.output.strip().splitlines()) <= 3  # one line, wrapped by the terminal
    assert not out.exists()
    with pytest.raises(ConfigError) as exc:  # Python callers keep the cause's traceback
        load_imports([str(path)])
    assert exc.value.__cause__ is not None


def _package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    """Package ``name`` on sys.path: its __init__ registers a strategy whose code lives in a
    sibling module, ``scoring.py``."""
    pkg = tmp_path / "site" / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"from {name}.scoring import *  # noqa: F403\n")
    (pkg / "scoring.py").write_text(textwrap.dedent(STRATEGY.format(name=name)))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return pkg


def test_a_package_entry_hashes_every_py_file_of_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module entry used to record the SHA-256 of its own file only (a package's
    __init__.py), so an edit of the module holding the strategy went unnoticed on resume."""
    from fishermask.plugins import import_sha256, package_sha256, same_source

    pkg = _package(tmp_path, monkeypatch, "pkg_hashed")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "stale.py").write_text("x = 1\n")  # not part of the package
    got = import_sha256(["pkg_hashed", "pkg_hashed.scoring"])
    want = "package:" + package_sha256([str(pkg)])
    assert got == {"pkg_hashed": want, "pkg_hashed.scoring": want}
    before = package_sha256([str(pkg)])
    scoring = (pkg / "scoring.py").read_text()
    (pkg / "scoring.py").write_text(scoring.replace("power: float = 1.0", "power: float = 2.0"))
    assert package_sha256([str(pkg)]) != before  # an edit of a file the entry imports
    (pkg / "scoring.py").write_text(scoring)
    assert package_sha256([str(pkg)]) == before
    (pkg / "extra.py").write_text("")
    assert package_sha256([str(pkg)]) != before  # a new file too
    # a round recorded before packages were hashed whole holds the __init__.py's SHA-256
    legacy = hashlib.sha256((pkg / "__init__.py").read_bytes()).hexdigest()
    assert same_source("pkg_hashed", legacy, want)
    assert not same_source("pkg_hashed", "0" * 64, want)
    assert not same_source("pkg_hashed", "package:" + "0" * 64, want)
    # a top-level single-file module and a .py file keep their file's SHA-256
    single = tmp_path / "site" / "single_hashed.py"
    single.write_text("X = 1\n")
    assert import_sha256(["single_hashed"]) == {
        "single_hashed": hashlib.sha256(single.read_bytes()).hexdigest()
    }


def test_resume_after_an_edit_of_a_package_module_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = _package(tmp_path, monkeypatch, "pkg_resume")
    out = tmp_path / "run"
    args = ["run", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--initial", "20"]
    args += ["--query-size", "10", "--rounds", "2", "--seeds", "1", "-s", "pkg_resume"]
    args += ["--import", "pkg_resume", "--workers", "1", "--no-progress", "--device", "cpu"]
    args += ["--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    trial = out / "trials" / "pkg_resume__seed0"
    last = json.loads((trial / "round_001.json").read_text())
    digest = last["import_sha256"]["pkg_resume"]
    assert digest.startswith("package:") and len(digest) == len("package:") + 64
    (trial / "round_002.json").unlink()  # interrupted after round 1 (its checkpoint kept)
    (trial / "model_002.pt").rename(trial / "model_001.pt")
    kept = (trial / "model_001.pt").read_bytes()

    def resume(recorded: str) -> object:
        (trial / "round_001.json").write_text(json.dumps({**last, "import_sha256": {
            "pkg_resume": recorded}}))  # fmt: skip
        (trial / "model_001.pt").write_bytes(kept)
        (trial / "round_002.json").unlink(missing_ok=True)
        return CliRunner().invoke(app, args)

    # what another scoring.py (the __init__.py unchanged) gives: refused, naming the entry
    result = resume("package:" + "0" * 64)
    assert result.exit_code == 2, result.output
    assert f"--import pkg_resume sha256 'package:000000000000' -> '{digest[:20]}'" in (
        result.output
    )
    assert not (trial / "round_002.json").exists()
    # a run of an older version recorded the __init__.py's SHA-256: still resumable
    legacy = hashlib.sha256((pkg / "__init__.py").read_bytes()).hexdigest()
    assert resume(legacy).exit_code == 0
    assert (trial / "round_002.json").exists()


@pytest.mark.parametrize(("model", "width"), [("linear", "0.5"), ("cnn", "1.001")])
def test_a_width_a_builtin_model_ignores_is_refused(tmp_path: Path, model: str, width: str) -> None:
    """`--model linear --width 0.5` (one layer: nothing to widen) and a width that rounds every
    cnn layer to its width-1 size used to run the width-1 model while config.json and the
    report title recorded the width given."""
    args = ["run", "--dataset", "digits", "--model", model, "--width", width, "-s", "random"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert f"model '{model}' ignores `width`" in said or f"model '{model}' has no width" in said
    assert not (tmp_path / "run").exists()


def test_a_notebook_cell_run_again_replaces_what_it_registered():
    """Running the cell that defines a strategy or a model again (after an edit) raised
    "registered twice"; in __main__ the same qualified name is the same definition, so the
    new one replaces the old. Another definition of a name is still refused."""
    from fishermask.models import model_builder

    cell = STRATEGY.format(name="cell_strategy") + textwrap.dedent(
        """
        from torch import nn
        from fishermask.models import register_model
        register_model("cell_model", lambda c, shape, w: nn.Linear(4, c))
        """
    )
    from fishermask.strategies.registry import strategy_class

    exec(cell, {"__name__": "__main__"})
    builder = model_builder("cell_model")
    again: dict = {"__name__": "__main__"}
    exec(cell, again)  # the cell run again
    assert strategy_class("cell_strategy") is again["LowestTop"]
    assert model_builder("cell_model") is not builder  # the new lambda

    class LowestTop(strategies.Strategy):  # the same name from another module: refused
        name = "cell_strategy"

    with pytest.raises(TypeError, match="registered twice"):
        strategies.register(LowestTop)
    with pytest.raises(TypeError, match="registered twice"):
        exec(STRATEGY.format(name="entropy"), {"__name__": "__main__"})  # a built-in's name
