"""Time and memory of one BatchBALD selection (greedy joint mutual information).

Index convention: T MC-dropout samples, U pool candidates, C classes, B batch size,
M sampled joint configurations.

Input: MC probabilities ``[T, U, C]`` from random logits (scale 3, so the passes are
peaked and disagree; the cost does not depend on the values). Each batch size runs in a
fresh subprocess so that its peak resident memory is its own; the table gives wall time,
the exact / sampled split of the greedy steps, peak RSS and the bound of the joint
tensors from :mod:`fishermask.strategies.batchbald`.

    .venv/bin/python benchmarks/batchbald_query.py                   # U=5000, T=20, B=50,100
    .venv/bin/python benchmarks/batchbald_query.py --quick           # smoke test (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch


def one(args: argparse.Namespace, budget: int) -> dict:
    from fishermask.strategies.batchbald import batchbald_select

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    logits = 3.0 * torch.randn(args.samples, args.pool, args.classes, generator=g)
    probs = logits.softmax(dim=-1).to(args.device)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    picks, scores = batchbald_select(
        probs, budget, num_samples=args.num_samples, generator=torch.Generator().manual_seed(1)
    )
    if probs.is_cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    exact_steps = 1  # picks made while the joint of the chosen items is exact (C^n <= M)
    while args.classes**exact_steps <= args.num_samples:
        exact_steps += 1
    return {
        "budget": budget,
        "seconds": seconds,
        "exact_steps": min(budget, exact_steps),
        "sampled_steps": max(0, budget - exact_steps),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": rss0,
        "joint_mi": float(scores[-1]),
        "unique": len(set(picks.tolist())),
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if probs.is_cuda else None,
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", type=int, default=5000)
    ap.add_argument("--samples", type=int, default=20, help="T, MC-dropout passes")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--budgets", default="50,100")
    ap.add_argument("--num-samples", type=int, default=1000, help="M (the strategy default)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    return ap


def main() -> None:
    args = build_parser().parse_args()
    if args.quick:
        args.pool, args.budgets = 500, "5,10"
    if args.child:
        print(json.dumps(one(args, args.child)))
        return
    base = [a for a in sys.argv[1:] if a != "--quick"]
    if args.quick:
        base += ["--pool", str(args.pool)]
    print(
        f"# BatchBALD: U={args.pool} T={args.samples} C={args.classes} M={args.num_samples} "
        f"threads={args.threads} device={args.device}; torch {torch.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    print("| B | seconds | s / step | exact steps | sampled steps | peak RSS MB | joint MI |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for b in (int(x) for x in args.budgets.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, *base, "--child", str(b)],
            check=True,
            capture_output=True,
            text=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        assert r["unique"] == b
        print(
            f"| {b} | {r['seconds']:.1f} | {r['seconds'] / b:.2f} | {r['exact_steps']} | "
            f"{r['sampled_steps']} | {r['peak_rss_mb']:.0f} | {r['joint_mi']:.3f} |",
            flush=True,
        )
    print(f"# load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
