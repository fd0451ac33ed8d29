"""The README's "Label your own images" walkthrough, run as written, and the page's screenshot.

    python benchmarks/label_walkthrough.py [--workdir DIR] [--labels 50] \\
        [--screenshot docs/label_page.png]

The commands come from the README itself: the first ```bash block under "## Label your own
images" (so the README and this check cannot drift apart). They run in a fresh folder
(``--workdir``, default a temporary one), with two changes that the folder requires: the
CIFAR-10 tarball's relative path ``../shared/...`` is made absolute, and ``label serve`` runs
in the background with ``--port 0`` (a free port), its URL read from what it prints. While it
serves, the script labels ``--labels`` images of the current batch through the JSON API with
their true classes (the images' folder names), asks for the next batch and waits until it is
committed, opens the page in headless Chromium (Debian's ``chromium`` + ``chromium-driver``)
and saves the screenshot. Then it stops the server, runs the export line and checks that the
CSV holds exactly the labels it posted. Prints each step with its time; exits non-zero on any
failure.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The walkthrough's commands, continuation lines joined, comments dropped."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Label your own images", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip()]


def api(base: str, token: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def step(msg: str, t0: float) -> None:
    print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, help="where to run (default: a temporary folder)")
    ap.add_argument("--labels", type=int, default=50, help="batch images to label")
    ap.add_argument("--screenshot", type=Path, help="where to save the page's screenshot")
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for next batch")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="fm_walkthrough_"))
    work.mkdir(parents=True, exist_ok=True)
    tarball = (REPO.parent / "shared/datasets/cifar10-jpeg.tar.gz").resolve()
    fm = str(Path(sys.executable).parent / "fishermask")
    t0 = time.perf_counter()
    cmds = readme_commands()
    print(f"README commands ({len(cmds)}), run in {work}:", *cmds, sep="\n  ", flush=True)
    serve = next(c for c in cmds if c.startswith("fishermask label serve"))
    export = next(c for c in cmds if c.startswith("fishermask label export"))
    for cmd in cmds[: cmds.index(serve)]:
        cmd = cmd.replace("../shared/datasets/cifar10-jpeg.tar.gz", str(tarball))
        cmd = re.sub(r"^fishermask ", shlex.quote(fm) + " ", cmd)
        subprocess.run(cmd, shell=True, cwd=work, check=True)
        step(f"done: {cmd}", t0)

    argv_serve = [fm, *shlex.split(serve)[1:], "--port", "0"]
    proc = subprocess.Popen(argv_serve, cwd=work, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            print("  serve: " + line.rstrip(), flush=True)
            m = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
            if m:
                url, base, token = m.group(0), m.group(1), m.group(2)
                break
        if url is None:
            raise SystemExit("label serve printed no URL")
        step(f"serving at {base}", t0)
        posted: dict[str, str] = {}
        batch = api(base, token, "/api/batch")
        for item in batch["items"][: args.labels]:
            true = Path(item["path"]).parts[0]  # relative to the image folder: <class>/<file>.jpg
            api(base, token, "/api/labels", {"image_id": item["image_id"], "label": true})
            posted[item["path"]] = true
        step(f"labeled {len(posted)} images of round {batch['round_id']} via POST /api/labels", t0)
        api(base, token, "/api/next", {})
        deadline = time.time() + args.timeout
        while api(base, token, "/api/batch")["round_id"] == batch["round_id"]:
            if time.time() > deadline:
                raise SystemExit(f"no next batch within {args.timeout:.0f} s")
            time.sleep(1)
        step("next batch committed", t0)
        if args.screenshot:
            shoot(url, args.screenshot)
            step(f"screenshot: {args.screenshot}", t0)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    cmd = re.sub(r"^fishermask ", shlex.quote(fm) + " ", export)
    subprocess.run(cmd, shell=True, cwd=work, check=True)
    out = work / shlex.split(export)[shlex.split(export).index("--out") + 1]
    with open(out, newline="") as f:
        got = {r["path"]: r["label"] for r in csv.DictReader(f)}
    if got != posted:
        raise SystemExit(f"{out} holds {len(got)} labels, not the {len(posted)} posted")
    step(f"done: {export}: {len(got)} labels, exactly those posted", t0)
    if not args.workdir:
        shutil.rmtree(work)
    return 0


def shoot(url: str, path: Path) -> None:
    """Open the page in headless Chromium, wait for the image, save a screenshot."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        raise SystemExit("no chromium: sudo apt-get install chromium chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    opts.add_argument("--window-size=1200,800")
    d = webdriver.Chrome(service=Service(driver), options=opts)
    try:
        d.get(url)
        WebDriverWait(d, 60).until(lambda d: d.find_element(By.ID, "image").get_attribute("src"))
        time.sleep(1)  # the chart and the status line fill in after the image
        path.parent.mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(path))
    finally:
        d.quit()


if __name__ == "__main__":
    sys.exit(main())
