"""The label check from the page, end to end in a headless browser: the Labeled view's button
starts it, the page shows its progress, then its result, flags and ranking."""

from __future__ import annotations

import re

from tests.label.conftest import browser_only
from tests.label.test_browser import _open_page
from tests.label.test_check import _label_all
from tests.label.test_kill import stop_server

pytestmark = browser_only


def test_a_check_started_from_the_labeled_view_marks_and_ranks_the_labels(project, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _label_all(project)  # 24 labels, 4 of them wrong; no model yet
    proc, wait = _open_page(project, browser)
    try:

        def tiles(d) -> list[list]:  # [path, flagged, marker text] per tile, read at once
            return d.execute_script(
                "return [...document.querySelectorAll('#grid button.tile')].map((t) => "
                "[t.title.split(' ')[0], t.classList.contains('flagged'), "
                "(t.querySelector('.flag') || {}).textContent || null])"
            )

        text = lambda d, id_: d.find_element(By.ID, id_).text  # noqa: E731
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: len(tiles(d)) == 24)
        assert text(browser, "browse-note").startswith("no trained model yet, so newest first")
        assert not any(flagged for _, flagged, _ in tiles(browser))
        browser.find_element(By.ID, "check-start").click()
        # its progress while it runs (the button off meanwhile), then how it ended
        WebDriverWait(browser, 120).until(
            lambda d: (
                text(d, "message").startswith("label check 1 done: ")
                or "label check 1 running" in text(d, "check-line")
            )
        )
        WebDriverWait(browser, 120).until(
            lambda d: text(d, "message").startswith("label check 1 done: ")
        )
        m = re.match(
            r"label check 1 done: (\d+) of 24 labels flagged as possibly wrong",
            text(browser, "message"),
        )
        assert m, text(browser, "message")
        n = int(m.group(1))
        assert n > 0
        line = text(browser, "check-line")
        assert re.fullmatch(
            rf"label check of \d\d:\d\d UTC \(5 models\): {n} of 24 labels flagged as possibly "
            r"wrong \(\d+\.\d %\)",
            line,
        ), line
        weak = browser.find_element(By.ID, "check-weak")
        if weak.is_displayed():  # the models' share predicted below 80 %: said plainly
            assert weak.text.startswith("out of fold, the check's models predict only ")
        # the view read again: ranked by the check, its flags marked
        wait.until(
            lambda d: "out-of-fold probabilities from the label check" in text(d, "browse-note")
        )
        wait.until(lambda d: sum(flagged for _, flagged, _ in tiles(d)) == n)
        marked = [mark for _, flagged, mark in tiles(browser) if flagged]
        assert all(mark and mark.startswith("\u2691 ") for mark in marked)
        assert not browser.find_element(By.ID, "check-start").get_attribute("disabled")
        browser.find_element(By.ID, "browse-flagged").click()  # flagged only
        wait.until(lambda d: len(tiles(d)) == n and all(f for _, f, _ in tiles(d)))
        assert text(browser, "browse-note").startswith("only the labels the label check of ")
    finally:
        stop_server(proc)
