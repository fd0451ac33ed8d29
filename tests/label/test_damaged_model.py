"""A damaged model checkpoint (overwritten with other bytes, cut short, emptied) is the same one
line in every place that uses the project's model: `label predict`, `label revisit`, `label
status --list skipped|unsure` (the model's guesses), `label next`, `label export` (Label Studio
predictions, the model folder), and the API (409 with that line; the Labeled view says why
it ranks nothing). It used to be a traceback everywhere but `label predict`."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from fishermask.cli import app
from tests.label.conftest import AUTH, CLASSES, TINY, api_client, label_truth, make_folder

runner = CliRunner()

DAMAGE = {
    "overwritten": lambda good: b"these bytes are not a checkpoint " * 40,
    "truncated": lambda good: good[: len(good) // 2],
    "empty": lambda good: b"",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project with a trained model, one image skipped and one unsure; read only."""
    from fishermask.label.project import Project

    tmp = tmp_path_factory.mktemp("damaged")
    folder = make_folder(tmp / "images")
    p = Project.init(tmp / "proj", folder, ",".join(CLASSES), cache_dir=tmp / "cache", **TINY)
    p.run_round(train_model=False)
    label_truth(p, 4)
    row = p.run_round(train_model=True)
    ids = p.store.image_ids_by_path()
    p.store.add_label(ids["red/007.png"], "skip")
    p.store.add_label(ids["green/007.png"], "unsure")
    p.close()
    return tmp / "proj", row["checkpoint"]


@pytest.fixture(params=sorted(DAMAGE))
def damaged(request, trained, tmp_path):
    """A copy of ``trained`` whose checkpoint is damaged; ``(project dir, checkpoint path)``."""
    proj, rel = trained
    shutil.copytree(proj, tmp_path / "proj")
    ckpt = tmp_path / "proj" / rel
    ckpt.write_bytes(DAMAGE[request.param](ckpt.read_bytes()))
    return tmp_path / "proj", ckpt


def _says_it(text: str, ckpt) -> None:
    """One line naming the file and the fix, no traceback."""
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert f"cannot read the latest model {ckpt}" in text, text
    assert "fishermask label train" in text, text


def _state(proj) -> tuple:
    """What a refused command must leave as it was: the rounds and the batch."""
    from fishermask.label.project import Project

    p = Project(proj)
    try:
        return [r["id"] for r in p.store.rounds()], [it["image_id"] for it in p.batch()]
    finally:
        p.close()


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "{p}", "--no-progress"],
        ["revisit", "{p}"],
        ["status", "{p}", "--list", "skipped"],
        ["status", "{p}", "--list", "unsure"],
        ["next", "{p}"],
        ["export", "{p}", "--format", "labelstudio", "--out", "-"],
        ["export", "{p}", "--format", "model", "--out", "{out}"],
    ],
    ids=lambda a: " ".join(a[:1] + a[2:4]),
)
def test_every_command_says_one_line_and_changes_nothing(damaged, args, tmp_path):
    proj, ckpt = damaged
    before = _state(proj)
    argv = [a.format(p=proj, out=tmp_path / "exported") for a in args]
    r = runner.invoke(app, ["label", *argv])
    assert r.exit_code == 2, r.output
    _says_it(r.output, ckpt)
    assert _state(proj) == before
    assert not (tmp_path / "exported").exists()


def test_the_api_answers_409_with_the_line_and_the_labeled_view_says_why(damaged):
    proj, ckpt = damaged
    before = _state(proj)
    with api_client(proj) as c:
        r = c.post("/api/revisit", headers=AUTH, json={})
        assert r.status_code == 409, r.text
        _says_it(r.json()["error"], ckpt)
        r = c.get("/api/predictions", headers=AUTH)
        assert r.status_code == 409, r.text
        _says_it(r.json()["error"], ckpt)
        r = c.get("/api/labeled", headers=AUTH).json()
        assert r["model"] is None and r["sort"] == "newest"
        assert f"cannot read the latest model {ckpt}" in r["note"] and "\n" not in r["note"]
    assert _state(proj) == before


def test_project_load_model_raises_the_one_line(damaged):
    """Every caller of :meth:`Project.load_model` (the guesses of a revisit, of `label status
    --list`, a round that queries without retraining) gets the same DataError."""
    from fishermask.errors import DataError
    from fishermask.label.project import Project

    proj, ckpt = damaged
    p = Project(proj)
    try:
        with pytest.raises(DataError) as e:
            p.latest_model()
        _says_it(str(e.value), ckpt)
        with pytest.raises(DataError):
            p.guesses([1])
    finally:
        p.close()


def test_the_page_says_the_line_where_the_revisit_and_the_ranking_would_be(damaged, browser):
    """The page with a damaged model: "revisit" (the model's guesses for the images set aside)
    shows the server's line instead of queueing, and the Labeled view says why it is newest
    first."""
    import re

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.label.test_kill import start_server, stop_server

    proj, ckpt = damaged
    proc, line, _ = start_server(proj)
    try:
        wait = WebDriverWait(browser, 60)

        def text(d, id_):
            return d.find_element(By.ID, id_).text

        browser.get(re.search(r"http://\S+", line).group(0))
        wait.until(lambda d: d.find_element(By.ID, "set-aside").is_displayed())
        browser.find_element(By.ID, "revisit").click()
        wait.until(lambda d: "cannot read the latest model" in text(d, "message"))
        _says_it(text(browser, "message"), ckpt)
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: "cannot read the latest model" in text(d, "browse-note"))
        assert text(browser, "browse-note").startswith("newest first: the model cannot rank")
    finally:
        stop_server(proc)
