"""How the labeling page shows images of odd shapes and sizes, and lays itself out on a phone,
in headless Chromium (as tests/label/test_browser.py)."""

from __future__ import annotations

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


def shown(d) -> dict:
    """The batch image's path, rendered size, rendering and the frame's corner line."""
    return d.execute_script(
        "const i = document.getElementById('image'), r = i.getBoundingClientRect(),"
        " f = document.getElementById('frame').getBoundingClientRect();"
        "return {path: document.getElementById('path').textContent, w: r.width, h: r.height,"
        " fw: f.width, fh: f.height, nw: i.naturalWidth, nh: i.naturalHeight,"
        " rendering: getComputedStyle(i).imageRendering, alt: i.alt,"
        " dims: document.getElementById('dims').hidden ? null"
        " : document.getElementById('dims').textContent}"
    )


def test_an_image_keeps_its_shape_and_says_its_size(odd, browser):
    """A panorama was stretched to the frame's least height (256 px tall, a fifth as wide as
    it should be), every downscaled photo was drawn with blocky pixels, and an 8-pixel icon
    filled the frame with nothing saying how small it was. Each image now fits the frame with
    its shape, only an enlarged one is drawn with sharp pixels, and the frame's corner says the
    file's size and how much larger or smaller it is shown."""
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
    finally:
        stop_server(proc)
