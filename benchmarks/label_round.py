"""Benchmark: "next batch" on a 10 000-image folder (CIFAR-10 test JPEGs, 32x32, small CNN).

Starts `fishermask label serve` on loopback, imports LABELS true labels, then asks for the
next batch (POST /api/next) and measures the time until the new batch is committed (training
on every label + FisherMask query on QUERY_POOL random unseen images, in the worker process)
and then until the held-out accuracy estimate that follows it is written, while a client keeps
saving labels and reading /api/status to show the page never blocks meanwhile.

    python benchmarks/label_round.py --tarball ../shared/datasets/cifar10-jpeg.tar.gz --labels 500
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import httpx


def make_folder(tarball: Path, out: Path) -> Path:
    """The tarball's test split as <out>/test/<class>/*.jpg (10 000 images)."""
    if not (out / "test").is_dir():
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("test/")]
            tar.extractall(out, members=members, filter="data")
    return out / "test"


def rounds(project: Path) -> list[dict]:
    import json
    import sqlite3

    with sqlite3.connect(project / "project.sqlite") as db:
        return [
            {"id": i, "metrics": json.loads(m)}
            for i, m in db.execute("SELECT id, metrics FROM rounds")
        ]


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--tarball", type=Path, default=Path("../shared/datasets/cifar10-jpeg.tar.gz"))
    ap.add_argument("--labels", type=int, default=500, help="labels before the timed round")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument(
        "--query-pool", type=int, default=None, help="init's --query-pool (default: its default)"
    )
    return ap


def main() -> None:
    args = build_parser().parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="label-bench-"))
    folder = make_folder(args.tarball, work)
    classes = sorted(p.name for p in folder.iterdir())
    proj = work / "project"
    env = dict(os.environ, FISHERMASK_CACHE=str(work / "cache"))
    fm = [sys.executable, "-m", "fishermask.cli", "label"]
    if not proj.exists():
        t = time.perf_counter()
        subprocess.run(
            [
                *fm,
                "init",
                str(proj),
                "--images",
                str(folder),
                "--classes",
                ",".join(classes),
                "--no-progress",
                *([] if args.query_pool is None else ["--query-pool", str(args.query_pool)]),
            ],
            check=True,
            env=env,
        )
        print(
            "init (scan + decode 10 000 JPEGs + first diverse batch): "
            f"{time.perf_counter() - t:.1f} s"
        )
        per = args.labels // len(classes)
        rows = ["path,label"] + [
            f"{c}/{f.name},{c}" for c in classes for f in sorted((folder / c).iterdir())[:per]
        ]
        (work / "labels.csv").write_text("\n".join(rows) + "\n")
        subprocess.run([*fm, "add", str(proj), str(work / "labels.csv")], check=True, env=env)

    server = subprocess.Popen(
        [*fm, "serve", str(proj), "--port", "0"], stdout=subprocess.PIPE, text=True, env=env
    )
    assert server.stdout is not None
    url = ""
    while not url:
        line = server.stdout.readline()
        m = re.search(r"(http://\S+)/\?token=(\S+)", line)
        if m:
            url = line
    base, token = m.groups()
    auth = {"Authorization": f"Bearer {token}"}
    lat_label: list[float] = []
    lat_status: list[float] = []
    stop = threading.Event()

    def keep_labeling() -> None:  # one labeler clicking about 5 times a second
        with httpx.Client(base_url=base, headers=auth, timeout=30) as c:
            ids = [it["image_id"] for it in c.get("/api/batch").json()["items"]]
            k = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                r = c.post("/api/labels", json={"image_id": ids[k % len(ids)], "label": classes[0]})
                lat_label.append(time.perf_counter() - t0)
                assert r.status_code == 200
                t0 = time.perf_counter()
                c.get("/api/status")
                lat_status.append(time.perf_counter() - t0)
                k += 1
                time.sleep(0.2)

    try:
        with httpx.Client(base_url=base, headers=auth, timeout=30) as c:
            before = c.get("/api/status").json()["queue_round"]
            labeler = threading.Thread(target=keep_labeling)
            labeler.start()
            t0 = time.perf_counter()
            assert c.post("/api/next").status_code == 202
            while True:
                s = c.get("/api/status").json()
                if not s["training"] and s["queue_round"] != before:
                    break
                if s["round"]["status"] in ("failed", "interrupted"):
                    raise SystemExit(f"round failed: {s['round']}")
                time.sleep(0.25)
            elapsed = time.perf_counter() - t0
            while s["estimating"] is not None:
                time.sleep(0.25)
                s = c.get("/api/status").json()
            estimated = time.perf_counter() - t0
            stop.set()
            labeler.join()
            acc = s["accuracy"]
            query = next(
                r["metrics"].get("query") for r in rounds(proj) if r["id"] == s["queue_round"]
            )
        lat_label.sort()
        lat_status.sort()

        def pct(v: list[float], q: float) -> float:
            return 1000 * v[min(len(v) - 1, int(q * len(v)))]

        print(
            f"next batch ready after {elapsed:.1f} s ({s['mode']}; query {query}); held-out "
            f"accuracy {100 * acc['accuracy']:.1f} % [{100 * acc['low']:.1f}, "
            f"{100 * acc['high']:.1f}] on {acc['n_eval']} labels, ready after {estimated:.1f} s"
        )
        print(
            f"during the round: {len(lat_label)} label saves, median "
            f"{1000 * statistics.median(lat_label):.1f} ms, p99 {pct(lat_label, 0.99):.1f} ms, "
            f"max {1000 * lat_label[-1]:.1f} ms; {len(lat_status)} status reads, "
            f"median {1000 * statistics.median(lat_status):.1f} ms, "
            f"p99 {pct(lat_status, 0.99):.1f} ms, max {1000 * lat_status[-1]:.1f} ms"
        )
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


if __name__ == "__main__":
    main()
