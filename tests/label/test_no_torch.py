"""The `label` commands that never touch a model do not import torch (1.5-3 s per call on a
small machine; docs/benchmarks.md, "Labeling tool"): each runs in a fresh interpreter, which
then must not have torch in ``sys.modules``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.label.conftest import TOKEN

SRC = str(Path(__file__).resolve().parents[2] / "src")

CLI = """
import sys
from fishermask.cli import app
try:
    app(sys.argv[1:], prog_name="fishermask")
except SystemExit as e:
    assert e.code in (0, None), f"exit {e.code}"
"""

SERVE = f"""
import sys, warnings
warnings.simplefilter("ignore")
from fastapi.testclient import TestClient
from fishermask.label.server import create_app
app = create_app(sys.argv[1], {TOKEN!r}, ())
try:
    with TestClient(app) as c:
        h = {{"Authorization": "Bearer {TOKEN}"}}
        assert c.get("/", params={{"token": {TOKEN!r}}}).status_code == 200
        assert c.get("/api/status", headers=h).status_code == 200
        items = c.get("/api/batch", headers=h).json()["items"]
        assert c.get(items[0]["url"], headers=h).status_code == 200
        assert c.get(items[0]["url"] + "?size=thumb", headers=h).status_code == 200
        assert c.get("/api/labeled", headers=h).json()["note"]  # no model: newest first
finally:
    app.state.worker.stop()
"""

CHECK = """
bad = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not bad, f"torch was imported ({len(bad)} torch modules)"
print("no torch")
"""


def _fresh(code: str, *args: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + CHECK, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def inputs(project, folder, tmp_path):
    """A labels CSV and a Label Studio export (no model: nothing to predict with)."""
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nred/000.png,red\ngreen/000.png,green\n")
    ls = tmp_path / "ls.json"
    project.add_label_rows(project.read_csv_labels(labels), source="import", what="t")
    project.export("labelstudio", ls)
    assert json.loads(ls.read_text())
    return {"labels": labels, "ls": ls, "out": tmp_path / "out"}


COMMANDS = {
    "status": ["status", "{p}"],
    "status --list skipped": ["status", "{p}", "--list", "skipped,unsure"],
    "add": ["add", "{p}", "{labels}"],
    "import": ["import", "{p}", "--labelstudio", "{ls}"],
    "export csv": ["export", "{p}", "--format", "csv", "--out", "{out}.csv"],
    "export imagefolder": ["export", "{p}", "--format", "imagefolder", "--out", "{out}"],
    "export labelstudio (no model)": [
        "export",
        "{p}",
        "--format",
        "labelstudio",
        "--out",
        "{out}.json",
    ],
    "status --list labeled (no model)": ["status", "{p}", "--list", "labeled"],
    "scan (nothing new)": ["scan", "{p}", "--no-progress"],
    "config (show)": ["config", "{p}"],
}


@pytest.mark.parametrize("name", COMMANDS)
def test_command_without_torch(name, project, inputs):
    args = [a.format(p=project.dir, **inputs) for a in COMMANDS[name]]
    r = _fresh(CLI, "label", *args)
    assert r.returncode == 0 and "no torch" in r.stdout, r.stdout + r.stderr


def test_serve_start_without_torch(project):
    r = _fresh(SERVE, project.dir)
    assert r.returncode == 0 and "no torch" in r.stdout, r.stdout + r.stderr
