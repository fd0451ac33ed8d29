"""The batch view fetches the next images while one is being looked at, in headless Chromium
(as tests/label/test_browser.py)."""

from __future__ import annotations

from tests.label.conftest import browser_only
from tests.label.test_browser import (
    _open_page,
)
from tests.label.test_kill import stop_server

pytestmark = browser_only


def test_the_next_two_images_are_fetched_before_they_are_shown(project, browser):
    """Each image was fetched only when shown (a photo over a slow link: a second or more
    after every key). The next two images nobody has done are fetched while one is looked
    at, at the view's size, and shown from there: one request each."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    proc, wait = _open_page(project, browser)
    try:
        ids = browser.execute_script(
            "return fetch('/api/batch', {headers: {Authorization: 'Bearer ' + "
            "JSON.parse(document.getElementById('fm-config').textContent).token}})"
            ".then((r) => r.json()).then((b) => b.items.map((it) => it.image_id))"
        )
        assert len(ids) == 6

        def fetched(image_id: int) -> int:
            return browser.execute_script(
                "return performance.getEntriesByType('resource').filter((e) => "
                "e.name.endsWith('/api/images/' + arguments[0] + '?size=view')).length",
                image_id,
            )

        shown = int(browser.find_element(By.ID, "image").get_attribute("data-image-id"))
        assert shown == ids[0]
        WebDriverWait(browser, 30).until(lambda d: fetched(ids[1]) and fetched(ids[2]))
        assert fetched(ids[3]) == 0  # two ahead, not the whole batch
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("1")
        wait.until(
            lambda d: d.find_element(By.ID, "image").get_attribute("data-image-id") == str(ids[1])
        )
        wait.until(lambda d: fetched(ids[3]) == 1)  # the next one ahead
        assert fetched(ids[1]) == 1  # shown from what was fetched ahead
        assert browser.find_element(By.ID, "image").get_attribute("src").startswith("blob:")
    finally:
        stop_server(proc)
