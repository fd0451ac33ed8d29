"""Benchmark: latency of saving a label (POST /api/labels) under a bounded loopback load.

Starts `fishermask label serve` on 127.0.0.1 with a small project, then CLIENTS concurrent
clients each post REQUESTS labels back to back (keep-alive connections); every answer is a
200 that comes only after the label is committed (WAL, synchronous=FULL). Prints the latency
percentiles and checks that every acknowledged label is in the database.

    python benchmarks/label_save.py --clients 4 --requests 500
    python benchmarks/label_save.py --commit-only --requests 300   # Store.add_label alone

``--commit-only`` times the commit itself in one process (``Store.add_label`` back to back),
with the store's ``synchronous=FULL`` and, for comparison, ``NORMAL`` on the same database.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def commit_only(project: Path, n: int) -> None:
    from fishermask.label.store import DB_NAME, Store

    store = Store(project / DB_NAME)
    for mode in ("FULL", "NORMAL"):
        store._conn.execute(f"PRAGMA synchronous={mode}")
        lat = []
        for i in range(n):
            t0 = time.perf_counter()
            store.add_label(1 + i % 200, "label", i % 2)
            lat.append(time.perf_counter() - t0)
        v = np.sort(np.array(lat)) * 1000
        print(
            f"Store.add_label, WAL + synchronous={mode}, {n} in a row: p50 "
            f"{np.percentile(v, 50):.2f} ms, p99 {np.percentile(v, 99):.2f} ms, max {v[-1]:.2f} ms"
        )
    store.close()


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=500, help="per client")
    ap.add_argument("--commit-only", action="store_true", help="time Store.add_label alone")
    return ap


def main() -> None:
    args = build_parser().parse_args()
    work = Path(tempfile.mkdtemp(prefix="label-save-"))
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (work / "img" / c).mkdir(parents=True)
        for i in range(100):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
                work / "img" / c / f"{i}.png"
            )
    env = dict(os.environ, FISHERMASK_CACHE=str(work / "cache"))
    fm = [sys.executable, "-m", "fishermask.cli", "label"]
    subprocess.run(
        [
            *fm,
            "init",
            str(work / "p"),
            "--images",
            str(work / "img"),
            "--classes",
            "a,b",
            "--image-size",
            "16x16",
            "--no-progress",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    if args.commit_only:
        commit_only(work / "p", args.requests)
        return
    server = subprocess.Popen(
        [*fm, "serve", str(work / "p"), "--port", "0"], stdout=subprocess.PIPE, text=True, env=env
    )
    assert server.stdout is not None
    m = None
    while m is None:
        m = re.search(r"(http://\S+)/\?token=(\S+)", server.stdout.readline())
    base, token = m.groups()
    lat: list[float] = []
    acked: list[int] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
            for i in range(args.requests):
                body = {"image_id": 1 + (k * args.requests + i) % 200, "label": "ab"[i % 2]}
                t0 = time.perf_counter()
                r = c.post("/api/labels", json=body)
                dt = time.perf_counter() - t0
                assert r.status_code == 200, r.text
                with lock:
                    lat.append(dt)
                    acked.append(r.json()["label_id"])

    try:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    import sqlite3

    with sqlite3.connect(work / "p" / "project.sqlite") as db:
        stored = {r[0] for r in db.execute("SELECT id FROM labels")}
    assert set(acked) <= stored and len(set(acked)) == len(acked)
    v = np.sort(np.array(lat)) * 1000
    print(
        f"{len(v)} label saves from {args.clients} clients in {wall:.1f} s "
        f"({len(v) / wall:.0f}/s): p50 {np.percentile(v, 50):.1f} ms, p90 "
        f"{np.percentile(v, 90):.1f} ms, p99 {np.percentile(v, 99):.1f} ms, max {v[-1]:.1f} ms; "
        f"all {len(acked)} acknowledged labels in the database"
    )


if __name__ == "__main__":
    main()
