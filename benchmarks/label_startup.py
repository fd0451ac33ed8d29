"""Benchmark: wall time of one ``fishermask label ...`` command, start to exit (median of 5).

Each run is a fresh ``python -m fishermask.cli label ARGS`` with ``PYTHONPATH=SRC``, so two
checkouts can be compared on the same project. ``--make DIR`` first builds the project of
``tests/label/conftest.py``'s ``project`` fixture (24 PNGs of 8x8, 3 classes, quarter-width
CNN, one round without training) in ``DIR/proj``.

    python benchmarks/label_startup.py --make /tmp/ls
    python benchmarks/label_startup.py /work/main/src status /tmp/ls/proj
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def make(root: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.label.conftest import CLASSES, TINY, make_folder

    from fishermask.label.project import Project

    folder = make_folder(root / "images")
    p = Project.init(root / "proj", folder, ",".join(CLASSES), **TINY)
    p.run_round(train_model=False)
    p.close()


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--make", type=Path, metavar="DIR", help="build the project in DIR/proj")
    ap.add_argument("src", nargs="?", help="the src/ folder of the checkout to time")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="the arguments of `fishermask label`")
    return ap


def main(argv: list[str]) -> None:
    ap = build_parser()
    a = ap.parse_args(argv)
    if a.make is not None:
        make(a.make)
        return
    if a.src is None:
        ap.error("give SRC and the arguments of `fishermask label`, or --make DIR")
    src, args = a.src, a.args
    env = dict(os.environ, PYTHONPATH=src)
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "fishermask.cli", "label", *args],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ts.append(time.perf_counter() - t)
    load = Path("/proc/loadavg").read_text().split()[0]
    runs = " ".join(f"{x:.2f}" for x in ts)
    print(f"label {' '.join(args)}: median {statistics.median(ts):.2f} s  runs {runs}  load {load}")


if __name__ == "__main__":
    main(sys.argv[1:])
