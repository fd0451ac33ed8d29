"""Time the per-sample gradient calls of two fishermask source trees, interleaved in one process.

On a shared machine the load changes by the minute, so timing an old and a new version one
after the other compares the load as much as the code. Here both versions are imported into
one process (the old one first; its functions keep their own modules) and every call is
timed chunk by chunk, alternating old/new (and their order) on the same inputs and the same
model, so that load from other users hits both alike; with one torch thread the process CPU
time (``time.process_time``; total and the median of the per-chunk ratios) is reported
beside the wall time, as it depends less on how busy the machine is. Also reports how far
the results of the two versions are apart, and whether LPLgrad's top-``--budget`` picks
change.

Calls (ResNet-18 for CIFAR at width ``--width``, untrained, eval mode, random 3x32x32 inputs):
``entropy_gradnorm_scores`` (hooks, chunk 64; ``scheme="expected"``; ``method="func"``,
chunk 32), ``diag_fisher`` (chunk 64) and ``masked_grads`` (chunk 256, a random mask of
sparsity 0.002 reaching every tensor, as in ``benchmarks/fisher_query.py``).

    python benchmarks/compare_sources.py OLD_SRC NEW_SRC [--reps 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable

import torch


def load(src: str) -> dict[str, Callable]:
    """The functions under test from the fishermask package in ``src``."""
    for name in [m for m in sys.modules if m == "fishermask" or m.startswith("fishermask.")]:
        del sys.modules[name]
    sys.path.insert(0, src)
    try:
        fisher = importlib.import_module("fishermask.fisher")
        strategies = importlib.import_module("fishermask.strategies")
        models = importlib.import_module("fishermask.models")
    finally:
        sys.path.remove(src)
    assert fisher.__file__.startswith(os.path.abspath(src)), fisher.__file__
    return {
        "gradnorm": strategies.entropy_gradnorm_scores,
        "diag_fisher": fisher.diag_fisher,
        "masked_grads": fisher.masked_grads,
        "random_mask": fisher.random_mask,
        "build_model": models.build_model,
    }


def _median_ratio(cpu: dict[str, list[float]]) -> float:
    """Median over chunks of new / old CPU time (the two ran back to back on each chunk)."""
    ratios = sorted(b / a for a, b in zip(cpu["old"], cpu["new"], strict=True))
    return ratios[len(ratios) // 2]


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", help="the src/ folder of the old version")
    ap.add_argument("new", help="the src/ folder of the new version")
    ap.add_argument("--reps", type=int, default=4, help="chunks per call and version")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--budget", type=int, default=50, help="top-k compared for LPLgrad")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--calls", default="", help="comma-separated labels to time (default: all)")
    return ap


def main() -> None:
    ap = build_parser()
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    versions = {"old": load(args.old), "new": load(args.new)}
    new = versions["new"]
    torch.manual_seed(0)
    model = new["build_model"]("resnet18", 10, (3, 32, 32), args.width).eval()
    mask = new["random_mask"](model, 1403, torch.Generator().manual_seed(0), min_per_tensor=1)
    gen = torch.Generator().manual_seed(1)

    calls: dict[str, tuple[int, Callable[[dict, torch.Tensor], torch.Tensor]]] = {
        "gradnorm hooks": (64, lambda v, x: v["gradnorm"](model, x, batch_size=64)),
        "gradnorm expected": (
            64,
            lambda v, x: v["gradnorm"](model, x, scheme="expected", batch_size=64),
        ),
        "gradnorm func": (32, lambda v, x: v["gradnorm"](model, x, method="func", batch_size=32)),
        "diag_fisher": (
            64,
            lambda v, x: torch.cat([t.flatten() for t in v["diag_fisher"](model, x).values()]),
        ),
        "masked_grads": (256, lambda v, x: v["masked_grads"](model, x, mask, batch_size=256)),
    }
    load0 = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, reps {args.reps}")
    cols = "old CPU s | new CPU s | new / old | median chunk new / old | old wall s | new wall s"
    cols += " | new / old"
    print(f"| call | images | {cols} | max rel. difference |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    picks = {}
    wanted = args.calls.split(",") if args.calls else list(calls)
    unknown = [c for c in wanted if c not in calls]
    if unknown:
        ap.error(f"unknown calls {unknown}; choose from {list(calls)}")
    for label, (chunk, fn) in calls.items():
        if label not in wanted:
            continue
        total = {"old": 0.0, "new": 0.0}
        cpu: dict[str, list[float]] = {"old": [], "new": []}
        outs: dict[str, list[torch.Tensor]] = {"old": [], "new": []}
        for rep in range(args.reps):
            x = torch.randn(chunk, 3, 32, 32, generator=gen)
            order = ("old", "new") if rep % 2 == 0 else ("new", "old")
            for which in order:
                t0, c0 = time.perf_counter(), time.process_time()
                outs[which].append(fn(versions[which], x))
                total[which] += time.perf_counter() - t0
                cpu[which].append(time.process_time() - c0)
        a, b = torch.cat(outs["old"]), torch.cat(outs["new"])
        rel = ((a - b).abs().max() / a.abs().max()).item()
        n = chunk * args.reps
        print(
            f"| {label} | {n} | {sum(cpu['old']):.2f} | {sum(cpu['new']):.2f} "
            f"| {sum(cpu['new']) / sum(cpu['old']):.2f} | {_median_ratio(cpu):.2f} "
            f"| {total['old']:.2f} | {total['new']:.2f} | {total['new'] / total['old']:.2f} "
            f"| {rel:.1e} |",
            flush=True,
        )
        if label == "gradnorm hooks":
            unequal = int((a != b).sum())
            picks = {w: set(torch.argsort(-s, stable=True)[: args.budget].tolist())
                     for w, s in (("old", a), ("new", b))}  # fmt: skip
    if not picks:
        return
    same = len(picks["old"] & picks["new"])
    print(
        f"\nLPLgrad (hooks): {unequal} of {args.reps * 64} scores differ between old and new; "
        f"top-{args.budget}: {same} picks shared; "
        f"load average {load0:.1f} before / {os.getloadavg()[0]:.1f} after"
    )


if __name__ == "__main__":
    main()
