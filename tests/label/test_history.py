"""Whether more labels still pay: the held-out accuracy of every round that trained a model
(`label status --list rounds`, the status's ``history``, the page's chart of it)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from fishermask.cli import app
from tests.label.conftest import browser_only, label_truth
from tests.label.test_browser import (
    _open_page,
)
from tests.label.test_kill import stop_server

runner = CliRunner()


@pytest.fixture
def rounds(project):
    """Three trained rounds: 6 labels (too few to estimate), 21 and 23 (5-fold CV each); one
    image is left to label (the page then shows it)."""
    for n in (2, 7):
        label_truth(project, n)
        project.run_round(train_model=True)
    rows = [("red/007.png", "red"), ("green/007.png", "green")]
    project.add_label_rows(rows, source="import", what="test")
    project.run_round(train_model=True)
    return project


def test_every_trained_round_is_in_the_history_estimated_or_said_why(rounds):
    h = rounds.accuracy_history()
    assert [r["labels"] for r in h] == [6, 21, 23]
    assert h[0]["accuracy"] is None and h[0]["method"].startswith("not estimated: needs 20")
    for r in h[1:]:
        assert r["method"] == "5-fold cross-validation"
        assert r["held_out"] == r["labels"]  # every label scored by a model without it
        assert 0 <= r["low"] <= r["accuracy"] <= r["high"] <= 1
    # the first round (the fixture's cold start) trained nothing and is not in it
    assert [r["round"] for r in h] == [r["id"] for r in rounds.store.rounds()][1:]
    assert [p["labels"] for p in rounds.status()["history"]] == [21, 23]  # estimated ones


def test_status_list_rounds_as_csv_and_json(rounds):
    rounds.close()
    r = runner.invoke(app, ["label", "status", str(rounds.dir), "--list", "rounds"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == [
        "round",
        "finished",
        "labels",
        "accuracy",
        "low",
        "high",
        "held_out",
        "method",
    ]
    assert [row["labels"] for row in rows] == ["6", "21", "23"]
    assert rows[0]["accuracy"] == "" and rows[0]["method"].startswith("not estimated")
    assert rows[2]["finished"].endswith("Z") and 0 <= float(rows[2]["accuracy"]) <= 1
    r = runner.invoke(
        app, ["label", "status", str(rounds.dir), "--list", "rounds", "--format", "json"]
    )
    got = json.loads(r.stdout)
    assert [g["labels"] for g in got] == [6, 21, 23] and got[0]["accuracy"] is None


def test_status_list_rounds_before_any_model_says_so(project):
    project.close()
    r = runner.invoke(
        app, ["label", "status", str(project.dir), "--list", "rounds", "--format", "json"]
    )
    assert r.exit_code == 0 and json.loads(r.stdout) == []
    assert "no round has trained a model yet" in r.stderr
    r = runner.invoke(app, ["label", "status", str(project.dir), "--list", "rounds,unsure"])
    assert r.exit_code == 2 and "list rounds on their own" in r.output


@browser_only
def test_the_page_draws_the_accuracy_by_labels(rounds, browser):
    """Two estimated rounds: a point each, at its labels, with its interval and a title
    naming the round and the method; the round without an estimate is left out."""
    from selenium.webdriver.common.by import By

    proc, wait = _open_page(rounds, browser)
    try:
        wait.until(lambda d: d.find_element(By.ID, "history").is_displayed())
        titles = [
            t.get_attribute("textContent")
            for t in browser.find_elements(By.CSS_SELECTOR, "#history-plot circle title")
        ]
        assert len(titles) == 2, titles
        assert all(t.startswith("round ") and "5-fold cross-validation" in t for t in titles)
        assert "with 21 labels" in titles[0] and "with 23 labels" in titles[1]
        assert len(browser.find_elements(By.CSS_SELECTOR, "#history-plot line.interval")) == 2
        xs = [
            float(c.get_attribute("cx"))
            for c in browser.find_elements(By.CSS_SELECTOR, "#history-plot circle.point")
        ]
        assert xs[0] < xs[1]  # more labels to the right
    finally:
        stop_server(proc)
