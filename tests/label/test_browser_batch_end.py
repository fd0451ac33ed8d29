"""Keys pressed once the batch is done, in headless Chromium (as tests/label/test_browser.py)."""

from __future__ import annotations

import json
import re
import urllib.request

from tests.label.conftest import CLASSES, browser_only
from tests.label.test_browser import _open_page, _page_token
from tests.label.test_kill import stop_server

pytestmark = browser_only


def test_class_keys_after_the_batch_is_done_label_nothing(project, browser):
    """Once 'Batch done' was shown, the page stayed on the last image, and every class key
    pressed again labeled it again: a new label row per press, and a different key silently
    changed its label. After the last image the label keys now do nothing but say that the
    batch is done and what to do; going back with the arrow key still changes a label, on
    purpose."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from fishermask.label.project import Project

    proc, wait = _open_page(project, browser)
    try:
        base = re.search(r"http://[^/]+", browser.current_url).group(0)
        req = urllib.request.Request(
            base + "/api/batch", headers={"Authorization": "Bearer " + _page_token(browser)}
        )
        with urllib.request.urlopen(req) as r:
            batch = json.load(r)["items"]
        keys = "".join(str(CLASSES.index(it["path"].split("/")[0]) + 1) for it in batch)
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(keys)
        wait.until(lambda d: "Batch done" in d.find_element(By.ID, "message").text)
        p = Project(project.dir)
        try:
            before = p.store.current_labels()
            rows = len(p.store.history())
            assert rows == len(batch)
            last = batch[-1]
            other = next(c for c in CLASSES if c != last["path"].split("/")[0])
            body.send_keys("1", "2", "3", "s", "u", Keys.ENTER, str(CLASSES.index(other) + 1))
            wait.until(
                lambda d: (
                    d.execute_script("return pending") == 0
                    and d.find_element(By.ID, "message").text.startswith(
                        "the batch is done: nothing labeled"
                    )
                )
            )
            message = browser.find_element(By.ID, "message").text
            assert "Press n" in message and "\u2190" in message, message
            assert len(p.store.history()) == rows  # no new label row
            assert p.store.current_labels() == before

            # back to the last image with the arrow key: a label changed on purpose
            body.send_keys(Keys.ARROW_LEFT, Keys.ARROW_RIGHT)
            wait.until(
                lambda d: (
                    d.find_element(By.ID, "path").text.startswith(last["path"])
                    and d.execute_script("return pending") == 0
                )
            )
            body.send_keys(str(CLASSES.index(other) + 1))
            wait.until(
                lambda d: d.find_element(By.ID, "message").text.startswith(
                    f"saved: {last['path']} \u2192 {other}"
                )
            )
            assert len(p.store.history()) == rows + 1
            assert p.classes[p.store.current_labels()[last["image_id"]]] == other
        finally:
            p.close()
    finally:
        stop_server(proc)


def test_the_same_label_again_in_the_batch_view_writes_nothing_and_no_undo(project, browser):
    """Back on an image one labeled, its class key again wrote a second row (the API now
    writes none and says so): the page says 'already so, nothing written' and keeps no undo
    entry for it, so z still undoes the label that was written, once."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from fishermask.label.project import Project

    proc, wait = _open_page(project, browser)
    try:
        path = browser.find_element(By.ID, "path").text
        key = str(CLASSES.index(path.split("/")[0]) + 1)
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(key)
        wait.until(lambda d: d.find_element(By.ID, "message").text.startswith(f"saved: {path}"))
        body.send_keys(Keys.ARROW_LEFT)
        wait.until(lambda d: d.find_element(By.ID, "path").text.startswith(path))
        body.send_keys(key)
        wait.until(
            lambda d: d.find_element(By.ID, "message").text.startswith(
                f"already so, nothing written: {path} \u2192 {path.split('/')[0]}"
            )
        )
        assert browser.execute_script("return undoStack.length") == 1
        p = Project(project.dir)
        try:
            assert len(p.store.history()) == 1
        finally:
            p.close()
    finally:
        stop_server(proc)
