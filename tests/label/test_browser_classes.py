"""The labeling page when the project's classes change while it is open, in headless Chromium
(as tests/label/test_browser.py)."""

from __future__ import annotations

from tests.label.conftest import browser_only
from tests.label.test_browser import (
    _open_page,
)
from tests.label.test_kill import stop_server

pytestmark = browser_only


def test_a_class_change_stays_said_until_the_page_is_reloaded(project, browser):
    """The "classes changed" line was the message line's, and the next message (a skip, a
    save) replaced it while the keys were still the old ones. A notice above the view keeps
    it, through later messages, until the page is reloaded (its button does that)."""
    from selenium.webdriver.common.by import By
    from typer.testing import CliRunner

    from fishermask.cli import app

    proc, wait = _open_page(project, browser)
    try:
        assert not browser.find_element(By.ID, "stale").is_displayed()
        r = CliRunner().invoke(app, ["label", "config", str(project.dir), "--add-class", "bird"])
        assert r.exit_code == 0, r.output
        wait.until(lambda d: d.find_element(By.ID, "stale").is_displayed())
        said = browser.find_element(By.ID, "stale-text").text
        assert "classes changed" in said and "red, green, blue, bird" in said
        browser.find_element(By.TAG_NAME, "body").send_keys("s")  # a later message
        wait.until(lambda d: d.find_element(By.ID, "message").text.startswith("saved: "))
        assert browser.find_element(By.ID, "stale").is_displayed()
        assert browser.find_element(By.ID, "stale-text").text == said
        browser.find_element(By.ID, "stale-reload").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "button.class")) == 4)
        wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("src"))
        assert not browser.find_element(By.ID, "stale").is_displayed()
    finally:
        stop_server(proc)
