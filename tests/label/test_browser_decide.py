"""The owner decides a disagreement on the page, in headless Chromium (the session's
``browser`` fixture of conftest): the Labeled view's "disagreements only" lists the images whose
annotators gave different labels, says who said what, and Shift + a class key (or "decide: keep
this label") records the owner's decision; an annotator's page has none of it. And the
owner's skip refused on someone else's label names the command that undoes it."""

from __future__ import annotations

import re

import httpx

from tests.label.conftest import browser_only, page_text

pytestmark = browser_only


def _team(project) -> dict[str, int]:
    """red/000.png: alice red, bob blue (the image blue); blue/000.png: alice blue, bob green
    (green); green/000.png: alice and bob green (no disagreement). Their ids by path."""
    s = project.store
    ids = s.image_ids_by_path()
    for path, a, b in (("red/000.png", 0, 2), ("blue/000.png", 2, 1), ("green/000.png", 1, 1)):
        s.add_label(ids[path], "label", a, annotator="alice")
        s.add_label(ids[path], "label", b, annotator="bob")
    return ids


def _tiles(d) -> list[str]:
    # read in one script: the grid is redrawn while the test waits, and a tile found by one
    # command was gone ("stale") by the next
    return d.execute_script(
        "return [...document.querySelectorAll('#grid button.tile')]"
        ".map(t => t.querySelector('img').alt)"
    )


def _owners_labeled_view(project, browser, team_server):
    """The team of :func:`_team` served, the owner's page open on its Labeled view with the
    three labeled images shown. Returns the ids by path, the owner's URL and a wait."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    ids = _team(project)
    project.close()
    owner_url = team_server(project.dir, ("alice", "bob")).url
    wait = WebDriverWait(browser, 60)
    browser.get(owner_url)
    wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("src"))
    browser.find_element(By.ID, "tab-labeled").click()
    wait.until(lambda d: len(_tiles(d)) == 3)
    return ids, owner_url, wait


def test_the_owner_walks_the_disagreements_and_decides_them_on_the_page(
    project, browser, team_server
):
    """The page had no way for the owner to decide (only `label decide` and the API): the
    owner's Labeled view now lists the open disagreements, says who gave which label, and
    decides one with Shift + a class key (another class than its label here) and one with
    "decide: keep this label" (the class it has, which a plain key cannot record)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _, owner_url, wait = _owners_labeled_view(project, browser, team_server)
    box = browser.find_element(By.ID, "browse-disagree")
    assert box.is_displayed()
    box.click()
    wait.until(lambda d: sorted(_tiles(d)) == ["blue/000.png", "red/000.png"])
    marks = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#grid .disagree")]
    assert marks == ["disagreement", "disagreement"]
    first = _tiles(browser)[0]
    who = {"red/000.png": "alice red, bob blue", "blue/000.png": "alice blue, bob green"}
    line = page_text(browser, "browse-selected")
    assert f"disagreement (open): {who[first]}; Shift + a class key decides" in line, line
    # Shift + 1 (red): the owner's decision, red, whatever the image's label
    ActionChains(browser).key_down(Keys.SHIFT).send_keys("1").key_up(Keys.SHIFT).perform()
    wait.until(lambda d: page_text(d, "message").startswith("decided:"))
    assert page_text(browser, "message") == f"decided: {first} \u2192 red ({who[first]})"
    second = _tiles(browser)[1]
    decide = browser.find_element(By.ID, "browse-decide")
    wait.until(lambda d: f"{second} \u2014" in page_text(d, "browse-selected"))
    current = {"red/000.png": "blue", "blue/000.png": "green"}[second]
    assert decide.is_displayed() and decide.text == f"decide: keep {current}"
    decide.click()
    wait.until(lambda d: page_text(d, "message").startswith(f"decided: {second}"))
    wait.until(
        lambda d: "disagreements: 0 (2 more decided by the owner)" in page_text(d, "team-counts")
    )
    token = re.search(r"token=(\S+)", owner_url).group(1)
    base = re.search(r"(http://[^/]+)/", owner_url).group(1)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=10) as c:
        items = c.get("/api/labeled", params={"disagreements": "all"}).json()["items"]
        got = {it["path"]: (it["label"], it["by"], it["source"]) for it in items}
        assert got == {
            first: ("red", "owner", "decision"),
            second: (current, "owner", "decision"),
        }
        # the open ones: none left, the filter empty once read again
        assert c.get("/api/labeled", params={"disagreements": "open"}).json()["total"] == 0


def test_an_annotators_page_has_no_decide_control(project, browser, team_server):
    """An annotator's page never shows the filter, the decide button or who said what, and
    Shift + a class key there is no decision."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    _team(project)
    project.close()
    srv = team_server(project.dir, ("alice", "bob"))
    owner_url, alice_url = srv.url, srv.urls["alice"]
    wait = WebDriverWait(browser, 60)
    browser.get(alice_url)
    wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("src"))
    browser.find_element(By.ID, "tab-labeled").click()
    wait.until(lambda d: len(_tiles(d)) == 3)
    assert not browser.find_elements(By.ID, "browse-disagree")
    assert not browser.find_elements(By.ID, "browse-decide")
    assert not browser.find_elements(By.CSS_SELECTOR, "#grid .disagree")
    assert "disagreement" not in page_text(browser, "browse-selected")
    ActionChains(browser).key_down(Keys.SHIFT).send_keys("1").key_up(Keys.SHIFT).perform()
    token = re.search(r"token=(\S+)", owner_url).group(1)
    base = re.search(r"(http://[^/]+)/", owner_url).group(1)
    with httpx.Client(base_url=base, timeout=10) as c:
        st = c.get("/api/status", headers={"Authorization": f"Bearer {token}"}).json()
        assert (st["disagreements"], st["decided"]) == (2, 0)


def test_the_owners_skip_on_someones_label_names_the_command_that_undoes_it(
    project, browser, team_server
):
    """The owner's page pressing s on alice's label was told to send POST /api/undo, which a
    page's user cannot: the message names `fishermask label undo PROJECT ID` (the owner
    serves the project: a terminal is at hand)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    first = project.batch()[0]
    label_id = project.store.add_label(first["image_id"], "label", 0, annotator="alice")
    project.close()
    owner_url = team_server(project.dir, ("alice", "bob")).url
    wait = WebDriverWait(browser, 60)
    browser.get(owner_url)
    wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("src"))
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("\ue012")  # ArrowLeft: back to the image alice labeled
    wait.until(lambda d: f"{first['path']} \u2014 red \u2014 by alice" in page_text(d, "path"))
    body.send_keys("s")
    wait.until(lambda d: page_text(d, "message").startswith("not saved:"))
    msg = " ".join(page_text(browser, "message").split())
    assert f"undo that label first: `fishermask label undo {project.dir} {label_id}`" in msg


def test_shift_and_a_class_key_on_an_image_without_a_disagreement_says_why_nothing(
    project, browser, team_server
):
    """On the owner's page, Shift + a digit on an image whose annotators agree did nothing,
    without a word: the message says there is nothing to decide and what the plain key does;
    nothing is written."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ids, owner_url, wait = _owners_labeled_view(project, browser, team_server)
    browser.execute_script(
        "[...document.querySelectorAll('#grid button.tile')]"
        ".find(t => t.querySelector('img').alt === 'green/000.png').click()"
    )
    wait.until(lambda d: page_text(d, "browse-selected").startswith("green/000.png \u2014"))
    ActionChains(browser).key_down(Keys.SHIFT).send_keys("1").key_up(Keys.SHIFT).perform()
    wait.until(lambda d: "nothing to decide" in page_text(d, "message"))
    assert page_text(browser, "message") == (
        "green/000.png: its annotators do not disagree, nothing to decide; the plain key 1 "
        "(without Shift) fixes its label to red"
    )
    token = re.search(r"token=(\S+)", owner_url).group(1)
    base = re.search(r"(http://[^/]+)/", owner_url).group(1)
    with httpx.Client(base_url=base, timeout=10) as c:
        r = c.get(
            f"/api/history/{ids['green/000.png']}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert len(r.json()["items"]) == 2  # alice's and bob's, nothing more


def test_the_batch_view_shows_a_disagreement_and_the_filter_its_skip(project, browser, team_server):
    """The owner's Batch view showed a disputed image as "blue — by bob", without alice's red:
    a line under the path now says who gave which label (an annotator's page has none). And
    the Labeled view's "disagreements only" lists a disagreement whose current action is a
    skip (given before such skips were refused), its tile saying "skipped", as `label status
    --list disagreements` does."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    s = project.store
    second = s.queue()[1]
    s.add_label(second["image_id"], "label", 0, annotator="alice")
    s.add_label(second["image_id"], "label", 2, annotator="bob")
    queued = {q["image_id"] for q in s.queue()}
    skipped, other = next(
        (p, i) for p, i in sorted(s.image_ids_by_path().items()) if i not in queued
    )
    s.add_label(other, "label", 0, annotator="alice")
    s.add_label(other, "label", 1, annotator="bob")
    s.add_label(other, "skip")  # the owner's, as before the 409 rule
    project.close()
    srv = team_server(project.dir, ("alice", "bob"))
    owner_url, alice_url = srv.url, srv.urls["alice"]
    wait = WebDriverWait(browser, 60)
    browser.get(owner_url)
    wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("src"))
    mark = browser.find_element(By.ID, "batch-disagree")
    assert not mark.is_displayed()  # the first image: no disagreement
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT)
    wait.until(lambda d: d.find_element(By.ID, "batch-disagree").is_displayed())
    assert page_text(browser, "batch-disagree") == (
        "disagreement (open): alice red, bob blue \u2014 the Labeled view's "
        '"disagreements only" decides it'
    )
    assert page_text(browser, "path").startswith(second["path"])
    browser.find_element(By.ID, "tab-labeled").click()
    browser.find_element(By.ID, "browse-disagree").click()
    wait.until(lambda d: skipped in _tiles(d))
    labels = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#grid button.tile')]"
        ".map(t => [t.querySelector('img').alt, t.querySelector('.lab').textContent]))"
    )
    assert labels == {skipped: "skipped", second["path"]: "blue"}, labels
    browser.get(alice_url)
    wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("src"))
    assert not browser.find_elements(By.ID, "batch-disagree")


def test_a_decided_tile_keeps_the_annotators_sides_and_a_repeat_is_already_so(
    project, browser, team_server
):
    """After a decision the page added `owner: red` to the image's sides (a decision is not a
    side, the server says so: the listing after a reload had no owner), and the same decision
    again said "decided: ..." though the server wrote nothing ("already so")."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _, _, wait = _owners_labeled_view(project, browser, team_server)
    browser.find_element(By.ID, "browse-disagree").click()
    wait.until(lambda d: sorted(_tiles(d)) == ["blue/000.png", "red/000.png"])
    first = _tiles(browser)[0]
    who = {"red/000.png": "alice red, bob blue", "blue/000.png": "alice blue, bob green"}[first]

    def shift_1() -> None:
        ActionChains(browser).key_down(Keys.SHIFT).send_keys("1").key_up(Keys.SHIFT).perform()

    shift_1()
    wait.until(lambda d: page_text(d, "message").startswith("decided:"))
    ActionChains(browser).send_keys(Keys.ARROW_LEFT).perform()  # back to the decided image
    wait.until(lambda d: f"{first} \u2014" in page_text(d, "browse-selected"))
    line = page_text(browser, "browse-selected")
    sides = re.search(r"disagreement decided by the owner: ([^;]*)", line)
    assert sides and sides[1].strip() == who, line  # not "..., you red"
    shift_1()
    wait.until(lambda d: page_text(d, "message").startswith("already so"))
    assert page_text(browser, "message") == f"already so, nothing written: {first} \u2192 red"
