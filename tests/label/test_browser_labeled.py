"""The Labeled view in headless Chromium (as tests/label/test_browser.py): its pager stays in
sight, and its tiles mark the labels given after the latest model was trained."""

from __future__ import annotations

import pytest

from tests.label.conftest import CLASSES, TINY, browser_only, make_folder
from tests.label.test_browser import _open_page
from tests.label.test_browser_layout import rect, tiles
from tests.label.test_kill import stop_server

pytestmark = browser_only


@pytest.fixture
def two_pages(tmp_path):
    """36 images, all labeled (two pages of the grid): 4 per class before the model of round
    1 was trained, the other 24 after it. Yields the project and the paths labeled after."""
    from fishermask.label.project import Project

    folder = make_folder(tmp_path / "images", per_class=12)
    p = Project.init(tmp_path / "proj", folder, ",".join(CLASSES), **TINY)
    before = [(f"{c}/{i:03d}.png", c) for c in CLASSES for i in range(4)]
    after = [(f"{c}/{i:03d}.png", c) for c in CLASSES for i in range(4, 12)]
    p.add_label_rows(before, source="human", what="test")
    p.run_round(train_model=True)
    p.add_label_rows(after, source="human", what="test")
    yield p, {path for path, _ in after}
    p.close()


def _open_labeled(project, browser, width: int, height: int):
    from selenium.webdriver.common.by import By

    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    proc, wait = _open_page(project, browser)
    try:
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: tiles(d) == 24)
    except BaseException:
        stop_server(proc)
        raise
    return proc, wait


@pytest.mark.parametrize("size", [(1280, 700), (420, 800)])
def test_the_pager_is_in_sight_and_clickable_at_every_scroll_position(two_pages, browser, size):
    """The pager sat below the grid, just above the sticky bar of class keys: at most scroll
    positions the bar covered it (not visible, a click landed on the keys), and only at the
    very bottom of the page could it be used. It is now in that bar, in sight wherever the
    Labeled view reaches the window's bottom (on a phone the side panel follows the view, and
    the bar, sticky within the view, leaves with it once the panel is scrolled to)."""
    from selenium.webdriver.common.by import By

    project, _ = two_pages
    proc, wait = _open_labeled(project, browser, *size)
    try:
        # the page's length is read once the first status poll has filled the side panel (the
        # counts, the chart, the model's line: below the view on a phone), not at whatever
        # moment the grid came
        wait.until(lambda d: d.find_element(By.ID, "counts").text)
        inner = browser.execute_script("return innerHeight")
        bottom = browser.execute_script(
            "return document.documentElement.scrollHeight - innerHeight"
        )
        assert bottom > 60, "the page hardly scrolls: nothing tested"
        checked = []
        for y in [*range(0, bottom, 20), bottom]:
            browser.execute_script("window.scrollTo(0, arguments[0])", y)
            if rect(browser, "#views")["bottom"] < inner:
                continue  # the side panel's turn (a phone): the view's bar has left with it
            checked.append(y)
            for button in ("page-prev", "page-next"):
                r = rect(browser, f"#{button}")
                assert 0 <= r["top"] and r["bottom"] <= inner, (y, button, r)
                hit = browser.execute_script(
                    "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
                    "const e = document.elementFromPoint((r.left + r.right) / 2,"
                    " (r.top + r.bottom) / 2);"
                    "return e && e.closest('button') ? e.closest('button').id : null;",
                    button,
                )
                assert hit == button, (y, button, hit)
        assert len(checked) > 3, "the view never reaches the window's bottom: nothing tested"
        browser.execute_script("window.scrollTo(0, arguments[0])", checked[len(checked) // 2])
        browser.find_element(By.ID, "page-next").click()
        wait.until(lambda d: d.find_element(By.ID, "page-info").text.startswith("page 2 of 2"))
        assert tiles(browser) == 12
    finally:
        stop_server(proc)


def test_tiles_mark_the_labels_newer_than_the_model(two_pages, browser):
    """Only the selected image's line said a label was newer than the model: in the grid a
    probability from a model that never saw the label looked like any other. Each such tile
    now says "newer than model" (and its title which round's model)."""
    from selenium.webdriver.common.by import By

    project, after = two_pages
    proc, wait = _open_labeled(project, browser, 1280, 900)
    try:
        seen = {}
        for page in (1, 2):
            if page == 2:
                browser.find_element(By.ID, "page-next").click()
                wait.until(lambda d: tiles(d) == 12)
            for tile in browser.find_elements(By.CSS_SELECTOR, "#grid button.tile"):
                path = tile.find_element(By.TAG_NAME, "img").get_attribute("alt")
                marks = tile.find_elements(By.CSS_SELECTOR, ".newer")
                seen[path] = [m.text for m in marks]
                if marks:
                    assert marks[0].is_displayed()
                    assert "labeled after the model of round 1 was trained" in tile.get_attribute(
                        "title"
                    )
        assert len(seen) == 36
        assert {p for p, m in seen.items() if m} == after
        assert all(m == ["newer than model"] for p, m in seen.items() if p in after)
    finally:
        stop_server(proc)


def test_the_labeled_view_says_it_is_reading_while_its_first_page_comes(two_pages, browser):
    """The first page of the Labeled view after a round waits for the new model to score
    every label (4.5 s for 112 labels on the 2-core machine): meanwhile the view was blank,
    without a word, as if nothing were labeled. It says it is reading them."""
    from selenium.webdriver.common.by import By

    project, _ = two_pages
    proc, wait = _open_page(project, browser)
    try:
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 1500, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        browser.find_element(By.ID, "tab-labeled").click()
        note = browser.find_element(By.ID, "browse-note").text
        assert tiles(browser) == 0 and note.startswith("reading the labeled images"), note
        wait.until(lambda d: tiles(d) == 24)
        assert browser.find_element(By.ID, "browse-note").text.startswith("likely mistakes")
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1
        })  # fmt: skip
        stop_server(proc)


def test_a_labels_time_is_shown_in_utc_and_says_so(project, browser):
    """The selected image's line in the Labeled view gave its label's time in the browser's
    local time without a zone (11/30/2026, 6:58:30 PM), while a check's time on the same page
    is UTC and says so. It is worded as the check's: UTC, said, the date when not today."""
    from selenium.webdriver.common.by import By

    from fishermask.text import utc_clock

    project.add_label_rows([("red/000.png", "red")], source="human", what="test")
    then = 1_796_083_110.0  # 2026-11-30 23:58:30 UTC: 2026-12-01 05:28 in Kolkata
    with project.store.transaction() as c:
        c.execute("UPDATE labels SET created = ?", (then,))
    # a browser in another time zone than UTC (the tab's own: a new tab has none)
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Kolkata"})
    proc, wait = _open_page(project, browser)
    try:
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: d.find_element(By.ID, "browse-selected").text)
        line = browser.find_element(By.ID, "browse-selected").text
        assert line.startswith("red/000.png"), line
        assert f", {utc_clock(then)}" in line, line
        assert utc_clock(then) == "2026-11-30 23:58 UTC"  # another day: dated
    finally:
        stop_server(proc)
