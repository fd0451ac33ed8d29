"""End to end in a real headless browser (Debian's chromium + chromium-driver, via selenium)."""

from __future__ import annotations

import os
import re
import shutil

from tests.label.conftest import CLASSES, browser_only
from tests.label.test_kill import start_server, stop_server

pytestmark = browser_only


def _open_page(project, browser, timeout: float = 60):
    """Close ``project`` (the server opens its own), start ``label serve`` on it, open the URL
    it prints in ``browser`` and wait until the first image is set (or the page says why it
    cannot show it). Returns the server process (for ``stop_server``; stopped here if the page
    does not open) and a ``WebDriverWait`` of ``timeout`` seconds."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    project.close()
    proc, line, _ = start_server(project.dir)
    try:
        browser.get(re.search(r"http://\S+", line).group(0))
        wait = WebDriverWait(browser, timeout)
        wait.until(
            lambda d: (
                d.find_element(By.ID, "image").get_attribute("src")
                or d.find_element(By.ID, "message").text
            )
        )
    except BaseException:
        stop_server(proc)
        raise
    return proc, wait


def _page_token(browser) -> str:
    """The token the page holds (its settings; its address bar no longer has it)."""
    return browser.execute_script(
        "return JSON.parse(document.getElementById('fm-config').textContent).token"
    )


def _wait_for_polls(browser, n: int = 2, timeout: float = 60) -> None:
    """Wait until the page has made and handled ``n`` more status polls (``GET /api/status``,
    every 1.5 s) than it had made when called: counted in the browser's resource timing, and
    one more than ``n`` awaited, so the last of the ``n`` has been handled too (a fixed sleep
    proved nothing when a loaded machine delayed the polls)."""
    from selenium.webdriver.support.ui import WebDriverWait

    def polls(d) -> int:
        return d.execute_script(
            "return performance.getEntriesByType('resource')"
            ".filter((e) => e.name.includes('/api/status')).length"
        )

    seen = polls(browser)
    WebDriverWait(browser, timeout).until(lambda d: polls(d) >= seen + n + 1)


def test_label_a_batch_with_the_keyboard_then_ask_for_the_next(project, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    proc, wait = _open_page(project, browser)
    try:
        body = browser.find_element(By.TAG_NAME, "body")
        expected = {}
        for _ in range(6):
            path_text = browser.find_element(By.ID, "path").text
            image_id = int(browser.find_element(By.ID, "image").get_attribute("data-image-id"))
            true_class = path_text.split("/")[0]
            expected[image_id] = true_class
            body.send_keys(str(CLASSES.index(true_class) + 1))  # the class's shortcut key
            wait.until(
                lambda d, t=path_text: d.find_element(By.ID, "message").text.startswith(
                    f"saved: {t}"
                )
            )
        assert "Batch done" in browser.find_element(By.ID, "message").text
        body.send_keys("n")
        wait = WebDriverWait(browser, 180)
        wait.until(lambda d: "new batch ready" in d.find_element(By.ID, "message").text)
        assert "(method: fishermask)" in browser.find_element(By.ID, "mode").text
        counts = browser.find_element(By.ID, "counts").text
        assert counts.startswith("6 labeled")
        from fishermask.label.project import Project

        p = Project(project.dir)
        got = {i: p.classes[c] for i, c in p.store.current_labels().items()}
        assert got == expected
        assert all(r.source == "human" for r in p.store.history())
        # The worker writes the accuracy estimate after the batch is ready: 6 labels are too
        # few for a real one (it is skipped at once), but on a slow machine the page can see
        # the new batch before that write. Wait for it, so that the round's metrics read here
        # are final and the worker writes nothing over what is set below.
        WebDriverWait(browser, 120).until(
            lambda _: not p.store.rounds()[-1]["metrics"].get("estimating")
        )
        last = p.store.rounds()[-1]
        assert last["status"] == "done" and last["checkpoint"]

        # The accuracy line while an estimate runs: the round is marked as estimating by a
        # live process (this one) in the database, as the worker does, and the page must say
        # so on its next status poll, then drop the line when the estimate is written.
        def accuracy(d):
            return d.find_element(By.ID, "accuracy").text

        rid, metrics = last["id"], last["metrics"]
        wait = WebDriverWait(browser, 30)
        # no estimate runs now (the page may still show the line of a poll made before the
        # worker's write: gone at its next poll)
        wait.until(lambda d: "estimating the accuracy" not in accuracy(d))
        p.store.set_round_pid(rid, os.getpid())
        p.store.set_metrics(rid, metrics | {"estimating": True}, phase="done")
        wait.until(lambda d: f"estimating the accuracy of round {rid}" in accuracy(d))
        # with no earlier estimate, the round's own placeholder is not said twice: the line
        # read "being estimated \u00b7 estimating the accuracy of round N\u2026"
        being = {"accuracy": None, "method": "being estimated", "estimating": True}
        p.store.set_metrics(rid, metrics | being, phase="done")
        wait.until(lambda d: accuracy(d) == f"estimating the accuracy of round {rid}\u2026")
        p.store.set_metrics(rid, metrics, phase="done")
        wait.until(lambda d: "estimating the accuracy" not in accuracy(d))
        p.close()
    finally:
        stop_server(proc)


def test_space_does_not_confirm_a_guess_only_enter_does(project, browser):
    """Space scrolls the page; it used to confirm the highlighted guess, labelling the image."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    proc, wait = _open_page(project, browser)
    try:

        def message(d):
            return d.find_element(By.ID, "message").text

        before = message(browser)
        first = browser.find_element(By.ID, "path").text
        body = browser.find_element(By.TAG_NAME, "body")
        # the page runs keys one at a time in the order typed: once ArrowRight has shown the
        # next image, whatever Space queued is done; two more status polls give a save it
        # might start outside that queue the time to answer
        body.send_keys(Keys.SPACE, Keys.ARROW_RIGHT)
        wait.until(lambda d: d.find_element(By.ID, "path").text != first)
        _wait_for_polls(browser)
        assert message(browser) == before
        from fishermask.label.project import Project

        p = Project(project.dir)
        assert p.store.history() == []
        p.close()
        body.send_keys(Keys.ENTER)  # the page does take keys: Enter confirms (or says no guess)
        wait.until(lambda d: message(d) != before)
        assert message(browser).startswith(("saved: ", "no model guess to confirm"))
    finally:
        stop_server(proc)


def test_space_after_a_mouse_click_does_not_click_that_button_again(project, browser):
    """A clicked button kept the focus, and a focused button takes Space as a click: Space,
    which the page leaves to scrolling, labeled the next image with the class clicked last
    (in the Labeled view: fixed the next image's label to it), with nothing said but "saved"."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from fishermask.label.project import Project
    from tests.label.conftest import label_truth

    label_truth(project, 2)
    proc, wait = _open_page(project, browser)
    try:

        def message(d):
            return d.find_element(By.ID, "message").text

        def n_rows() -> int:
            p = Project(project.dir)
            try:
                return len(p.store.history())
            finally:
                p.close()

        def press(key) -> None:  # to the focused element, as a person types (an element's
            ActionChains(browser).send_keys(key).perform()  # send_keys focuses it first)

        first = browser.find_element(By.ID, "path").text
        browser.find_element(By.CSS_SELECTOR, "button.class").click()  # the first class
        wait.until(lambda d: message(d).startswith(f"saved: {first}"))
        second = browser.find_element(By.ID, "path").text
        assert second != first
        rows = n_rows()
        press(Keys.SPACE)
        _wait_for_polls(browser, 3)  # a save Space started has been answered by then
        assert n_rows() == rows, "Space labeled the image after the one clicked"
        assert not message(browser).startswith(f"saved: {second}")

        # the Labeled view: a fix clicked with the mouse, then Space
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid button.tile")) == 7)
        browser.find_elements(By.CSS_SELECTOR, "#grid button.tile")[0].click()
        label = browser.find_element(By.CSS_SELECTOR, "#grid .tile.selected .lab").text.split()[0]
        other = next(c for c in CLASSES if c != label)
        browser.find_element(By.CSS_SELECTOR, f'button.relabel[data-label="{other}"]').click()
        wait.until(lambda d: message(d).startswith("saved: ") and "(was " in message(d))
        fixed = message(browser)
        rows = n_rows()
        press(Keys.SPACE)
        _wait_for_polls(browser, 3)
        assert n_rows() == rows, "Space fixed the next image's label too"
        assert message(browser) == fixed
    finally:
        stop_server(proc)


def test_letter_keys_work_with_caps_lock_on(tmp_path, folder, browser):
    """With Caps Lock on (or Shift) a letter key gives an upper-case key, which matched no
    shortcut: the 11th class's key q, and s, u, z did nothing at all."""
    from selenium.webdriver.common.by import By

    from fishermask.label.project import Project
    from tests.label.conftest import TINY

    names = [f"c{i}" for i in range(11)]  # c10's key is q
    p = Project.init(tmp_path / "eleven", folder, ",".join(names), **TINY)
    p.run_round(train_model=False)
    proc, wait = _open_page(p, browser)
    try:

        def message(d):
            return d.find_element(By.ID, "message").text

        body = browser.find_element(By.TAG_NAME, "body")
        first = browser.find_element(By.ID, "path").text
        body.send_keys("Q")
        wait.until(lambda d: message(d) == f"saved: {first} \u2192 c10")
        second = browser.find_element(By.ID, "path").text
        body.send_keys("S")
        wait.until(lambda d: message(d) == f"saved: {second} \u2192 skip")
        body.send_keys("Z")
        wait.until(lambda d: message(d) == f"undone: {second} \u2192 skip")
        q = Project(p.dir)
        assert [(r.kind, r.class_id) for r in q.store.history()] == [
            ("label", 10),
            ("skip", None),
            ("undo", None),
        ]
        q.close()
    finally:
        stop_server(proc)


def test_keys_typed_faster_than_the_server_answers_are_all_saved_in_order(project, browser):
    """A labeler who knows the classes types ahead: every key must label the image it was
    meant for. The page used to drop the keys pressed while a save was in flight, so the next
    key labelled the wrong image."""
    import json
    import urllib.request

    from selenium.webdriver.common.by import By

    proc, wait = _open_page(project, browser)
    try:
        base = re.search(r"http://[^/]+", browser.current_url).group(0)
        token = _page_token(browser)
        req = urllib.request.Request(
            base + "/api/batch", headers={"Authorization": "Bearer " + token}
        )
        with urllib.request.urlopen(req) as r:
            batch = json.load(r)["items"]
        expected = {it["image_id"]: it["path"].split("/")[0] for it in batch}
        keys = "".join(str(CLASSES.index(it["path"].split("/")[0]) + 1) for it in batch)
        browser.find_element(By.TAG_NAME, "body").send_keys(keys)  # all at once
        wait.until(lambda d: "Batch done" in d.find_element(By.ID, "message").text)
        from fishermask.label.project import Project

        p = Project(project.dir)
        got = {i: p.classes[c] for i, c in p.store.current_labels().items()}
        p.close()
        assert got == expected
    finally:
        stop_server(proc)


def test_undo_after_a_new_batch_does_not_take_back_a_label_of_the_old_one(project, browser):
    """z after the next batch arrived used to undo the last label of the previous batch: an
    image no longer on the page, so its label vanished where it could not be seen or given
    again, with only 'undone' said (and the page jumped to another image of the new batch)."""
    from selenium.webdriver.common.by import By

    from fishermask.label.project import Project

    proc, wait = _open_page(project, browser)
    try:
        body = browser.find_element(By.TAG_NAME, "body")
        path = browser.find_element(By.ID, "path").text
        body.send_keys(str(CLASSES.index(path.split("/")[0]) + 1))
        wait.until(lambda d: d.find_element(By.ID, "message").text.startswith(f"saved: {path}"))
        p = Project(project.dir)
        p.run_round(train_model=False)  # the next batch, as `label next` queues it
        p.close()
        wait.until(lambda d: "new batch ready" in d.find_element(By.ID, "message").text)
        body.send_keys("z")
        wait.until(lambda d: "nothing to undo" in d.find_element(By.ID, "message").text)
        p = Project(project.dir)
        rows = {path_: label for _, path_, label in p.labeled_rows()}
        p.close()
        assert rows == {path: path.split("/")[0]}
    finally:
        stop_server(proc)


def test_an_image_changed_since_the_scan_is_explained_not_a_blank_frame(project, browser):
    """The server refuses (409) an image whose file changed since it was scanned; the page
    showed a broken image and nothing else."""
    from selenium.webdriver.common.by import By

    first = project.batch()[0]["path"]
    f = project.root / first
    f.write_bytes(f.read_bytes() + b"changed")  # after the scan, before the page asks for it
    proc, wait = _open_page(project, browser)
    try:
        wait.until(
            lambda d: (
                f"cannot show {first}: " in d.find_element(By.ID, "message").text
                and "changed since it was scanned" in d.find_element(By.ID, "message").text
            )
        )
    finally:
        stop_server(proc)


def test_an_image_the_page_cannot_show_is_not_labeled_blind(project, browser):
    """An image deleted from the folder since the scan: the page said it could not show it
    ("skip it (s)"), but a class key, Enter or a class button still labeled it, a label given
    to an image nobody saw (and kept by the csv export). A label is now refused, saying why;
    s (or u) still sets it aside."""
    from selenium.webdriver.common.by import By

    from fishermask.label.project import Project

    first = project.batch()[0]["path"]
    (project.root / first).unlink()
    proc, wait = _open_page(project, browser)
    try:

        def message(d):
            return d.find_element(By.ID, "message").text

        wait.until(lambda d: f"cannot show {first}: " in message(d))
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("1")
        wait.until(lambda d: message(d).startswith(f"not labeled: {first} could not be shown"))
        assert "skip it (s)" in message(browser)
        browser.find_element(By.CSS_SELECTOR, "button.class").click()
        body.send_keys("2")
        wait.until(lambda d: d.execute_script("return pending") == 0)
        assert browser.find_element(By.ID, "path").text == first  # still on it
        body.send_keys("s")
        wait.until(lambda d: message(d).startswith(f"saved: {first} \u2192 skip"))
    finally:
        stop_server(proc)
    p = Project(project.dir)
    image_id = p.store.image_ids_by_path()[first]
    assert [r.kind for r in p.store.history(image_id)] == ["skip"]
    p.close()


def test_a_failed_round_is_said_once_not_over_every_later_save(project, browser):
    """After a failed round the page re-said 'round N failed: ...' on every status poll
    (1.5 s), so the 'saved: ...' line of each label given afterwards vanished at once."""
    from selenium.webdriver.common.by import By

    rid = project.store.start_round("fishermask", os.getpid())
    project.store.finish_round(rid, status="failed", message="image red/000.png is missing")
    proc, wait = _open_page(project, browser)
    try:

        def message(d):
            return d.find_element(By.ID, "message").text

        wait.until(lambda d: f"round {rid} failed: image red/000.png" in message(d))
        path = browser.find_element(By.ID, "path").text
        browser.find_element(By.TAG_NAME, "body").send_keys(
            str(CLASSES.index(path.split("/")[0]) + 1)
        )
        wait.until(lambda d: message(d).startswith(f"saved: {path}"))
        _wait_for_polls(browser)
        assert message(browser).startswith(f"saved: {path}")
    finally:
        stop_server(proc)


def test_a_stopped_server_is_said_and_the_unsaved_image_stays_named(project, browser):
    """With the server stopped (Ctrl-C), the page said only 'Failed to fetch', and the
    'not saved: ...' line of a key pressed then was replaced by it at the next status poll,
    so nothing said that the label was lost."""
    from selenium.webdriver.common.by import By

    proc, wait = _open_page(project, browser)
    stop_server(proc)

    def message(d):
        return d.find_element(By.ID, "message").text

    wait.until(lambda d: "does not answer" in message(d))
    assert "Failed to fetch" not in message(browser)
    assert "fishermask label serve" in message(browser)
    path = browser.find_element(By.ID, "path").text
    browser.find_element(By.TAG_NAME, "body").send_keys(str(CLASSES.index(path.split("/")[0]) + 1))
    wait.until(lambda d: f"not saved: {path}" in message(d))
    _wait_for_polls(browser)  # two failed status polls later, it still names the image
    assert f"not saved: {path}" in message(browser) and "does not answer" in message(browser)


def test_a_server_restarted_with_a_new_token_is_said_as_such(project, browser):
    """After `label serve` was restarted (a new random token), an open tab said only 'missing
    or wrong access token: add ?token=...', as if the user had typed a wrong URL."""
    from selenium.webdriver.common.by import By

    proc, wait = _open_page(project, browser)
    port = re.search(r":(\d+)/", browser.current_url).group(1)
    stop_server(proc)
    proc, _, _ = start_server(project.dir, "--port", port)  # the same address, a new token
    try:

        def message(d):
            return d.find_element(By.ID, "message").text

        wait.until(lambda d: "probably restarted with a new token" in message(d))
        assert "open the URL that `fishermask label serve` printed" in message(browser)
        # the owner's page; an annotator's says to ask the owner (test_browser_token.py)
        assert "an annotator's page: give them the new URL" in message(browser)
        assert "missing or wrong access token" not in message(browser)
    finally:
        stop_server(proc)


def test_the_page_says_that_new_files_need_a_scan(project, folder, browser):
    """Files put in the folder later are added only by `label scan`; the page said nothing."""
    from selenium.webdriver.common.by import By

    shutil.copy(folder / "red" / "000.png", folder / "red" / "new.png")
    proc, wait = _open_page(project, browser)
    try:
        wait.until(lambda d: d.find_element(By.ID, "new-files").is_displayed())
        text = browser.find_element(By.ID, "new-files").text
        assert "1 image file in the image folder is not in the project" in text
        assert f"fishermask label scan {project.dir}" in text
    finally:
        stop_server(proc)


def test_nothing_left_to_label_is_said_and_the_budget_reached(project, browser):
    """With every image labeled the page said 'the batch is empty: ask for the next batch (n)'
    under the mode 'every image has been seen: nothing left to label', and n only retrained
    to the same empty batch; labels at the budget read '24 labeled of a budget of 24' and
    nothing more."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.label.conftest import label_truth

    label_truth(project, 8)  # every image of the folder
    project.configure(budget=24)
    project.run_round(train_model=False)
    project.close()
    proc, line, _ = start_server(project.dir)
    try:
        browser.get(re.search(r"http://\S+", line).group(0))
        wait = WebDriverWait(browser, 60)

        def text(d, i):
            return d.find_element(By.ID, i).text

        wait.until(lambda d: text(d, "position").startswith("nothing left to label"))
        assert "ask for the next batch" not in text(browser, "position")
        wait.until(lambda d: "24 labeled of a budget of 24 (budget reached)" in text(d, "counts"))
    finally:
        stop_server(proc)


def test_next_batch_with_a_missing_image_says_why_and_starts_nothing(project, browser):
    """n while an image was deleted after the scan said 'retraining ...' and started a round
    that failed in the worker ~10 s later; the server now refuses at once (409) and the page
    shows its line: the image and the fix."""
    from selenium.webdriver.common.by import By

    from fishermask.label.project import Project

    shown = {it["path"] for it in project.batch()}
    gone = next(r.path for r in project.store.images() if r.path not in shown)
    rounds = len(project.store.rounds())
    proc, wait = _open_page(project, browser)
    try:
        (project.root / gone).unlink()  # not an image of the batch: the page shows it fine
        browser.find_element(By.TAG_NAME, "body").send_keys("n")

        def message(d):
            return d.find_element(By.ID, "message").text

        wait.until(lambda d: "--forget-missing" in message(d))
        text = message(browser)
        assert text.startswith(f"image {project.root / gone} of this project is missing"), text
        assert browser.find_element(By.ID, "message").get_attribute("class") == "error"
        _wait_for_polls(browser)  # no round was started, none fails later
        assert message(browser) == text
        p = Project(project.dir)
        assert len(p.store.rounds()) == rounds
        p.close()
    finally:
        stop_server(proc)


def test_an_image_marked_unsure_is_revisited_labeled_and_exported(project, browser):
    """u set an image aside for good: it never came back. The side panel's revisit queues the
    images skipped or unsure as the batch; the label given then is the image's label."""
    import urllib.request

    from selenium.webdriver.common.by import By

    proc, wait = _open_page(project, browser)
    try:

        def text(d, id_):
            return d.find_element(By.ID, id_).text

        body = browser.find_element(By.TAG_NAME, "body")
        path = text(browser, "path")
        body.send_keys("u")
        wait.until(lambda d: text(d, "message") == f"saved: {path} \u2192 unsure")
        wait.until(lambda d: d.find_element(By.ID, "set-aside").is_displayed())
        assert text(browser, "set-aside").startswith("unsure: 1, skipped: 0")
        browser.find_element(By.ID, "revisit").click()
        wait.until(lambda d: text(d, "message").startswith("revisiting 1 image (1 unsure"))
        assert text(browser, "path") == f"{path} \u2014 earlier: unsure"
        assert text(browser, "position").startswith("image 1 of 1 in this batch (0 done)")
        assert text(browser, "mode").startswith(
            "a second look at the images marked unsure or skipped"
        )
        true_class = path.split("/")[0]
        body.send_keys(str(CLASSES.index(true_class) + 1))
        wait.until(lambda d: text(d, "message").startswith(f"saved: {path} \u2192 {true_class}"))
        assert "Batch done" in text(browser, "message")
        wait.until(lambda d: not d.find_element(By.ID, "set-aside").is_displayed())
        export = browser.find_element(By.ID, "export").get_attribute("href")  # the page's link
        req = urllib.request.Request(
            export, headers={"Authorization": f"Bearer {_page_token(browser)}"}
        )
        with urllib.request.urlopen(req) as r:
            assert r.read().decode() == f"path,label\n{path},{true_class}\n"
    finally:
        stop_server(proc)


def test_two_annotators_on_one_batch_do_not_do_the_same_image(project, browser):
    """alice and bob open their own pages on the same batch, both showing image 1. bob labels
    it; alice's page then shows it done by bob and moves on, so her key labels image 2; each
    label records who gave it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    project.close()
    proc, _, _ = start_server(project.dir, "--annotators", "alice,bob")
    try:
        urls = {}
        for _ in range(2):
            m = re.search(r"labeling page for (\w+): (http://\S+)", proc.stdout.readline())
            urls[m.group(1)] = m.group(2)
        wait = WebDriverWait(browser, 60)

        def text(d, id_):
            return d.find_element(By.ID, id_).text

        def shown(d):
            return d.find_element(By.ID, "image").get_attribute("data-image-id")

        browser.get(urls["alice"])
        wait.until(shown)
        alice = browser.current_window_handle
        first, first_path = shown(browser), text(browser, "path")
        assert text(browser, "annotator") == "as alice"
        browser.switch_to.new_window("tab")
        browser.get(urls["bob"])
        wait.until(shown)
        assert shown(browser) == first  # the same batch, the same first image
        cls = first_path.split("/")[0]
        browser.find_element(By.TAG_NAME, "body").send_keys(str(CLASSES.index(cls) + 1))
        wait.until(lambda d: text(d, "message").startswith(f"saved: {first_path}"))

        browser.switch_to.window(alice)
        wait.until(lambda d: "done by bob" in text(d, "message"))
        assert text(browser, "message").startswith(f"{first_path}: done by bob ({cls}); moved on")
        second, second_path = shown(browser), text(browser, "path")
        assert second != first and "\u2014" not in second_path  # one no one has done
        cls2 = second_path.split("/")[0]
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(str(CLASSES.index(cls2) + 1))
        wait.until(lambda d: text(d, "message").startswith(f"saved: {second_path} \u2192 {cls2}"))
        assert "1 done" not in text(browser, "position") and "(2 done)" in text(browser, "position")
        body.send_keys("\ue012")  # ArrowLeft
        body.send_keys("\ue012")
        wait.until(lambda d: shown(d) == first)
        assert text(browser, "path") == f"{first_path} \u2014 {cls} \u2014 by bob"
        # the counts come with the status poll that alice's save starts (not awaited by it): a
        # poll made before it (bob's alone) may still be shown
        counts = "alice 1 \u00b7 bob 1 \u00b7 disagreements: 0"
        wait.until(
            lambda d: (
                d.find_element(By.ID, "team").is_displayed() and text(d, "team-counts") == counts
            ),
            f"the team panel never showed {counts!r}",
        )
    finally:
        stop_server(proc)
    from fishermask.label.project import Project

    p = Project(project.dir)
    rows = [(r.image_id, r.kind, r.annotator) for r in p.store.history()]
    assert rows == [(int(first), "label", "bob"), (int(second), "label", "alice")]
    p.close()


def test_an_annotators_next_batch_waits_for_the_batch_and_follows_the_owners_rounds(
    project, browser
):
    """alice's page: "next batch" and "revisit" disabled with the reason while the batch has
    images nobody has done (n shows the server's one line, nothing starts); the owner's revisit
    replaces her batch and her page says who started it; once she has done it, she may start
    the next round, recorded as hers."""
    import json
    import urllib.request

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    project.close()
    proc, line, _ = start_server(project.dir, "--annotators", "alice,bob")
    try:
        base, owner = re.search(r"(http://\S+)/\?token=(\S+)", line).groups()
        urls = {}
        for _ in range(2):
            m = re.search(r"labeling page for (\w+): (http://\S+)", proc.stdout.readline())
            urls[m.group(1)] = m.group(2)

        def owner_api(path, body=None):
            req = urllib.request.Request(
                f"{base}{path}",
                data=None if body is None else json.dumps(body).encode(),
                headers={"Authorization": f"Bearer {owner}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req) as r:
                return json.load(r)

        def text(d, id_):
            return d.find_element(By.ID, id_).text

        def enabled(d, id_):
            return d.find_element(By.ID, id_).is_enabled()

        wait = WebDriverWait(browser, 60)
        browser.get(urls["alice"])
        wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("data-image-id"))
        left6 = "the current batch still has 6 images nobody has labeled, skipped or marked unsure"
        wait.until(lambda d: text(d, "queue-why").startswith(left6))
        assert not enabled(browser, "next-batch") and not enabled(browser, "revisit")
        assert browser.find_element(By.ID, "next-batch").get_attribute("title").startswith(left6)
        rounds = owner_api("/api/status")["round"]["id"]
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("n")  # the key still asks: the server's one line, nothing started
        wait.until(lambda d: text(d, "message").startswith(left6))
        assert browser.find_element(By.ID, "message").get_attribute("class") == "error"
        assert owner_api("/api/status")["round"]["id"] == rounds

        path = text(browser, "path")
        body.send_keys("u")
        wait.until(lambda d: text(d, "message") == f"saved: {path} \u2192 unsure")
        assert owner_api("/api/revisit", {"kinds": ["unsure"]})["queued"] == 1  # the owner may
        wait.until(lambda d: text(d, "message") == "new batch ready \u2014 started by owner")
        assert text(browser, "mode").endswith("\u2014 started by owner")
        left1 = "the current batch still has 1 image "
        wait.until(lambda d: text(d, "queue-why").startswith(left1))
        cls = path.split("/")[0]
        body.send_keys(str(CLASSES.index(cls) + 1))
        wait.until(lambda d: text(d, "message").startswith(f"saved: {path} \u2192 {cls}"))
        assert "Batch done: press n" in text(browser, "message")
        wait.until(lambda d: enabled(d, "next-batch"))
        assert not browser.find_element(By.ID, "queue-why").is_displayed()
        body.send_keys("n")
        wait.until(lambda d: text(d, "message").startswith("retraining and choosing"))
        WebDriverWait(browser, 180).until(
            lambda d: text(d, "message") == "new batch ready \u2014 started by you"
        )
        assert text(browser, "mode").endswith("\u2014 started by you")
        st = owner_api("/api/status")
        assert st["round"]["started_by"] == "alice" and st["queue_started_by"] == "alice"
    finally:
        stop_server(proc)


def test_under_owner_only_queue_a_done_batch_says_to_ask_the_owner(project, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    project.close()
    proc, _, _ = start_server(project.dir, "--annotators", "alice", "--owner-only-queue")
    try:
        url = re.search(r"labeling page for alice: (http://\S+)", proc.stdout.readline()).group(1)

        def text(d, id_):
            return d.find_element(By.ID, id_).text

        wait = WebDriverWait(browser, 60)
        browser.get(url)
        wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("data-image-id"))
        only = "only the owner starts the next round or a revisit on this server"
        wait.until(lambda d: text(d, "queue-why").startswith(only))
        body = browser.find_element(By.TAG_NAME, "body")
        for _ in range(6):
            path = text(browser, "path")
            body.send_keys("s")
            wait.until(lambda d, p=path: text(d, "message").startswith(f"saved: {p}"))
        assert text(browser, "message").endswith("Batch done: ask the owner for the next batch")
        assert not browser.find_element(By.ID, "next-batch").is_enabled()
        assert text(browser, "queue-why").startswith(only)  # done, and still the owner's call
    finally:
        stop_server(proc)


def test_markup_in_class_folder_and_file_names_is_shown_as_text_never_run(tmp_path, browser):
    """Class names, folder and file names, and the project's name reach the page (buttons,
    path line, messages, chart, title); markup in them must show as text. The payloads mark
    ``document.body`` if they ever run; the page also runs under its Content-Security-Policy
    (its settings a JSON data block, no inline script)."""
    import numpy as np
    from PIL import Image
    from selenium.webdriver.common.by import By

    from fishermask.label.project import Project
    from tests.label.conftest import TINY

    evil = "<img src=x onerror=document.body.dataset.xss=1>"
    classes = [evil, "<b>bold", "plain"]
    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for c, name in enumerate(["<svg onload=document.body.dataset.xss=2>", "b", "c"]):
        (folder / name).mkdir(parents=True)
        for i in range(8):
            a = rng.integers(0, 90, size=(8, 8, 3), dtype=np.uint8)
            a[:, :, c] = 200
            stem = f"<img src=x onerror=document.body.dataset.xss=3>{i}" if c == 0 else str(i)
            Image.fromarray(a).save(folder / name / f"{stem}.png")
    project = Project.init(tmp_path / "<i>proj", folder, classes, **TINY)
    project.run_round(train_model=False)
    proc, wait = _open_page(project, browser)
    try:
        buttons = browser.find_elements(By.CSS_SELECTOR, "button.class")
        assert [b.get_attribute("data-label") for b in buttons] == classes
        assert evil in buttons[0].text and "<b>bold" in buttons[1].text
        assert "<i>proj" in browser.title
        path = browser.find_element(By.ID, "path").text
        buttons[0].click()  # label the image shown with the class named like markup
        wait.until(lambda d: d.find_element(By.ID, "message").text.startswith("saved: "))
        assert f"\u2192 {evil}" in browser.find_element(By.ID, "message").text
        wait.until(lambda d: evil in d.find_element(By.ID, "chart").text)
        # the one <img> is the page's own; nothing injected ran
        assert len(browser.find_elements(By.TAG_NAME, "img")) == 1
        # the one <svg> is the page's own (the accuracy chart, hidden before two estimates)
        assert [e.get_attribute("id") for e in browser.find_elements(By.TAG_NAME, "svg")] == [
            "history-plot"
        ]
        assert browser.execute_script("return document.body.dataset.xss") is None
    finally:
        stop_server(proc)
    p = Project(project.dir)
    try:
        assert [(r[1], r[2]) for r in p.labeled_rows()] == [(path.split(" \u2014")[0], evil)]
    finally:
        p.close()


def test_the_labeled_view_filters_and_fixes_a_label(project, browser):
    """The Labeled tab lists the labels given (no model yet: newest first, said in one line),
    filters them by class, and fixes one with a click and a class key: a new label in the
    history, which the export has."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    from fishermask.label.project import Project
    from tests.label.conftest import label_truth

    label_truth(project, 2)
    proc, wait = _open_page(project, browser)
    try:

        def tiles(d) -> list[list[str]]:  # [image id, path, label] per tile, read at once
            return d.execute_script(
                "return [...document.querySelectorAll('#grid button.tile')].map((t) => "
                "[t.dataset.imageId, t.title, t.querySelector('.lab').textContent])"
            )

        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: len(tiles(d)) == 6)
        note = browser.find_element(By.ID, "browse-note").text
        assert note.startswith("no trained model yet, so newest first")
        Select(browser.find_element(By.ID, "browse-class")).select_by_value("green")
        wait.until(lambda d: [t[2] for t in tiles(d)] == ["green", "green"])
        image_id, path, _ = tiles(browser)[1]
        # Enter is "looks right": the label stays and the next image is selected (it took the
        # model's guess, which rewrote the labels a reviewer of likely mistakes meant to keep)
        first = tiles(browser)[0]
        browser.find_elements(By.CSS_SELECTOR, "#grid button.tile")[0].click()
        wait.until(lambda d: d.find_element(By.ID, "browse-selected").text.startswith(first[1]))
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ENTER)
        wait.until(lambda d: d.find_element(By.ID, "browse-selected").text.startswith(path))
        assert browser.find_element(By.ID, "message").text == f"kept: {first[1]} is green"
        assert tiles(browser)[0] == first
        browser.find_elements(By.CSS_SELECTOR, "#grid button.tile")[1].click()
        wait.until(lambda d: d.find_element(By.ID, "browse-selected").text.startswith(path))
        browser.find_element(By.TAG_NAME, "body").send_keys("3")  # blue's key, as in a batch
        saved = f"saved: {path} \u2192 blue (was green)"
        wait.until(lambda d: d.find_element(By.ID, "message").text == saved)
        assert tiles(browser)[1] == [image_id, path, "blue"]
        q = Project(project.dir)
        assert [CLASSES[r.class_id] for r in q.store.history(int(image_id))] == ["green", "blue"]
        assert f"{path},blue" in q.export_csv_text().splitlines()
        q.close()
    finally:
        stop_server(proc)


def test_the_token_leaves_the_address_bar_and_no_request_carries_it_in_its_url(
    project, browser, tmp_path
):
    """Image URLs, the CSV link, the script and the style carried the token, so it landed in
    server and proxy logs and in the browser's history of each image. After the page opens,
    its address has no token; every request it made (images and thumbnails shown from blob:
    URLs, the API, the CSV download) has none in its URL; a reload of the tab keeps who it is,
    and an owner's tab and an annotator's tab of one browser stay two people."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    project.close()
    proc, line, _ = start_server(project.dir, "--annotators", "alice")
    try:
        owner_url = re.search(r"http://\S+", line).group(0)
        alice_url = re.search(r"labeling page for alice: (http://\S+)", proc.stdout.readline())[1]
        wait = WebDriverWait(browser, 60)

        def text(d, id_):
            return d.find_element(By.ID, id_).text

        def urls(d) -> list[str]:  # every request the page made since it was opened
            return d.execute_script(
                "return performance.getEntriesByType('resource').map((e) => e.name)"
            )

        def label_shown(d) -> str:
            path = text(d, "path")
            d.find_element(By.TAG_NAME, "body").send_keys(
                str(CLASSES.index(path.split("/")[0]) + 1)
            )
            wait.until(lambda d: text(d, "message").startswith(f"saved: {path}"))
            return path

        shown = lambda d: d.find_element(By.ID, "image").get_attribute("src") or ""  # noqa: E731
        browser.get(owner_url)
        wait.until(lambda d: shown(d).startswith("blob:"))
        owner_tab = browser.current_window_handle
        assert "token" not in browser.current_url
        assert browser.current_url.rstrip("/") == owner_url.split("/?")[0]
        first = label_shown(browser)

        browser.switch_to.new_window("tab")  # alice, in the same browser
        browser.get(alice_url)
        wait.until(lambda d: shown(d).startswith("blob:"))
        assert "token" not in browser.current_url and text(browser, "annotator") == "as alice"
        second = label_shown(browser)

        browser.switch_to.window(owner_tab)
        browser.refresh()  # the address has no token now: the tab still knows whose it is
        wait.until(lambda d: shown(d).startswith("blob:"))
        assert "token" not in browser.current_url
        assert not browser.find_elements(By.ID, "annotator")  # the owner's page, not alice's
        third = label_shown(browser)

        # the Labeled view: thumbnails, fetched with the header, shown from blob: URLs
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(
            lambda d: (
                len(tiles := d.find_elements(By.CSS_SELECTOR, "#grid img")) == 3
                and all((t.get_attribute("src") or "").startswith("blob:") for t in tiles)
            )
        )
        # a fix redraws the grid from the thumbnails it has, without fetching them again
        n_thumbs = sum("size=thumb" in u for u in urls(browser))
        assert n_thumbs == 3
        label = browser.find_element(By.CSS_SELECTOR, "#grid .tile.selected .lab").text.split()[0]
        other = next(c for c in CLASSES if c != label)
        browser.find_element(By.TAG_NAME, "body").send_keys(str(CLASSES.index(other) + 1))
        wait.until(lambda d: text(d, "message").startswith("saved: "))
        wait.until(
            lambda d: all(
                (t.get_attribute("src") or "").startswith("blob:")
                for t in d.find_elements(By.CSS_SELECTOR, "#grid img")
            )
        )
        assert sum("size=thumb" in u for u in urls(browser)) == n_thumbs
        # the CSV download: fetched with the header, saved from a blob: URL
        browser.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
        )
        browser.find_element(By.ID, "export").click()
        wait.until(lambda d: (tmp_path / "labels.csv").is_file() and text(d, "message"))
        wait.until(lambda d: len((tmp_path / "labels.csv").read_text().splitlines()) == 4)
        rows = (tmp_path / "labels.csv").read_text().splitlines()
        assert rows[0] == "path,label" and {r.split(",")[0] for r in rows[1:]} == {
            first,
            second,
            third,
        }
        made = urls(browser)
        assert any("/api/images/" in u and "size=thumb" in u for u in made), made
        assert any(u.endswith("/api/export.csv") for u in made), made
        assert not [u for u in made if "token" in u], made
        assert "token" not in browser.current_url
    finally:
        stop_server(proc)
    from fishermask.label.project import Project

    p = Project(project.dir)
    who: dict[int, str | None] = {}
    for r in p.store.history():  # who gave each image's first label (the fix is the owner's)
        who.setdefault(r.image_id, r.annotator)
    paths = {r.id: r.path for r in p.store.images()}
    assert {paths[i]: a for i, a in who.items()} == {first: None, second: "alice", third: None}
    p.close()


def test_a_reload_with_a_token_the_server_no_longer_takes_says_so_and_leaves_no_token(
    project, browser
):
    """After `label serve` was restarted with a new token, a reload of a tab reopened it with
    the token the tab kept: refused, and that token then stayed in the address bar (the one
    place the page promises it leaves), under the line for a page opened without any token."""
    from selenium.webdriver.common.by import By

    proc, wait = _open_page(project, browser)
    try:
        browser.execute_script("sessionStorage.setItem('fishermask-label-token', 'old-token')")
        browser.refresh()  # as after a restart: this tab's token is not the server's
        wait.until(lambda d: d.find_elements(By.ID, "why"))
        wait.until(lambda d: "token" not in d.current_url)
        why = browser.find_element(By.ID, "why").text
        assert why.startswith("the labeling server no longer accepts this tab's access token")
        assert "open the URL that `fishermask label serve` printed" in why
        # the tab may be an annotator's, who has no such URL until the owner gives them one
        assert "an annotator: ask the owner for your new link" in why
        assert (
            browser.execute_script("return sessionStorage.getItem('fishermask-label-token')")
            is None
        )
        # styled as the labeling page (it was plain black-on-white text): its header's colour
        header = browser.find_element(By.TAG_NAME, "header")
        assert header.value_of_css_property("background-color") == "rgba(31, 58, 95, 1)"
    finally:
        stop_server(proc)


def test_a_reload_of_the_labeled_view_stays_in_it(project, browser):
    """A reload (or the reopen after it) went back to the Batch tab: someone fixing labels
    in the Labeled view lost their place at every reload."""
    from selenium.webdriver.common.by import By

    from tests.label.conftest import label_truth

    label_truth(project, 2)
    proc, wait = _open_page(project, browser)
    try:

        def tiles(d) -> int:
            return len(d.find_elements(By.CSS_SELECTOR, "#grid button.tile"))

        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: tiles(d) == 6)
        browser.refresh()
        wait.until(lambda d: d.find_elements(By.ID, "grid") and tiles(d) == 6)
        assert browser.find_element(By.ID, "browse").is_displayed()
        assert not browser.find_element(By.ID, "labeler").is_displayed()
        assert "token" not in browser.current_url
        browser.find_element(By.ID, "tab-batch").click()
        browser.refresh()
        wait.until(
            lambda d: (
                d.find_elements(By.ID, "image")
                and d.find_element(By.ID, "image").get_attribute("src")
            )
        )
        assert browser.find_element(By.ID, "labeler").is_displayed()
    finally:
        stop_server(proc)


def test_a_class_added_and_renamed_while_the_page_is_open(project, browser):
    """`label config --add-class/--rename-class` with the page open: the page says so, a key
    of the renamed class is refused (nothing saved, reload said), and after a reload the new
    class has its button and key."""
    from selenium.webdriver.common.by import By
    from typer.testing import CliRunner

    from fishermask.cli import app
    from fishermask.label.project import Project

    proc, wait = _open_page(project, browser)
    try:
        r = CliRunner().invoke(
            app,
            ["label", "config", str(project.dir), "--add-class", "bird"]
            + ["--rename-class", "red=crimson"],
        )
        assert r.exit_code == 0, r.output

        def message(d):
            return d.find_element(By.ID, "message").text

        wait.until(lambda d: "classes changed since this page was loaded" in message(d))
        assert "crimson, green, blue, bird" in message(browser)
        image_id = int(browser.find_element(By.ID, "image").get_attribute("data-image-id"))
        browser.find_element(By.TAG_NAME, "body").send_keys("1")  # still "red" on this page
        wait.until(lambda d: "'red' was renamed to 'crimson'" in message(d))
        assert "reload the page" in message(browser)
        p = Project(project.dir)
        assert image_id not in p.store.current_labels()
        browser.refresh()
        wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("src"))
        buttons = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "button.class")]
        assert buttons == ["1 crimson", "2 green", "3 blue", "4 bird"]
        image_id = int(browser.find_element(By.ID, "image").get_attribute("data-image-id"))
        browser.find_element(By.TAG_NAME, "body").send_keys("4")
        wait.until(lambda d: message(d).startswith("saved"))
        assert p.store.current_labels()[image_id] == 3
        p.close()
    finally:
        stop_server(proc)


def test_a_class_removed_while_the_page_is_open(project, browser):
    """`label config --remove-class` with the page open: the page says so, the removed class's
    key is refused (nothing saved, reload said), and after a reload it has no button."""
    from selenium.webdriver.common.by import By
    from typer.testing import CliRunner

    from fishermask.cli import app
    from fishermask.label.project import Project

    proc, wait = _open_page(project, browser)
    try:
        r = CliRunner().invoke(app, ["label", "config", str(project.dir), "--remove-class", "blue"])
        assert r.exit_code == 0, r.output

        def message(d):
            return d.find_element(By.ID, "message").text

        wait.until(lambda d: "classes changed since this page was loaded" in message(d))
        assert "(now: red, green)" in message(browser)
        image_id = int(browser.find_element(By.ID, "image").get_attribute("data-image-id"))
        browser.find_element(By.TAG_NAME, "body").send_keys("3")  # still "blue" on this page
        wait.until(lambda d: "'blue' was removed" in message(d))
        assert "reload the page" in message(browser)
        p = Project(project.dir)
        assert image_id not in p.store.current_labels()
        browser.refresh()
        wait.until(lambda d: d.find_element(By.ID, "image").get_attribute("src"))
        buttons = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "button.class")]
        assert buttons == ["1 red", "2 green"]
        options = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#browse-class option")]
        assert "blue" not in options
        image_id = int(browser.find_element(By.ID, "image").get_attribute("data-image-id"))
        browser.find_element(By.TAG_NAME, "body").send_keys("2")
        wait.until(lambda d: message(d).startswith("saved"))
        assert p.store.current_labels()[image_id] == 1
        p.close()
    finally:
        stop_server(proc)
