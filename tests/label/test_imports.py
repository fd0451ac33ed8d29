"""``label init/config --import``: a model and a strategy of your own in a labeling project,
imported by the commands, the round's worker process, ``label predict`` and the export's
loader; a missing, failing or non-registering file is one line (exit 2, nothing written)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fishermask.cli import app
from tests.label.conftest import AUTH, CLASSES, api_client, label_truth, wait_for_round

runner = CliRunner()

# each test registers names of its own: a name is registered once per process
PLUGIN = """
from dataclasses import dataclass

from torch import nn

from fishermask.models import register_model
from fishermask.strategies import Selection, Strategy, register


class Tiny(nn.Module):
    def __init__(self, num_classes, channels):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


register_model("{model}", lambda num_classes, shape, width: Tiny(num_classes, shape[0]))


@register
@dataclass(frozen=True)
class FirstUnlabeled(Strategy):
    name = "{strategy}"

    def query(self, ctx, budget):
        return Selection(ctx.pool.unlabeled[:budget])
"""

ARGS = (
    "--classes",
    ",".join(CLASSES),
    "--image-size",
    "8x8",
    "--batch",
    "6",
    "--min-per-class",
    "2",
    "--max-epochs",
    "2",
    "--max-steps",
    "4",
    "--no-progress",
)


def _run(*args: object):
    return runner.invoke(app, ["label", *map(str, args)])


def _one_line_error(res, *needles: str) -> str:
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert text.startswith("error:"), res.output
    for n in needles:
        assert n in text, res.output
    return text


_TAGS = itertools.count()


@dataclass
class Plugin:
    path: Path
    model: str
    strategy: str


@pytest.fixture
def plugin(tmp_path: Path) -> Plugin:
    tag = next(_TAGS)
    path = tmp_path / "my_plugin.py"
    pl = Plugin(path, f"imp_tiny{tag}", f"imp_first{tag}")
    path.write_text(PLUGIN.replace("{model}", pl.model).replace("{strategy}", pl.strategy))
    return pl


def _init(tmp_path: Path, folder: Path, plugin: Plugin, *extra: object):
    return _run(
        "init",
        tmp_path / "proj",
        "--images",
        folder,
        *ARGS,
        "--import",
        plugin.path,
        "--model",
        plugin.model,
        "--strategy",
        plugin.strategy,
        *extra,
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cli_in_new_process(*args: object) -> subprocess.CompletedProcess[str]:
    """``fishermask label ARGS`` in a process of its own (as from a shell)."""
    code = "import sys; from fishermask.cli import app; sys.argv[0] = 'fishermask'; app()"
    return subprocess.run(
        [sys.executable, "-c", code, "label", *map(str, args)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )


def test_init_with_an_import_stores_it_and_trains_queries_predicts_exports(
    tmp_path, folder, plugin
):
    from fishermask.label import load_model
    from fishermask.label.project import Project

    res = _init(tmp_path, folder, plugin)
    assert res.exit_code == 0, res.output
    p = Project(tmp_path / "proj")
    assert p.settings["imports"] == [
        {"entry": str(plugin.path), "path": str(plugin.path.resolve())}
    ]
    assert (p.settings["model"], p.settings["strategy"]) == (plugin.model, plugin.strategy)
    digest = hashlib.sha256(plugin.path.read_bytes()).hexdigest()
    assert p.store.rounds()[0]["settings"]["import_sha256"] == {str(plugin.path.resolve()): digest}

    # a trained round through `label train`, then `label next` with the strategy of the file
    label_truth(p, 3)
    res = _run("train", tmp_path / "proj", "--no-progress")
    assert res.exit_code == 0, res.output
    res = _run("next", tmp_path / "proj")
    assert res.exit_code == 0, res.output
    last = p.store.rounds()[-1]
    assert last["strategy"] == plugin.strategy and last["mode"] == (
        f"chosen by the model trained on 9 labels (method: {plugin.strategy})"
    )
    queued = [it["path"] for it in p.batch()]
    labeled = {f"{c}/{i:03d}.png" for c in CLASSES for i in range(3)}
    first = sorted(r.path for r in p.store.images() if r.path not in labeled)[:6]
    assert sorted(queued) == first  # the first unlabeled images (pool order is by id)

    res = _run("predict", tmp_path / "proj", "--no-progress")
    assert res.exit_code == 0, res.output
    assert len(res.stdout.strip().splitlines()) == 1 + p.store.num_images()
    fresh = _cli_in_new_process("predict", tmp_path / "proj", "--no-progress")  # imports it
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout == res.stdout

    res = _run("export", tmp_path / "proj", "--format", "model", "--out", tmp_path / "m")
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert info["architecture"] == plugin.model
    assert info["imports"] == [
        {"entry": str(plugin.path), "path": str(plugin.path.resolve()), "sha256": digest}
    ]
    model = load_model(tmp_path / "m")
    assert model.predict(str(folder / "red" / "000.png"))[0] in CLASSES
    # a new process that has not imported the file: the loader imports what model.json records
    code = (
        "import sys; from fishermask.label import load_model; "
        "print(load_model(sys.argv[1]).predict(sys.argv[2])[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, tmp_path / "m", folder / "red" / "000.png"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == model.predict(str(folder / "red" / "000.png"))[0]
    p.close()


def test_a_round_in_the_servers_worker_process_imports_the_file(tmp_path, folder, plugin):
    from fishermask.label.project import Project

    assert _init(tmp_path, folder, plugin).exit_code == 0
    p = Project(tmp_path / "proj")
    label_truth(p, 3)
    p.close()
    with api_client(tmp_path / "proj") as client:
        r = client.post("/api/next", headers=AUTH)
        assert r.status_code == 202, r.text
        s = wait_for_round(client)
        assert s["round"]["status"] == "done", s
        assert s["mode"].endswith(f"(method: {plugin.strategy})")
        row = client.project.store.round(s["round"]["id"])
        assert str(plugin.path.resolve()) in row["settings"]["import_sha256"]
        ckpt = row["checkpoint"]
        assert ckpt is not None
        items = client.get("/api/batch", headers=AUTH).json()["items"]
        assert items and all(it["guesses"] for it in items)

        # the file gone: 'next batch' is refused with the fix, no round started
        n = len(client.project.store.rounds())
        plugin.path.unlink()
        r = client.post("/api/next", headers=AUTH)
        assert r.status_code == 409 and "label config" in r.json()["error"], r.text
        assert len(client.project.store.rounds()) == n


def test_a_gone_import_file_names_it_and_the_fix_and_config_repoints_it(tmp_path, folder, plugin):
    from fishermask.label.project import Project

    assert _init(tmp_path, folder, plugin).exit_code == 0
    moved = tmp_path / "moved.py"
    plugin.path.rename(moved)
    p = Project(tmp_path / "proj")
    n = len(p.store.rounds())
    for cmd in (("next",), ("train", "--no-progress")):
        res = _run(cmd[0], tmp_path / "proj", *cmd[1:])
        _one_line_error(res, str(plugin.path.resolve()), "is gone", "label config", "--import")
    assert len(p.store.rounds()) == n  # no round started (nor failed)
    res = _run("config", tmp_path / "proj")  # the settings still show
    assert res.exit_code == 0 and str(plugin.path.resolve()) in res.stdout
    # in a process of its own: this one registered the names from the file's first place
    res = _cli_in_new_process("config", tmp_path / "proj", "--import", moved)
    assert res.returncode == 0, res.stderr
    assert f"import: {plugin.path.resolve()} -> {moved}" in res.stdout
    res = _cli_in_new_process("next", tmp_path / "proj")
    assert res.returncode == 0, res.stderr
    assert p.store.rounds()[-1]["settings"]["imports"][0]["path"] == str(moved)
    p.close()


def test_config_import_that_does_not_register_the_current_model_is_refused(
    tmp_path, folder, plugin
):
    from fishermask.label.project import Project

    assert _init(tmp_path, folder, plugin).exit_code == 0
    other = tmp_path / "empty.py"
    other.write_text("X = 1\n")
    # a new process, as from a shell (this one has the model registered by the first file)
    res = _cli_in_new_process("config", tmp_path / "proj", "--import", other)
    assert res.returncode == 2 and res.stdout == "", (res.stdout, res.stderr)
    text = " ".join(res.stderr.split())
    assert text.startswith("error:") and "Traceback" not in text, res.stderr
    for needle in (f"Unknown model '{plugin.model}'", "not registered by", str(other.resolve())):
        assert needle in text, res.stderr
    p = Project(tmp_path / "proj")
    assert p.settings["imports"][0]["path"] == str(plugin.path.resolve())  # nothing written
    assert p.store.settings_history() == []
    p.close()


@pytest.mark.parametrize(
    ("content", "flags", "needles"),
    [
        (None, (), ("no such file",)),
        (
            "raise ValueError('bad weights path /x.pt')\n",
            (),
            ("importing it failed", "ValueError: bad weights path /x.pt"),
        ),
        ("def broken(:\n", (), ("importing it failed", "SyntaxError")),
        ("X = 1\n", ("--model", "nope"), ("Unknown model 'nope'", "not registered by")),
        ("X = 1\n", ("--strategy", "nope"), ("Unknown strategy 'nope'", "not registered by")),
    ],
)
def test_init_import_refusals_are_one_line_and_write_nothing(
    tmp_path, folder, content, flags, needles
):
    path = tmp_path / "mine.py"
    if content is not None:
        path.write_text(content)
    res = _run("init", tmp_path / "proj", "--images", folder, *ARGS, "--import", path, *flags)
    _one_line_error(res, *needles)
    assert "Traceback" not in res.output
    assert not (tmp_path / "proj").exists()


def test_a_registered_model_without_import_says_how(tmp_path, folder):
    res = _run("init", tmp_path / "proj", "--images", folder, *ARGS, "--model", "mynet")
    _one_line_error(res, "Unknown model 'mynet'", "--import FILE.py")


def test_loader_of_an_export_whose_import_file_is_gone_says_which(tmp_path, folder, plugin):
    from fishermask.errors import ConfigError
    from fishermask.label.predict import LabelModel, description_sha256
    from fishermask.label.project import Project

    assert _init(tmp_path, folder, plugin).exit_code == 0
    p = Project(tmp_path / "proj")
    label_truth(p, 3)
    p.run_round(train_model=True)
    p.close()
    assert (
        _run("export", tmp_path / "proj", "--format", "model", "--out", tmp_path / "m").exit_code
        == 0
    )
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    info["architecture"] = "imp_gone"  # a model this process has not registered
    info["imports"][0]["path"] = str(tmp_path / "gone.py")
    info["description_sha256"] = description_sha256(info)  # as if exported so
    (tmp_path / "m" / "model.json").write_text(json.dumps(info))
    with pytest.raises(ConfigError, match="gone.py, which is gone"):
        LabelModel(tmp_path / "m")
