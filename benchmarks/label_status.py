"""Benchmark: the cost of one ``GET /api/status`` on a project with many label rows.

Builds a project (``fishermask label init`` on 3 small images), adds IMAGES image rows without
files (status never reads an image) and LABELS label rows over 3 annotators (each labels every
image once, then the rest are relabels; one in 50 actions is undone), then times, in the
server's own process and code path (``Project.status()``, what ``/api/status`` answers after
its worker poll):

- idle polls (no label given between two polls; what every page does every 1.5 s), and
- the poll right after one new label (every page's next poll after a save),

and ``Store.current`` / ``Store.current_by_annotator`` alone, idle.

    python benchmarks/label_status.py --labels 100000 --images 34000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def build(work: Path, n_images: int, n_labels: int) -> Path:
    from fishermask.label.project import Project

    folder = work / "images"
    for i, c in enumerate(("a", "b", "c")):
        (folder / c).mkdir(parents=True)
        a = np.zeros((8, 8, 3), np.uint8)
        a[:, :, i] = 200
        Image.fromarray(a).save(folder / c / "0.png")
    p = Project.init(work / "proj", folder, "a,b,c", image_size=(8, 8), width=0.25)
    p.store.add_images(
        (
            dict(path=f"fake/{i:07d}.png", sha256="0" * 64, bytes=1, width=8, height=8, mtime_ns=0)
            for i in range(n_images - 3)
        ),
        segment=p.store.next_segment(),
    )
    ids = [r.id for r in p.store.images()]
    rng = np.random.default_rng(0)
    done = 0
    who = ("ann", "bob", "cat")
    while done < n_labels:
        k = min(10_000, n_labels - done)
        acts = [(ids[(done + j) % len(ids)], "label", int(rng.integers(0, 3))) for j in range(k)]
        label_ids = p.store.add_labels(acts, annotator=who[(done // len(ids)) % 3])
        done += k
        for lid in label_ids[::50]:
            if done < n_labels:
                p.store.undo(lid)
                done += 1
    p.close()
    return work / "proj"


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def ms(v: list[float]) -> str:
    return f"median {statistics.median(v) * 1000:.1f} ms, max {max(v) * 1000:.1f} ms"


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", type=int, default=100_000)
    ap.add_argument("--images", type=int, default=34_000)
    ap.add_argument("--repeat", type=int, default=10)
    return ap


def main() -> None:
    args = build_parser().parse_args()
    from fishermask.label.project import Project

    with tempfile.TemporaryDirectory(prefix="label-status-") as tmp:
        t0 = time.perf_counter()
        path = build(Path(tmp), args.images, args.labels)
        p = Project(path)
        n = p.store.query("SELECT COUNT(*) AS n FROM labels")[0]["n"]
        print(
            f"project: {p.store.num_images()} images, {n} label rows, 3 annotators "
            f"(built in {time.perf_counter() - t0:.1f} s)"
        )
        p.status()  # the first poll after opening
        idle = timed(p.status, args.repeat)
        first = p.store.images()[0].id
        after = []
        for i in range(args.repeat):
            p.store.add_label(first, "label", i % 3, annotator="bob")
            after += timed(p.status, 1)
        cur = timed(p.store.current, args.repeat)
        by = timed(p.store.current_by_annotator, args.repeat)
        print(f"  /api/status (Project.status) idle, {args.repeat} polls: {ms(idle)}")
        print(f"  /api/status right after one new label, {args.repeat} times: {ms(after)}")
        print(f"  Store.current idle: {ms(cur)}")
        print(f"  Store.current_by_annotator idle: {ms(by)}")
        p.close()


if __name__ == "__main__":
    main()
