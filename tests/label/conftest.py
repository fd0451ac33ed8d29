"""Tiny labeling projects: 3 classes of 8x8 colour images, a quarter-width CNN, few steps."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("red", "green", "blue")
TOKEN = "test-token"  # the access token of the `client` fixture's server
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_folder(root: Path, per_class: int = 8, size: int = 8, seed: int = 0) -> Path:
    """``root/<class>/<i>.png``: noisy images whose dominant channel is the class."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = rng.integers(0, 90, size=(size, size, 3), dtype=np.uint8)
            a[:, :, c] = rng.integers(160, 256, size=(size, size), dtype=np.uint8)
            Image.fromarray(a).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FISHERMASK_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "images")


TINY = dict(
    image_size=(8, 8),
    model="cnn",
    width=0.25,
    batch=6,
    min_per_class=2,
    max_epochs=3,
    max_steps=6,
)


@pytest.fixture
def project(tmp_path: Path, folder: Path):
    from fishermask.label.project import Project

    p = Project.init(tmp_path / "proj", folder, ",".join(CLASSES), **TINY)
    p.run_round(train_model=False)
    yield p
    p.close()


@contextlib.contextmanager
def api_client(project_dir: Path, annotators: tuple[str, ...] = (), **options):
    """FastAPI's test client on a server of the project in ``project_dir`` (token ``TOKEN``,
    and ``annotators``' own; ``options`` of :func:`create_app`); ``client.project`` is the
    server's own Project; the server's worker is stopped after."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from fishermask.label.server import create_app

    app = create_app(project_dir, TOKEN, annotators, **options)
    try:
        with TestClient(app) as c:
            c.project = app.state.project
            yield c
    finally:
        app.state.worker.stop()


@pytest.fixture
def client(project):
    """:func:`api_client` on the ``project`` fixture."""
    with api_client(project.dir) as c:
        yield c


def make_store(path: Path, n_images: int):
    """A bare Store (classes a, b) with ``n_images`` placeholder images ``0.png``, ...: for
    tests of the store alone (no files, no decoding)."""
    from fishermask.label.store import Store

    s = Store(path, create=True)
    s.set_classes(["a", "b"])
    s.add_images(
        (
            {"path": f"{i}.png", "sha256": "x", "bytes": 1, "width": 1, "height": 1, "mtime_ns": 0}
            for i in range(n_images)
        ),
        segment=0,
    )
    return s


def wait_for_round(client, timeout: float = 120.0) -> dict:
    """Poll ``GET /api/status`` until no round is training (at most ``timeout`` seconds);
    the last status read."""
    deadline = time.time() + timeout
    while True:
        s = client.get("/api/status", headers=AUTH).json()
        if not s["training"] or time.time() >= deadline:
            return s
        time.sleep(0.3)


def label_truth(project, n_per_class: int) -> None:
    """Label the first ``n_per_class`` images of each class with their folder's class."""
    rows = []
    for c in CLASSES:
        for i in range(n_per_class):
            rows.append((f"{c}/{i:03d}.png", c))
    project.add_label_rows(rows, source="import", what="test")


def stored_config(project) -> bytes:
    """Classes, settings, their history and the labels as stored: equal before and after a
    refused change when it wrote none of them."""
    from fishermask.label.store import DB_NAME

    with sqlite3.connect(project.dir / DB_NAME) as c:
        rows = c.execute("SELECT * FROM classes ORDER BY id").fetchall()
        rows += c.execute("SELECT * FROM meta ORDER BY key").fetchall()
        rows += c.execute("SELECT * FROM settings_history").fetchall()
        rows += c.execute("SELECT * FROM labels").fetchall()
    return json.dumps(rows).encode()


@pytest.fixture
def trained(project):
    """The project with 2 labels per class and a model of its 3 classes (a test file may
    define its own ``trained``, which then takes precedence)."""
    label_truth(project, 2)
    project.run_round(train_model=True)
    return project


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
NO_BROWSER = "no headless browser: install one with `sudo apt-get install chromium chromium-driver`"
#: Marks a test (``pytestmark``: a file) that needs the headless browser: skipped without it.
browser_only = pytest.mark.skipif(CHROMIUM is None or DRIVER is None, reason=NO_BROWSER)


def _start_chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,800",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    return driver


def _fresh_tab(driver) -> None:
    """Leave ``driver`` as a new one would be for the next test: every tab's storage cleared
    (sessionStorage holds the page's token, localStorage whether the help is closed: their
    origin's port could come again), then one new blank tab, so no emulated screen size,
    resource timing or page script of a test outlives it; downloads back to the default."""
    old = driver.window_handles
    for handle in old:
        driver.switch_to.window(handle)
        with contextlib.suppress(Exception):  # a page of no origin (about:blank) has none
            driver.execute_script("localStorage.clear(); sessionStorage.clear()")
    driver.switch_to.new_window("tab")
    new = driver.current_window_handle
    for handle in old:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(new)
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "default"})


@pytest.fixture(scope="session")
def _chromium():
    """One headless Chromium for the session (starting one took 1.5-4 s, once per browser
    test); ``browser`` hands each test a fresh tab of it."""
    drivers = []
    yield drivers
    for d in drivers:
        with contextlib.suppress(Exception):
            d.quit()


@pytest.fixture
def browser(_chromium):
    """A headless Chromium (1200x800) in a fresh tab, as a new one: the session's, its storage
    cleared after each test (a new one if a test left it unusable)."""
    if CHROMIUM is None or DRIVER is None:
        pytest.skip(NO_BROWSER)
    if _chromium:
        try:
            assert _chromium[0].window_handles
        except Exception:
            with contextlib.suppress(Exception):
                _chromium[0].quit()
            _chromium.clear()
    if not _chromium:
        _chromium.append(_start_chromium())
    driver = _chromium[0]
    yield driver
    try:
        _fresh_tab(driver)
    except Exception:  # not reusable: the next test starts a new one
        with contextlib.suppress(Exception):
            driver.quit()
        _chromium.clear()


class TeamServer:
    """A ``label serve --annotators ...`` process a browser test started: ``proc``, the
    owner's ``url`` and each annotator's in ``urls`` (the lines serve prints after the
    owner's)."""

    def __init__(self, proc, url: str, urls: dict[str, str]) -> None:
        self.proc, self.url, self.urls = proc, url, urls


@pytest.fixture
def team_server():
    """Starts ``label serve PROJECT --annotators NAMES ARGS`` (``start(project_dir, names,
    *args)``, names a tuple): a :class:`TeamServer` once every URL is read. Every server it
    started is stopped when the test ends (Ctrl-C; one the test stopped or killed itself
    is left as it is), so a test stops one itself only to restart it or read what it left."""
    import re

    from tests.label.test_kill import start_server, stop_server

    started = []

    def start(project_dir: Path, names: tuple[str, ...] = ("alice",), *args: str) -> TeamServer:
        proc, owner, _ = start_server(project_dir, "--annotators", ",".join(names), *args)
        started.append(proc)
        urls = {}
        for name in names:
            line = proc.stdout.readline()
            m = re.search(rf"labeling page for {re.escape(name)}: (http://\S+)", line)
            assert m, line
            urls[name] = m.group(1)
        return TeamServer(proc, re.search(r"http://\S+", owner).group(0), urls)

    yield start
    for proc in started:
        if proc.poll() is None:
            stop_server(proc)


def page_text(driver, id_: str) -> str:
    """The text of the page's element ``id_`` (the message line: ``message``)."""
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, id_).text
