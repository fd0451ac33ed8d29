"""An open page across a restart of `label serve` with the same token (a team's fixed --token),
in a real headless browser (the session's ``browser`` fixture of conftest)."""

from __future__ import annotations

import re
import signal
import sqlite3
from collections.abc import Callable
from typing import Any, NamedTuple

from tests.label.conftest import CLASSES, TeamServer, browser_only, page_text
from tests.label.test_kill import stop_server

pytestmark = browser_only

TEAM_TOKEN = "Zq8vK3mN5pR7tW9yB2cD4fG6hJ8kL0"  # fixed: the annotators' tokens stay the same


def message(d) -> str:
    """The page's message line."""
    return page_text(d, "message")


class Crashed(NamedTuple):
    url: str  # alice's page, open in the browser
    wait: Any  # a 60 s WebDriverWait of the browser
    restart: Callable[[], TeamServer]  # the same server again: same token, same port


def _open_then_crash(project, browser, team_server) -> Crashed:
    """Serve ``project`` to alice with the team's fixed token, open her page and wait for its
    image, then kill the server (SIGKILL: a crash, nothing said, nothing cleaned up) and wait
    until the page says that it does not answer."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    project.close()
    first = team_server(project.dir, ("alice",), "--token", TEAM_TOKEN)
    url = first.urls["alice"]
    port = re.search(r":(\d+)/", url).group(1)
    wait = WebDriverWait(browser, 60)
    browser.get(url)
    wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("src"))
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    wait.until(lambda d: "does not answer" in message(d))

    def restart() -> TeamServer:
        return team_server(project.dir, ("alice",), "--token", TEAM_TOKEN, "--port", port)

    return Crashed(url, wait, restart)


def test_a_page_says_when_the_restarted_server_answers_again(project, browser, team_server):
    """After `label serve` was killed and started again with the same token, an open page went
    on saying 'the labeling server does not answer (stopped?): start `fishermask label serve`
    again ...' although its polls were answered again (and a team's other pages moved on), so
    the user would start a second server (refused) or reopen the URL for nothing."""
    from selenium.webdriver.common.by import By

    url, wait, restart = _open_then_crash(project, browser, team_server)
    path = browser.find_element(By.ID, "path").text
    key = str(CLASSES.index(path.split("/")[0]) + 1)
    browser.find_element(By.TAG_NAME, "body").send_keys(key)
    wait.until(lambda d: f"not saved: {path}" in message(d))

    again = restart()
    assert again.urls["alice"] == url  # the same token for alice: the open page's still works
    wait.until(lambda d: "answers again" in message(d))
    assert "does not answer" not in message(browser)
    assert f"not saved: {path}: label it again" in message(browser)
    assert browser.find_element(By.ID, "path").text == path

    browser.find_element(By.TAG_NAME, "body").send_keys(key)
    wait.until(lambda d: message(d).startswith(f"saved: {path}"))
    stop_server(again.proc)  # what it saved, read once it has stopped
    db = sqlite3.connect(project.dir / "project.sqlite")
    rows = db.execute(
        "SELECT c.name, l.annotator FROM labels l JOIN images i ON i.id = l.image_id "
        "JOIN classes c ON c.id = l.class_id WHERE i.path = ?",
        (path,),
    ).fetchall()
    db.close()
    assert rows == [(path.split("/")[0], "alice")]


def test_an_image_asked_for_while_the_server_was_down_is_shown_when_it_answers(
    project, browser, team_server
):
    """An image moved to (→) while `label serve` was down stayed a blank frame once the
    restarted server answered again, and a class key labeled it unseen; it is now asked for
    again then, and labeled as usual."""
    from selenium.webdriver.common.by import By

    _, wait, restart = _open_then_crash(project, browser, team_server)

    def src(d):
        return d.find_element(By.ID, "image").get_attribute("src")

    body = browser.find_element(By.TAG_NAME, "body")
    for _ in range(3):  # past the two images fetched ahead before the server went down
        body.send_keys("\ue014")  # →
    wait.until(lambda d: message(d).startswith("cannot show ") and not src(d))
    path = browser.find_element(By.ID, "path").text
    key = str(CLASSES.index(path.split("/")[0]) + 1)
    body.send_keys(key)
    wait.until(lambda d: message(d).startswith(f"not labeled: {path} could not be shown"))

    restart()
    wait.until(lambda d: "answers again" in message(d))
    wait.until(src)
    assert browser.find_element(By.ID, "path").text == path
    body.send_keys(key)
    wait.until(lambda d: message(d).startswith(f"saved: {path}"))
