"""The labeling page at the window sizes people use (a 700-px laptop, a phone), and the words
its views say, in headless Chromium (as tests/label/test_browser.py)."""

from __future__ import annotations

import re

import pytest

from tests.label.conftest import TINY, browser_only
from tests.label.test_browser import _open_page, _wait_for_polls
from tests.label.test_kill import stop_server

pytestmark = browser_only

#: ten classes, as CIFAR-10: enough keys to wrap on a narrow page
TEN = ("red", "green", "blue", "cyan", "magenta", "yellow", "black", "white", "orange", "purple")


@pytest.fixture
def window(browser):
    """The session's headless Chromium (a fresh tab, as ``browser``) whose page (the viewport)
    is ``window(width, height)``'s size."""
    made = []

    def make(width: int, height: int):
        assert not made, "one window per test: the tab is the session's browser"
        made.append((width, height))
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500},
        )
        return browser

    return make


@pytest.fixture
def ten(tmp_path, folder):
    """A project of ten classes over the three-colour folder; its images labeled with their
    folder's class, three per class, as the owner (through the page's own save: "human")."""
    from fishermask.label.project import Project

    p = Project.init(tmp_path / "proj10", folder, ",".join(TEN), **TINY)
    p.run_round(train_model=False)
    rows = [(f"{c}/{i:03d}.png", c) for c in TEN[:3] for i in range(3)]
    p.add_label_rows(rows, source="human", what="test")
    yield p
    p.close()


def rect(d, css: str) -> dict:
    return d.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height};",
        css,
    )


def tiles(d) -> int:
    return len(d.find_elements("css selector", "#grid button.tile"))


@pytest.mark.parametrize("size", [(1024, 700), (1280, 700)])
def test_the_labeled_views_keys_take_little_of_a_short_window(ten, window, size):
    """The sticky footer of the Labeled view (the selected label, ten class keys, two actions,
    the message line) took about 40 % of a 700-px window, leaving the grid a strip. It is now
    compact, and every class key is still on screen."""
    from selenium.webdriver.common.by import By

    browser = window(*size)
    proc, wait = _open_page(ten, browser)
    try:
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: tiles(d) == 9)
        browser.find_element(By.TAG_NAME, "body").send_keys("5")  # a fix: the message line
        wait.until(lambda d: d.find_element(By.ID, "message").text.startswith("saved: "))
        inner = browser.execute_script("return innerHeight")
        footer = rect(browser, "#footer")
        assert footer["bottom"] <= inner + 1
        assert footer["height"] <= 0.2 * inner, footer
        keys = browser.find_elements(By.CSS_SELECTOR, "button.relabel")
        assert [k.get_attribute("data-label") for k in keys] == list(TEN)
        for k in keys:
            assert k.is_displayed()
            r = k.rect
            assert 0 <= r["y"] and r["y"] + r["height"] <= inner + 1, k.text
    finally:
        stop_server(proc)


def test_the_image_does_not_move_when_the_mode_line_gets_shorter(ten, window):
    """The mode line above the image went from two lines to one (a new batch, another round's
    words), and the image jumped up while keys were being typed at it. Two lines are kept for
    it, whatever it says; the whole line is in its title and shows on a click."""
    from selenium.webdriver.common.by import By

    browser = window(1280, 700)
    proc, _ = _open_page(ten, browser)
    try:
        mode = browser.find_element(By.ID, "mode")
        full = mode.get_attribute("textContent")
        tops = []
        for words in ("short", "long " * 80, "two lines " * 14, ""):
            browser.execute_script("arguments[0].textContent = arguments[1]", mode, words)
            tops.append(rect(browser, "#frame")["top"])
        assert len(set(tops)) == 1, tops
        assert mode.get_attribute("title") == full != ""
        browser.execute_script("arguments[0].textContent = arguments[1]", mode, "long " * 80)
        two = mode.rect["height"]
        mode.click()  # the whole line
        assert mode.rect["height"] > two
    finally:
        stop_server(proc)


def test_on_a_phone_the_side_panel_is_below_the_page_not_beside_it(ten, window):
    """At 390 px the side panel (240 px at least) took most of the width, and the mode line
    and the image were squeezed into a column of a few words."""
    from selenium.webdriver.common.by import By

    browser = window(390, 844)
    proc, wait = _open_page(ten, browser)
    try:
        views, side, frame = (
            rect(browser, "#views"),
            rect(browser, "#side"),
            rect(browser, "#frame"),
        )
        assert side["top"] >= views["bottom"] and frame["right"] - frame["left"] >= 300
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: tiles(d) == 9)
        assert rect(browser, "#footer")["height"] <= 0.25 * 844
    finally:
        stop_server(proc)


def test_each_view_keeps_its_own_messages_and_says_by_you(ten, window):
    """The message line was the page's, not the view's: "new batch ready" showed in the
    Labeled view, and a fix's "saved" lingered over the batch. Each view now shows its own, a
    message for the other view marks that view's tab, and the Labeled view's tiles say "by
    you" for the viewer's labels (they said "by owner" under a line that said "by you")."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = window(1280, 900)
    proc, wait = _open_page(ten, browser)
    try:

        def message(d) -> str:
            return d.find_element(By.ID, "message").text

        body = browser.find_element(By.TAG_NAME, "body")
        path = browser.find_element(By.ID, "path").text
        body.send_keys("u")  # unsure: a message in the batch view
        batch_said = f"saved: {path} \u2192 unsure"
        wait.until(lambda d: message(d) == batch_said)
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: tiles(d) == 9)
        assert message(browser) == ""
        metas = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#grid .meta")]
        assert metas == ["by you"] * 9
        assert ", by you, " in browser.find_element(By.ID, "browse-selected").text
        first = browser.find_element(By.ID, "browse-selected").text.split(" \u2014 ")[0]
        body.send_keys("4")  # cyan's key: a fix, said in this view
        fixed = re.compile(rf"saved: {re.escape(first)} \u2192 cyan \(was \w+\)")
        wait.until(lambda d: fixed.fullmatch(message(d)))
        assert browser.find_element(By.CSS_SELECTOR, "#grid .meta").text.startswith("fixed (was ")
        browser.find_element(By.ID, "tab-batch").click()
        assert message(browser) == batch_said  # the batch's own, not the fix's
        browser.find_element(By.ID, "tab-labeled").click()
        assert fixed.fullmatch(message(browser))

        # a new batch is the batch view's news: said there, and only a mark on its tab here
        browser.find_element(By.ID, "tab-batch").click()
        body.send_keys("n")
        wait.until(lambda d: message(d).startswith("retraining"))
        browser.find_element(By.ID, "tab-labeled").click()
        assert fixed.fullmatch(message(browser))
        WebDriverWait(browser, 180).until(
            lambda d: "news" in d.find_element(By.ID, "tab-batch").get_attribute("class")
        )
        _wait_for_polls(browser, 1)
        assert fixed.fullmatch(message(browser))
        browser.find_element(By.ID, "tab-batch").click()
        assert message(browser) == "new batch ready"
        assert "news" not in browser.find_element(By.ID, "tab-batch").get_attribute("class")
    finally:
        stop_server(proc)


def test_the_help_closed_once_stays_closed(ten, window):
    """The side panel's long help made it taller than a 700-px window for every minute of a
    session; closed once, it stays closed after a reload."""
    from selenium.webdriver.common.by import By

    browser = window(1280, 700)
    proc, wait = _open_page(ten, browser)
    try:
        help_text = browser.find_element(By.CSS_SELECTOR, "#help .help")
        assert help_text.is_displayed() and help_text.text.startswith("Labeling an image")
        tall = rect(browser, "#side")["height"]
        browser.find_element(By.CSS_SELECTOR, "#help summary").click()
        assert not help_text.is_displayed()
        assert rect(browser, "#side")["height"] < tall - 100
        browser.refresh()
        wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("src"))
        assert not browser.find_element(By.CSS_SELECTOR, "#help .help").is_displayed()
    finally:
        stop_server(proc)


def test_the_keys_and_tips_are_a_short_grouped_list_in_the_pages_own_size(ten, window):
    """The side panel's "keys and tips" was one paragraph of 12-px grey text (a wall of
    words: "Keys: class key labels and moves on; Enter confirms the highlighted guess ...").
    It is grouped under headings, each key in a row of a table with what it does in plain
    words, in the page's own text size at least."""
    from selenium.webdriver.common.by import By

    browser = window(1280, 900)
    proc, _ = _open_page(ten, browser)
    try:
        body = float(
            browser.execute_script("return parseFloat(getComputedStyle(document.body).fontSize)")
        )
        groups = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#help .help h3")]
        assert groups[:2] == ["Labeling an image", "Fixing a label (the Labeled tab)"], groups
        rows = browser.find_elements(By.CSS_SELECTOR, "#help .help table:first-of-type tr")
        keys = {
            r.find_element(By.TAG_NAME, "th").text: r.find_element(By.TAG_NAME, "td").text
            for r in rows
        }
        assert keys["Enter"] == "take the model's first guess (the green button)", keys
        assert keys["s"] == "skip: set the image aside" and keys["z"].startswith("undo")
        assert keys["n"].startswith("next batch: ")
        texts = browser.find_elements(By.CSS_SELECTOR, "#help .help :is(h3, th, td, li)")
        assert len(texts) > 10
        for t in texts:
            size = float(t.value_of_css_property("font-size").removesuffix("px"))
            assert t.is_displayed() and size >= body, (t.text, size, body)
    finally:
        stop_server(proc)


@pytest.fixture
def many(tmp_path, folder):
    """A project of 24 classes over the three-colour folder (the class keys take most of a
    narrow page, which then scrolls)."""
    from fishermask.label.project import Project

    names = TEN + tuple(f"kind{i:02d}" for i in range(14))
    p = Project.init(tmp_path / "proj24", folder, ",".join(names), **TINY)
    p.run_round(train_model=False)
    yield p
    p.close()


def _overlap(a: dict, b: dict) -> bool:
    return a["top"] < b["bottom"] and b["top"] < a["bottom"]


def test_on_a_narrow_window_the_message_line_never_covers_the_keys(many, window):
    """At 420 x 800 the batch view's message line (sticky at the window's bottom, as the
    Labeled view's bar is) lay over the row of actions (confirm, skip, unsure, ...) or the
    class keys whenever the page was longer than the window. In the batch view it now stays
    below the actions, at any scroll position, one line or several."""
    from selenium.webdriver.common.by import By

    browser = window(420, 800)
    proc, wait = _open_page(many, browser)
    try:
        browser.find_element(By.TAG_NAME, "body").send_keys("u")
        wait.until(lambda d: d.find_element(By.ID, "message").text.startswith("saved: "))
        bottom = browser.execute_script(
            "return document.documentElement.scrollHeight - innerHeight"
        )
        assert bottom > 0, "the page fits the window: nothing tested"
        for words in (None, "a long message " * 30):
            if words:
                browser.execute_script(
                    "document.getElementById('message').textContent = arguments[0]", words
                )
                bottom = browser.execute_script(
                    "return document.documentElement.scrollHeight - innerHeight"
                )
            for y in [*range(0, bottom, 40), bottom]:
                browser.execute_script("window.scrollTo(0, arguments[0])", y)
                message = rect(browser, "#message")
                for other in ("#actions", "#classes"):
                    assert not _overlap(message, rect(browser, other)), (y, other, words)
        # the Labeled view's bar (its keys and its messages) still stays at the bottom
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: d.find_element(By.ID, "footer").value_of_css_property("position"))
        assert browser.find_element(By.ID, "footer").value_of_css_property("position") == "sticky"
    finally:
        stop_server(proc)


def test_on_a_phone_ten_class_keys_take_two_rows(ten, window):
    """At 390 px ten class keys took three rows and the actions two, most of the screen
    below the image; packed and a little smaller they take two rows, each key whole, and
    the page is no wider than the window."""
    from selenium.webdriver.common.by import By

    browser = window(390, 844)
    proc, _ = _open_page(ten, browser)
    try:
        keys = browser.find_elements(By.CSS_SELECTOR, "#classes button.class")
        assert [k.get_attribute("data-label") for k in keys] == list(TEN)
        assert len({round(k.rect["y"]) for k in keys}) == 2
        for k in keys:
            assert k.is_displayed() and k.rect["x"] + k.rect["width"] <= 390, k.text
        actions = browser.find_elements(By.CSS_SELECTOR, "#actions button")
        assert len({round(b.rect["y"]) for b in actions}) <= 2
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    finally:
        stop_server(proc)


@pytest.fixture(params=[10, 25], ids=["10 classes", "25 classes"])
def classes_of(request, tmp_path, folder):
    """A project of 10 classes (as CIFAR-10) or 25 (the class keys past the screen's height
    on a phone) over the three-colour folder."""
    from fishermask.label.project import Project

    names = TEN if request.param == 10 else TEN + tuple(f"kind{i:02d}" for i in range(15))
    p = Project.init(tmp_path / f"proj{request.param}", folder, ",".join(names), **TINY)
    p.run_round(train_model=False)
    yield p, names
    p.close()


@pytest.mark.parametrize("size", [(390, 844), (420, 800)])
def test_on_a_phone_the_class_keys_and_actions_are_in_reach_below_the_image(
    classes_of, window, size
):
    """On a phone with 25 classes the class keys took seven rows below the image, and the
    actions (confirm, skip, unsure, undo, next batch) ran off the bottom of the screen: to
    skip an image the labeler scrolled the image away. The keys are finger-sized, inside the
    screen's width and below the image, and never more than three rows and a half (the rest
    scrolled to within them), so the image, the keys and the actions are all on the screen at
    once; the last class is scrolled to and tapped."""
    from selenium.webdriver.common.by import By

    project, names = classes_of
    width, height = size
    browser = window(width, height)
    proc, wait = _open_page(project, browser)
    try:
        wait.until(lambda d: d.find_element(By.ID, "counts").text)  # the side panel filled
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        frame, box = rect(browser, "#frame"), rect(browser, "#classes")
        assert box["top"] >= frame["bottom"], (box, frame)  # not over the image
        keys = browser.find_elements(By.CSS_SELECTOR, "#classes button.class")
        assert [k.get_attribute("data-label") for k in keys] == list(names)
        for k in keys:
            r = k.rect
            assert r["width"] >= 40 and r["height"] >= 40, (k.text, r)
            assert 0 <= r["x"] and r["x"] + r["width"] <= width, (k.text, r)
        rows = sorted({round(k.rect["y"]) for k in keys})
        assert box["height"] <= 3.5 * (rows[1] - rows[0]) + 1, (box, rows)
        # the image, the keys and every action on the screen at once, the page at its top
        for b in browser.find_elements(By.CSS_SELECTOR, "#actions button"):
            r = b.rect
            assert r["width"] >= 40 and r["height"] >= 40, (b.text, r)
            assert r["y"] + r["height"] <= height and r["x"] + r["width"] <= width, (b.text, r)
            assert r["y"] >= box["bottom"], (b.text, r, box)
        assert browser.execute_script("return scrollY") == 0 and frame["top"] >= 0
        last = keys[-1]
        browser.execute_script("arguments[0].scrollIntoView({block: 'nearest'})", last)
        box, r = rect(browser, "#classes"), last.rect
        assert box["top"] <= r["y"] and r["y"] + r["height"] <= box["bottom"] + 1, (box, r)
        path = browser.find_element(By.ID, "path").text
        last.click()
        wait.until(
            lambda d: d.find_element(By.ID, "message").text == f"saved: {path} \u2192 {names[-1]}"
        )
    finally:
        stop_server(proc)
