"""How the labeling page shows images of odd shapes and sizes, and lays itself out on a phone,
in headless Chromium (as tests/label/test_browser.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.label.conftest import TINY, browser_only, make_folder
from tests.label.test_browser import _open_page
from tests.label.test_kill import stop_server

pytestmark = browser_only


@pytest.fixture
def odd(tmp_path):
    """A project whose batch holds every image: six 8x8 ones and a 2000x150 panorama."""
    from fishermask.label.project import Project

    folder = make_folder(tmp_path / "images", per_class=2)
    Image.new("RGB", (2000, 150), (200, 120, 40)).save(folder / "panorama.png")
    p = Project.init(tmp_path / "proj", folder, "red,green,blue", **(TINY | {"batch": 7}))
    p.run_round(train_model=False)
    yield p
    p.close()


def phone(browser) -> None:
    """The page of ``browser`` (its tab) the size of a phone's, 390x844."""
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
    )


def shown(d) -> dict:
    """The batch image's path, rendered size, rendering and the frame's corner line."""
    return d.execute_script(
        "const i = document.getElementById('image'), r = i.getBoundingClientRect(),"
        " f = document.getElementById('frame').getBoundingClientRect();"
        "return {path: document.getElementById('path').textContent, w: r.width, h: r.height,"
        " fw: f.width, fh: f.height, nw: i.naturalWidth, nh: i.naturalHeight,"
        " rendering: getComputedStyle(i).imageRendering, alt: i.alt,"
        " dims: document.getElementById('dims').hidden ? null"
        " : document.getElementById('dims-text').textContent,"
        " zoom: document.getElementById('zoom').hidden ? null"
        " : document.getElementById('zoom').textContent,"
        " scroll: document.getElementById('frame').scrollWidth}"
    )


def test_an_image_keeps_its_shape_and_says_its_size(odd, browser):
    """A panorama was stretched to the frame's least height (256 px tall, a fifth as wide as
    it should be), every downscaled photo was drawn with blocky pixels, and an 8-pixel icon
    filled the frame with nothing saying how small it was. Each image now fits the frame with
    its shape, only an enlarged one is drawn with sharp pixels, and the frame's corner says the
    file's size and how much larger or smaller it is shown; "actual size" (or a click on the
    image) shows one shown smaller at its own size, scrolled in the frame."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.set_window_size(1200, 800)
    proc, wait = _open_page(odd, browser)
    try:
        body = browser.find_element(By.TAG_NAME, "body")
        seen = {}
        for _ in range(7):
            path = browser.find_element(By.ID, "path").text
            wait.until(lambda d, p=path: (s := shown(d))["dims"] and s["alt"].endswith(p))
            seen[path] = shown(browser)
            body.send_keys(Keys.ARROW_RIGHT)
        pano = seen.pop("panorama.png")
        assert pano["w"] / pano["h"] == pytest.approx(2000 / 150, rel=0.02), pano
        assert pano["w"] <= pano["fw"] and pano["h"] <= pano["fh"]
        assert pano["rendering"] != "pixelated"  # shown smaller: smoothly
        assert pano["dims"].startswith("2000 \u00d7 150 px, shown at ")
        assert pano["alt"] == "image to label: panorama.png"
        for path, icon in seen.items():
            assert icon["w"] == icon["h"] > 200, (path, icon)
            assert icon["rendering"] == "pixelated"
            assert icon["dims"].startswith("8 \u00d7 8 px, shown "), icon
            assert icon["dims"].endswith("\u00d7 larger")
            assert icon["zoom"] is None  # enlarged already: no "actual size"

        # the panorama at its own size, scrolled in the frame, and back
        assert pano["zoom"] == "actual size"
        while browser.find_element(By.ID, "path").text != "panorama.png":
            body.send_keys(Keys.ARROW_LEFT)
        browser.find_element(By.ID, "zoom").click()
        wait.until(lambda d: shown(d)["nw"] == 2000 and shown(d)["w"] == 2000)
        full = shown(browser)
        assert full["h"] == 150 and full["scroll"] > full["fw"]  # scrolled, not cut
        assert full["dims"] == "2000 \u00d7 150 px" and full["zoom"] == "fit to frame"
        browser.find_element(By.ID, "image").click()  # a click on the image: back to the fit
        wait.until(lambda d: shown(d)["zoom"] == "actual size")
        assert shown(browser)["w"] == pytest.approx(pano["w"], abs=1)
    finally:
        stop_server(proc)


@pytest.fixture
def turned(tmp_path):
    """A project whose batch holds a phone's portrait photo: stored 1600x800 with the EXIF
    orientation that turns it a quarter (shown 800 wide, 1600 high), and three 8x8 ones."""
    from fishermask.label.project import Project

    folder = make_folder(tmp_path / "images", per_class=1)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    Image.new("RGB", (1600, 800), (40, 90, 200)).save(folder / "portrait.jpg", exif=exif)
    p = Project.init(tmp_path / "proj", folder, "red,green,blue", **(TINY | {"batch": 4}))
    p.run_round(train_model=False)
    yield p
    p.close()


def test_a_photo_turned_by_exif_says_the_size_it_is_shown_at(turned, browser):
    """The page shows a photo turned by its EXIF orientation upright (800 x 1600), but its
    corner said the stored size, "1600 x 800 px", and how much smaller it was shown against
    the wrong side; "actual size" then drew it twice as large as it is. The corner now says
    the size shown, and "actual size" is the photo's own size."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.set_window_size(1200, 800)
    proc, wait = _open_page(turned, browser)
    try:
        body = browser.find_element(By.TAG_NAME, "body")
        for _ in range(4):
            if browser.find_element(By.ID, "path").text == "portrait.jpg":
                break
            body.send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda d: (s := shown(d))["dims"] and s["alt"].endswith("portrait.jpg"))
        fit = shown(browser)
        assert fit["nh"] > fit["nw"] and fit["h"] > fit["w"]  # upright: taller than wide
        percent = round(100 * fit["w"] / 800)
        assert fit["dims"] == f"800 \u00d7 1600 px, shown at {percent} %", fit
        browser.find_element(By.ID, "zoom").click()
        wait.until(lambda d: shown(d)["zoom"] == "fit to frame" and shown(d)["nw"] == 800)
        full = shown(browser)
        assert (full["w"], full["h"]) == (800, 1600), full
        assert full["dims"] == "800 \u00d7 1600 px"
    finally:
        stop_server(proc)


LONG = "a very long class name for a pickup truck with a trailer attached"


@pytest.fixture
def long_name(tmp_path, folder):
    """A project of three classes, the last of a long name."""
    from fishermask.label.project import Project

    p = Project.init(tmp_path / "proj", folder, f"red,green,{LONG}", **TINY)
    p.run_round(train_model=False)
    p.add_label_rows([("blue/000.png", LONG), ("red/000.png", "red")], source="human", what="t")
    yield p
    p.close()


def test_a_long_class_name_is_cut_short_with_the_whole_name_at_hand(long_name, browser):
    """A class of a long name took a row of keys to itself (two lines on a phone), six lines
    of the side panel's chart and four of its Labeled tile. Its key and its chart row are one
    line, its tile's label two at most, cut short with an ellipsis; the whole name is their
    title (and the key's accessible name)."""
    from selenium.webdriver.common.by import By

    phone(browser)
    proc, wait = _open_page(long_name, browser)
    try:
        keys = browser.find_elements(By.CSS_SELECTOR, "button.class")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".chartrow .name"))
        long_key = keys[2]
        assert long_key.rect["height"] == keys[0].rect["height"]
        assert long_key.rect["x"] + long_key.rect["width"] <= 390
        assert long_key.get_attribute("title") == LONG
        assert long_key.accessible_name.endswith(LONG)
        rows = browser.find_elements(By.CSS_SELECTOR, ".chartrow .name")
        assert rows[2].get_attribute("title") == LONG
        assert rows[2].rect["height"] == rows[0].rect["height"]
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid .lab")) == 2)
        labs = {e.get_attribute("title"): e for e in browser.find_elements(By.CSS_SELECTOR, ".lab")}
        assert labs[LONG].rect["height"] <= 2 * labs["red"].rect["height"] + 1
    finally:
        stop_server(proc)


#: every control a finger uses, as seen (a checkbox is tapped through its label)
SMALL_TARGETS = """return [...document.querySelectorAll(
  'button, select, input:not([type=checkbox]), a, #browse-controls label')]
  .filter((e) => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
  .map((e) => [e.id || e.textContent.trim().slice(0, 20), e.getBoundingClientRect()])
  .filter(([, r]) => r.height < 40 || r.width < 40)
  .map(([name, r]) => `${name}: ${Math.round(r.width)}x${Math.round(r.height)}`)"""


@pytest.mark.parametrize("touch", [False, True], ids=["phone", "tablet"])
def test_every_control_is_a_finger_wide_on_a_phone_or_a_tablet(long_name, browser, touch):
    """On a phone the keys were 26 px tall and the arrows 24 px wide, and a tablet (820 px,
    no mouse) had the desktop's 30-px buttons: each tap risked the key beside it. Every
    button, menu, box and link is now at least 40 px a side under a finger or on a narrow
    window, in both views, and the class menu of a long class name no longer runs off a
    phone's page; ← and → stay side by side."""
    from selenium.webdriver.common.by import By

    if touch:
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 820, "height": 1180, "deviceScaleFactor": 1, "mobile": True},
        )
        browser.execute_cdp_cmd(
            "Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5}
        )
    else:
        phone(browser)
    proc, wait = _open_page(long_name, browser)
    try:
        if touch:
            assert browser.execute_script("return matchMedia('(pointer: coarse)').matches")
        assert browser.execute_script(SMALL_TARGETS) == []
        before, after = (browser.find_element(By.ID, i).rect for i in ("prev", "next"))
        assert before["y"] == after["y"]  # side by side: → began the next row on a phone
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: d.find_element(By.ID, "browse-bar").is_displayed())
        assert browser.execute_script(SMALL_TARGETS) == []
        width = 820 if touch else 390
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    finally:
        stop_server(proc)


def test_a_key_no_class_has_says_so_and_every_button_has_a_name(project, browser):
    """4 in a project of three classes did nothing, in either view: a labeler could not tell
    an unknown key from a stuck page. It now says which keys there are, and labels nothing.
    The arrow buttons were named by their arrow alone ("←") for a screen reader: each button
    has a name in words."""
    from selenium.webdriver.common.by import By

    browser.set_window_size(1200, 800)
    proc, wait = _open_page(project, browser)
    try:
        said = "no class has the key {}: the class keys are 1 2 3 (on the buttons)"
        path = browser.find_element(By.ID, "path").text
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("4")
        wait.until(lambda d: d.find_element(By.ID, "message").text == said.format(4))
        assert browser.find_element(By.ID, "path").text == path  # nothing labeled
        names = {}
        for view in ("batch", "labeled"):
            browser.find_element(By.ID, f"tab-{view}").click()
            for b in browser.find_elements(By.CSS_SELECTOR, "button[id]"):
                if b.is_displayed():
                    names[b.get_attribute("id")] = b.accessible_name
        assert names["prev"] == "the image before" and names["next"] == "the image after"
        assert names["page-prev"] == "previous page" and names["page-next"] == "next page"
        assert all(len(n) > 2 for n in names.values()), names
        body.send_keys("K")  # Shift or Caps Lock: still k
        wait.until(lambda d: d.find_element(By.ID, "message").text == said.format("k"))
    finally:
        stop_server(proc)


def test_enter_on_a_control_reached_with_tab_is_that_controls(trained, browser):
    """Enter on the Labeled tab, reached with Tab, confirmed the model's guess of the image
    shown (the page's Enter) and left the view as it was: a keyboard user could not open a tab
    or the help without labeling an image. Enter on a focused control is now the control's,
    and the focus is drawn."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.set_window_size(1200, 800)
    proc, wait = _open_page(trained, browser)  # a model's guess for Enter to confirm
    try:
        path = browser.find_element(By.ID, "path").text
        tab = browser.find_element(By.ID, "tab-labeled")
        body = browser.find_element(By.TAG_NAME, "body")
        for _ in range(10):  # Tab until the Labeled tab has the focus
            if browser.switch_to.active_element == tab:
                break
            browser.switch_to.active_element.send_keys(Keys.TAB)
        assert browser.switch_to.active_element == tab
        assert tab.value_of_css_property("outline-style") != "none"  # the focus is seen
        tab.send_keys(Keys.ENTER)
        wait.until(lambda d: d.find_element(By.ID, "browse").is_displayed())
        browser.find_element(By.ID, "tab-batch").click()  # a mouse click: Enter is the page's
        assert browser.find_element(By.ID, "path").text == path  # not labeled
        assert browser.find_element(By.ID, "message").text == ""
        body.send_keys(Keys.ENTER)
        wait.until(lambda d: d.find_element(By.ID, "message").text.startswith("saved: "))
    finally:
        stop_server(proc)


#: each visible text whose contrast with the colour behind it is below WCAG AA (4.5:1; 3:1
#: for large text), as "id or class: text: ratio"
LOW_CONTRAST = r"""
const rgb = (s) => {
  const m = s.match(/[\d.]+/g).map(Number);
  return m.length > 3 ? m : [...m, 1];
};
const lum = (c) => c.slice(0, 3)
  .map((v) => (v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4))
  .reduce((s, v, i) => s + [0.2126, 0.7152, 0.0722][i] * v, 0);
const behind = (e) => {
  for (; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c[3] > 0.5) return c;
  }
  return [255, 255, 255, 1];
};
const low = [];
for (const e of document.querySelectorAll("body *")) {
  if (!e.getClientRects().length || e.closest("button:disabled")) continue;
  if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
  const cs = getComputedStyle(e), fg = rgb(cs.color), bg = behind(e);
  const mix = [0, 1, 2].map((i) => fg[i] * fg[3] + bg[i] * (1 - fg[3]));
  const [a, b] = [lum(mix), lum(bg)].sort((x, y) => y - x), ratio = (a + 0.05) / (b + 0.05);
  const size = parseFloat(cs.fontSize);
  const large = size >= 24 || (size >= 18.66 && cs.fontWeight >= 700);
  const text = e.textContent.trim().slice(0, 20);
  if (ratio < (large ? 3 : 4.5)) low.push(`${e.id || e.className}: ${text}: ${ratio.toFixed(2)}`);
}
return low;"""


def test_a_dark_screen_gets_a_dark_page_every_text_readable(trained, browser):
    """The page was light whatever the system's setting: a labeler working in the dark had a
    white screen. Under prefers-color-scheme: dark it is dark, and in either scheme every text
    of both views has WCAG AA contrast."""
    from selenium.webdriver.common.by import By

    browser.set_window_size(1200, 800)
    proc, wait = _open_page(trained, browser)
    try:
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".chartrow"))
        for scheme, view in _each_scheme_and_view(browser, wait):
            if view == "batch":
                body = browser.execute_script(
                    "return getComputedStyle(document.body).backgroundColor"
                )
                dark = sum(int(v) for v in body[4:-1].split(",")) < 3 * 128
                assert dark == (scheme == "dark"), (scheme, body)
            assert browser.execute_script(LOW_CONTRAST) == [], scheme
    finally:
        stop_server(proc)


def _each_scheme_and_view(browser, wait):
    """The page under prefers-color-scheme light, then dark, each in the Batch view and then
    the Labeled view (its grid drawn): ``(scheme, view)``; the emulation is undone after."""
    from selenium.webdriver.common.by import By

    try:
        for scheme in ("light", "dark"):
            browser.execute_cdp_cmd(
                "Emulation.setEmulatedMedia",
                {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
            )
            for view in ("batch", "labeled"):
                browser.find_element(By.ID, f"tab-{view}").click()
                if view == "labeled":
                    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#grid .lab"))
                yield scheme, view
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


# every visible control whose outline (or, where its fill differs, its fill) does not stand
# out at 3:1 from what is around it (WCAG 1.4.11, non-text contrast); check boxes are drawn
# by the browser, not by the page's style
FAINT_OUTLINE = (
    LOW_CONTRAST.split("const low = [];")[0]
    + r"""
const ratio = (x, y) => {
  const [a, b] = [lum(x), lum(y)].sort((p, q) => q - p);
  return (a + 0.05) / (b + 0.05);
};
const faint = [];
const controls = "button, input:not([type=checkbox]):not([type=radio]), select";
for (const e of document.querySelectorAll(controls)) {
  if (!e.getClientRects().length || e.disabled) continue;
  const cs = getComputedStyle(e), around = behind(e.parentElement);
  const edge = parseFloat(cs.borderTopWidth) > 0 ? ratio(rgb(cs.borderTopColor), around) : 0;
  const fill = rgb(cs.backgroundColor), filled = fill[3] > 0.5 ? ratio(fill, around) : 0;
  const best = Math.max(edge, filled);
  if (best < 3) faint.push(`${e.id || e.className || e.tagName}: ${best.toFixed(2)}`);
}
return faint;"""
)


def test_every_control_stands_out_from_the_page_in_either_scheme(project, browser):
    """Buttons and inputs were outlined in #aaa on white (2.3:1; 2.4:1 in the dark scheme),
    below the 3:1 that WCAG asks of a control's boundary: a labeler with weak sight saw
    floating words, not buttons. In either scheme every visible control's outline, or its
    fill, stands out at 3:1 from what is around it."""
    from selenium.webdriver.common.by import By

    from tests.label.conftest import label_truth

    label_truth(project, 1)  # something in the Labeled view's grid
    browser.set_window_size(1200, 800)
    proc, wait = _open_page(project, browser)
    try:
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.class"))
        for scheme, _ in _each_scheme_and_view(browser, wait):
            assert browser.execute_script(FAINT_OUTLINE) == [], scheme
    finally:
        stop_server(proc)


@pytest.fixture
def many(tmp_path, folder):
    """A project of 25 classes over the three-colour folder, nine images labeled."""
    from fishermask.label.project import Project

    names = ["red", "green", "blue"] + [f"class_{i:02d}" for i in range(22)]
    p = Project.init(tmp_path / "proj", folder, ",".join(names), **TINY)
    p.run_round(train_model=False)
    rows = [(f"{c}/{i:03d}.png", c) for c in names[:3] for i in range(3)]
    p.add_label_rows(rows, source="human", what="test")
    yield p
    p.close()


def test_on_a_phone_25_class_keys_leave_the_labeled_grid_in_sight(many, browser):
    """On a phone the Labeled view's bar of class keys, kept at the window's bottom, was 580
    px of 844 with 25 classes (ten rows of finger-sized keys): the grid was a strip. The keys
    now show three rows and a half, the rest scrolled to within the bar; each is reachable."""
    from selenium.webdriver.common.by import By

    phone(browser)
    proc, wait = _open_page(many, browser)
    try:
        browser.find_element(By.ID, "tab-labeled").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid .tile")) == 9)
        footer = browser.find_element(By.ID, "footer").rect
        assert footer["height"] <= 0.35 * 844, footer
        keys = browser.find_elements(By.CSS_SELECTOR, "button.relabel")
        assert len(keys) == 25
        browser.execute_script("arguments[0].scrollIntoView({block: 'nearest'})", keys[-1])
        last, bar = keys[-1].rect, browser.find_element(By.ID, "relabel-classes").rect
        assert bar["y"] <= last["y"] and last["y"] + last["height"] <= bar["y"] + bar["height"]
        keys[-1].click()  # a tap on the 25th class fixes the selected label
        wait.until(
            lambda d: d.find_element(By.ID, "message").text.endswith("\u2192 class_21 (was blue)")
        )
    finally:
        stop_server(proc)


def _draw_points(browser) -> None:
    """Draw the side panel's accuracy chart with two estimated rounds (round 1: 50 % with 20
    labels, round 2: 70 % with 40), whatever the status polls say (the project has no rounds
    estimated): ``drawHistory`` is replaced by one that always draws these."""
    points = [
        dict(round=1, accuracy=0.5, low=0.4, high=0.6, labels=20, method="fishermask"),
        dict(round=2, accuracy=0.7, low=0.6, high=0.8, labels=40, method="fishermask"),
    ]
    browser.execute_script(
        "const points = arguments[0], real = drawHistory;"
        "drawHistory = () => real(points); drawHistory();",
        points,
    )


def test_a_round_of_the_accuracy_chart_is_told_by_a_tap_and_to_a_screen_reader(project, browser):
    """A point of the side panel's accuracy chart said its round only on hover: nothing on a
    phone or a tablet, and a screen reader heard "held-out accuracy by labels" alone. A tap
    (or click) on a point says its line under the chart, and the chart's name lists them."""
    from selenium.webdriver.common.by import By

    browser.set_window_size(1200, 800)
    proc, wait = _open_page(project, browser)
    try:
        _draw_points(browser)
        line = "round 2: 70.0% (60.0\u201380.0%) with 40 labels, fishermask"
        plot = browser.find_element(By.ID, "history-plot")
        assert line in plot.get_attribute("aria-label")
        browser.find_elements(By.CSS_SELECTOR, "#history-plot .hit")[1].click()
        assert browser.find_element(By.ID, "history-said").text == line
    finally:
        stop_server(proc)


def test_a_point_of_the_accuracy_chart_is_reached_with_tab_and_told_with_enter(project, browser):
    """The chart's points answered a click or a tap only: Tab passed them by, so a keyboard
    user (or a screen reader's) never heard a round's figures. Each point is a control now:
    Tab reaches it (outlined, named for what it is), Enter or Space says its line under the
    chart as a click does, and neither labels the image shown nor scrolls the page."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.set_window_size(1200, 800)
    proc, wait = _open_page(project, browser)
    try:
        _draw_points(browser)
        position = browser.find_element(By.ID, "position").text
        browser.execute_script("document.activeElement.blur()")

        def focused() -> str | None:
            return browser.execute_script(
                "const e = document.activeElement;"
                "return e && e.matches('#history-plot .hit') ? e.getAttribute('aria-label') : null;"
            )

        for _ in range(100):  # the tabs, the keys and the actions come first
            ActionChains(browser).send_keys(Keys.TAB).perform()
            if focused():
                break
        assert focused() == (
            "round 1: held-out accuracy 50.0% (95% interval 40.0\u201360.0%) with 20 labels, "
            "fishermask"
        )
        ring = browser.execute_script(
            "const s = getComputedStyle(document.activeElement);"
            "return [s.stroke, parseFloat(s.strokeWidth)];"
        )
        assert ring[0] not in ("none", "rgba(0, 0, 0, 0)") and ring[1] >= 2, ring  # outlined
        ActionChains(browser).send_keys(Keys.ENTER).perform()
        said = browser.find_element(By.ID, "history-said")
        assert said.text == "round 1: 50.0% (40.0\u201360.0%) with 20 labels, fishermask"
        ActionChains(browser).send_keys(Keys.TAB).perform()
        assert focused().startswith("round 2: ")
        top = browser.execute_script("return scrollY")
        ActionChains(browser).send_keys(Keys.SPACE).perform()
        assert said.text == "round 2: 70.0% (60.0\u201380.0%) with 40 labels, fishermask"
        assert browser.execute_script("return scrollY") == top
        # the keys were the point's: the image shown is not labeled, no guess was "confirmed"
        assert browser.find_element(By.ID, "position").text == position
        assert browser.find_element(By.ID, "message").text == ""
        # the chart is a group of named controls, not an image (whose parts a screen reader
        # does not read)
        assert browser.find_element(By.ID, "history-plot").get_attribute("role") == "group"
    finally:
        stop_server(proc)


def test_a_tiff_at_actual_size_is_shown_at_its_own_pixel_size(tmp_path, browser):
    """ "actual size" showed the file itself, which no browser draws when it is a TIFF: the
    page fell back to the fit and said it could not show it, so a scan's detail could not be
    read. A TIFF at actual size is a lossless copy a browser draws, of the file's own size."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from fishermask.label.project import Project

    folder = make_folder(tmp_path / "images", per_class=2)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(1100, 1500, 3), dtype=np.uint8)  # 1500 x 1100
    Image.fromarray(pixels).save(folder / "scan.tif")
    with Image.open(folder / "scan.tif") as im:
        assert im.format == "TIFF" and im.size == (1500, 1100)
    p = Project.init(tmp_path / "proj", folder, "red,green,blue", **(TINY | {"batch": 7}))
    p.run_round(train_model=False)
    browser.set_window_size(1200, 800)
    proc, wait = _open_page(p, browser)
    try:
        body = browser.find_element(By.TAG_NAME, "body")
        for _ in range(7):
            if browser.find_element(By.ID, "path").text == "scan.tif":
                break
            body.send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda d: (s := shown(d))["alt"].endswith("scan.tif") and s["zoom"])
        fit = shown(browser)
        assert fit["nw"] == 1024  # the page's copy of a large image
        assert (
            fit["dims"].startswith("1500 \u00d7 1100 px, shown at ")
            and fit["zoom"] == "actual size"
        )
        browser.find_element(By.ID, "zoom").click()
        wait.until(lambda d: shown(d)["zoom"] == "fit to frame" and shown(d)["nw"] == 1500)
        full = shown(browser)
        assert (full["nw"], full["nh"]) == (1500, 1100)  # the file's own size
        assert (full["w"], full["h"]) == (1500, 1100) and full["dims"] == "1500 \u00d7 1100 px"
        assert browser.find_element(By.ID, "message").text == ""
        # the copy is the file's pixels, lossless
        drawn = browser.execute_script(
            "const i = document.getElementById('image'), c = document.createElement('canvas');"
            "c.width = 4; c.height = 1; c.getContext('2d').drawImage(i, 0, 0);"
            "return Array.from(c.getContext('2d').getImageData(0, 0, 4, 1).data);"
        )
        assert [v for k, v in enumerate(drawn) if k % 4 != 3] == pixels[0, :4].ravel().tolist()
    finally:
        stop_server(proc)
        p.close()
