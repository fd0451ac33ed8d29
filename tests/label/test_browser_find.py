"""Finding a class by name on the labeling page of a project of many classes (past the ten
digit keys come letters nobody remembers, past the 32nd no key), in headless Chromium (as
tests/label/test_browser.py)."""

from __future__ import annotations

import pytest

from tests.label.conftest import TINY, api_client, browser_only
from tests.label.test_browser import (
    _open_page,
    _wait_for_polls,
)
from tests.label.test_kill import stop_server

#: 40 classes: the folder's three colours, four with "gold" in them, and fillers
MANY = ("red", "green", "blue", "gold", "goldfish", "golden retriever", "marigold") + tuple(
    f"filler {i:02d}" for i in range(33)
)


@pytest.fixture
def many(tmp_path, folder):
    """A project of the 40 classes ``MANY`` over the three-colour folder, a first batch queued."""
    from fishermask.label.project import Project

    p = Project.init(tmp_path / "many", folder, ",".join(MANY), **TINY)
    p.run_round(train_model=False)
    yield p
    p.close()


def test_the_finder_is_on_the_page_only_past_ten_classes(project, many):
    """Three classes have their keys and no box; forty get a box in both views and its line
    in the keys and tips."""
    project.close()
    with api_client(project.dir) as c:
        page = c.get("/", headers={"Authorization": "Bearer test-token"}).text
    assert "find-class" not in page and "find-relabel" not in page
    assert "find a class: type part of its name" not in page
    many.close()
    with api_client(many.dir) as c:
        page = c.get("/", headers={"Authorization": "Bearer test-token"}).text
    assert 'id="find-class"' in page and 'id="find-relabel"' in page
    assert "<kbd>/</kbd></th><td>find a class: type part of its name" in page


@browser_only
def test_a_class_found_by_name_labels_the_image_and_fixes_a_label(many, browser):
    """ "/" puts the cursor in the box; typing leaves the classes whose name holds it, the best
    match highlighted; the arrows move the highlight; Enter labels with it and leaves the box
    empty for the next image; a name matching nothing says so and saves nothing; Esc gives the
    keys back. In the Labeled view the same box fixes the selected label."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from fishermask.label.project import Project

    proc, wait = _open_page(many, browser)
    try:
        body = browser.find_element(By.TAG_NAME, "body")
        buttons = browser.find_elements(By.CSS_SELECTOR, "#classes button.class")
        assert [b.get_attribute("data-label") for b in buttons] == list(MANY)
        assert [b.get_attribute("data-key") for b in buttons[32:]] == [""] * 8  # no keys

        def shown() -> list[str]:
            return browser.execute_script(
                "return [...document.querySelectorAll('#classes button.class')]"
                ".filter((b) => !b.hidden).map((b) => b.dataset.label)"
            )

        def highlighted() -> list[str]:
            return browser.execute_script(
                "return [...document.querySelectorAll('button.found')].map((b) => b.dataset.label)"
            )

        def active() -> str:
            return browser.execute_script("return document.activeElement.id")

        def path_shown() -> str:
            return browser.find_element(By.ID, "path").text

        body.send_keys("/")
        assert active() == "find-class"
        box = browser.find_element(By.ID, "find-class")
        assert box.get_attribute("value") == ""  # the "/" itself is not typed into it
        box.send_keys("GOLD")  # either case
        assert shown() == ["gold", "goldfish", "golden retriever", "marigold"]
        assert highlighted() == ["gold"]  # the name itself first
        box.send_keys(Keys.ARROW_DOWN)
        assert highlighted() == ["goldfish"]
        first = path_shown()
        box.send_keys(Keys.ENTER)
        wait.until(lambda d: path_shown() != first)  # labeled, on to the next image
        assert box.get_attribute("value") == "" and len(shown()) == len(MANY)
        assert active() == "find-class"  # the box stays for the next image
        second = path_shown()
        box.send_keys("retr", Keys.ENTER)  # a word of the name
        wait.until(lambda d: path_shown() != second)
        third = path_shown()
        box.send_keys("zzz", Keys.ENTER)
        wait.until(lambda d: "no class has" in d.find_element(By.ID, "message").text)
        assert path_shown() == third and shown() == []
        box.send_keys(Keys.ESCAPE)
        assert active() != "find-class" and len(shown()) == len(MANY)
        body.send_keys("s")  # the keys are back: skip
        wait.until(lambda d: path_shown() != third)

        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid button.tile")) == 2)
        selected = browser.find_element(By.ID, "browse-selected").text.split(" ")[0]
        body.send_keys("/")
        assert active() == "find-relabel"
        browser.find_element(By.ID, "find-relabel").send_keys("marig", Keys.ENTER)
        wait.until(lambda d: "\u2192 marigold" in d.find_element(By.ID, "message").text)
    finally:
        stop_server(proc)
    q = Project(many.dir)
    try:
        paths = {r.id: r.path for r in q.store.images()}
        labels = {paths[i]: MANY[c] for i, c in q.store.current_labels().items()}
        expect = {first: "goldfish", second: "golden retriever"}
        expect[selected] = "marigold"  # the fix of the label selected in the Labeled view
        assert labels == expect
    finally:
        q.close()


@browser_only
def test_a_long_list_of_labels_per_class_stays_where_it_was_scrolled(many, browser):
    """Forty classes' "labels per class" made the side panel as long as forty rows (the
    accuracy and the help below them out of sight); the list scrolls inside the panel now, and
    the page's status poll (every 1.5 s, which redraws it) leaves it where it was scrolled."""
    proc, wait = _open_page(many, browser)
    try:
        # the first image may come before the first status poll has drawn the panel (under
        # load it did: no rows yet)
        wait.until(
            lambda d: (
                d.execute_script("return document.getElementById('chart').children.length")
                == len(MANY)
            )
        )
        size = browser.execute_script(
            "const c = document.getElementById('chart');"
            "return [c.children.length, c.scrollHeight, c.clientHeight];"
        )
        assert size[0] == len(MANY) and size[1] > size[2], size
        browser.execute_script("const c = document.getElementById('chart'); c.scrollTop = 200;")
        _wait_for_polls(browser, 2)
        assert browser.execute_script("return document.getElementById('chart').scrollTop") == 200
    finally:
        stop_server(proc)


@browser_only
def test_enter_in_a_finder_left_with_a_name_labels_with_what_its_box_shows(many, browser):
    """The two views' boxes shared one list of matches: a name left typed in the Labeled
    view's box, another typed in the batch view's, then Enter back in the Labeled view's box
    (still showing its own name and matches) fixed the label with the batch box's match."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from fishermask.label.project import Project

    paths = sorted(r.path for r in many.store.images())[:2]
    many.add_label_rows([(p, "blue") for p in paths], source="import", what="test")
    proc, wait = _open_page(many, browser)
    try:
        body = browser.find_element(By.TAG_NAME, "body")
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid button.tile")) == 2)
        selected = browser.find_element(By.ID, "browse-selected").text.split(" ")[0]
        body.send_keys("/")
        browser.find_element(By.ID, "find-relabel").send_keys("marig")  # left typed
        browser.find_element(By.ID, "tab-batch").click()
        body.send_keys("/")
        browser.find_element(By.ID, "find-class").send_keys("goldf")  # left typed too
        browser.find_element(By.ID, "tab-labeled").click()
        body.send_keys("/")
        box = browser.find_element(By.ID, "find-relabel")
        assert box.get_attribute("value") == "marig"
        box.send_keys(Keys.ENTER)
        wait.until(lambda d: "\u2192" in d.find_element(By.ID, "message").text)
    finally:
        stop_server(proc)
    q = Project(many.dir)
    try:
        ids = {r.path: r.id for r in q.store.images()}
        assert MANY[q.store.current_labels()[ids[selected]]] == "marigold"
    finally:
        q.close()
