"""A team's page after `label serve` was restarted with a new token, in a real headless browser
(the session's ``browser`` fixture of conftest): the annotator is told to ask the owner for a
new link, as only the owner sees the URLs serve prints."""

from __future__ import annotations

import re

from tests.label.conftest import browser_only
from tests.label.test_kill import start_server, stop_server

pytestmark = browser_only


def _serve_alice(project_dir, *args: str):
    """``label serve --annotators alice ARGS`` (a random token); returns the process and
    alice's URL (printed after the owner's)."""
    proc, _, _ = start_server(project_dir, "--annotators", "alice", *args)
    line = proc.stdout.readline()
    m = re.search(r"labeling page for alice: (http://\S+)", line)
    assert m, line
    return proc, m.group(1)


def test_an_annotators_page_with_a_stale_token_says_to_ask_the_owner(project, browser):
    """The line told an annotator to 'open the URL that `fishermask label serve` printed',
    which only the owner sees: an annotator needs the owner to give them the new link."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    project.close()
    proc, url = _serve_alice(project.dir)
    port = re.search(r":(\d+)/", url).group(1)
    wait = WebDriverWait(browser, 60)

    def message(d):
        return d.find_element(By.ID, "message").text

    try:
        browser.get(url)
        wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("src"))
        stop_server(proc)
        proc, url2 = _serve_alice(project.dir, "--port", port)  # a new token for alice too
        assert url2 != url
        wait.until(lambda d: "probably restarted with a new token" in message(d))
        assert "ask the owner for your new link" in message(browser), message(browser)
        assert "open the URL that" not in message(browser)
    finally:
        stop_server(proc)
