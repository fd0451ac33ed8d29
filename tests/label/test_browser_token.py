"""A team's page after `label serve` was restarted with a new token, in a real headless browser
(the session's ``browser`` fixture of conftest): the annotator is told to ask the owner for a
new link, as only the owner sees the URLs serve prints."""

from __future__ import annotations

import re

from tests.label.conftest import browser_only, page_text
from tests.label.test_kill import stop_server

pytestmark = browser_only


def test_an_annotators_page_with_a_stale_token_says_to_ask_the_owner(project, browser, team_server):
    """The line told an annotator to 'open the URL that `fishermask label serve` printed',
    which only the owner sees: an annotator needs the owner to give them the new link."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    project.close()
    first = team_server(project.dir)  # a random token
    url = first.urls["alice"]
    port = re.search(r":(\d+)/", url).group(1)
    wait = WebDriverWait(browser, 60)
    browser.get(url)
    wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("src"))
    stop_server(first.proc)
    again = team_server(project.dir, ("alice",), "--port", port)  # a new token for alice too
    assert again.urls["alice"] != url
    wait.until(lambda d: "probably restarted with a new token" in page_text(d, "message"))
    said = page_text(browser, "message")
    assert "ask the owner for your new link" in said and "open the URL that" not in said, said
