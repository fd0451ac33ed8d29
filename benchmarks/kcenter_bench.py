"""Time k-center greedy, today's (matrix products + exact re-checks) vs the previous forms.

One process, the same embeddings, one torch thread by default (the runs use 2 worker
processes x 1 thread). For each ``--shapes`` entry ``nL:U:B`` (labeled centers, unlabeled
candidates, budget) the new ``k_center_greedy`` runs first, then the slow exact form it must
equal (``benchmarks/legacy_kcenter.py``: ``exact_k_center_greedy``, every distance by the
broadcast formula) and, with ``--cdist``, the form before exact ties (``torch.cdist``
for the labeled centers; its picks may differ). Positions and distances of new and exact
are compared bit for bit.

Embeddings (``--embeddings``):
  resnet    an untrained CIFAR ResNet-18 at ``--width`` on random 3x32x32 images
            (D = 512 x width: 64 at the cpu profile's 1/8)
  clusters  10 Gaussian clusters in ``--dim`` dimensions, Setting 2 class sizes (nine
            classes of 1/29 of the points, one of 20/29), passed through ReLU
  FILE.npy  rows of a saved ``[N, D]`` matrix drawn with ``--seed`` (for example the output
            of ``benchmarks/cifar10_features.py``)

    # CIFAR-10 Setting 2 cpu profile (pool 7 250, D = 64): first query (500 labeled,
    # B = 1 200 and the first profile's 2 000) and a late one (4 100 labeled)
    python benchmarks/kcenter_bench.py --embeddings resnet --width 0.125 \
        --shapes 500:6750:1200 500:6750:2000 4100:3150:1200
    # width 1 (D = 512), synthetic embeddings of that size
    python benchmarks/kcenter_bench.py --embeddings clusters --dim 512 --shapes 500:6750:2000
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from legacy_kcenter import cdist_k_center_greedy, exact_k_center_greedy  # noqa: E402

from fishermask.models import build_model  # noqa: E402
from fishermask.strategies.kcenter import k_center_greedy  # noqa: E402


def embeddings(args: argparse.Namespace, n: int) -> torch.Tensor:
    """``[n, D]`` float32 embeddings in a seeded random order."""
    gen = torch.Generator().manual_seed(args.seed)
    if args.embeddings == "resnet":
        torch.manual_seed(args.seed)
        model = build_model("resnet18", 10, (3, 32, 32), args.width).eval()
        images = torch.randn(n, 3, 32, 32, generator=gen)
        with torch.no_grad():
            parts = [
                model.forward_features(images[s : s + 256]).embedding for s in range(0, n, 256)
            ]
        return torch.cat(parts).contiguous()
    if args.embeddings == "clusters":
        sizes = [n // 29] * 9
        sizes.append(n - sum(sizes))
        means = torch.randn(10, args.dim, generator=gen)
        y = torch.cat([torch.full((k,), c) for c, k in enumerate(sizes)])
        x = (means[y] + 0.7 * torch.randn(n, args.dim, generator=gen)).relu()
        return x[torch.randperm(n, generator=gen)].contiguous()
    saved = torch.from_numpy(np.load(args.embeddings)).to(torch.float32)
    return saved[torch.randperm(len(saved), generator=gen)[:n]].contiguous()


def timed(
    name: str, fn, x: torch.Tensor, c: torch.Tensor, budget: int, seed: int
) -> tuple[float, list[int], list[float]]:
    """Run one form; print and return ``(seconds, positions, distances)``."""
    start = time.perf_counter()
    pick, dist = fn(x, c, budget, generator=torch.Generator().manual_seed(seed))
    pick, dist = pick.tolist(), dist.tolist()  # waits for the device
    sec = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  {name:<28} {sec:8.2f} s  peak RSS {rss:.0f} MB  load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    return sec, pick, dist


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embeddings", default="resnet", help="resnet, clusters or FILE.npy")
    ap.add_argument("--width", type=float, default=0.125)
    ap.add_argument("--dim", type=int, default=64, help="D for --embeddings clusters")
    ap.add_argument("--shapes", nargs="+", default=["500:6750:1200"], help="nL:U:B ...")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="where the new form's products run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cdist", action="store_true", help="also time the cdist form")
    ap.add_argument("--no-exact", action="store_true", help="skip the slow exact form")
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    shapes = [tuple(int(v) for v in s.split(":")) for s in args.shapes]
    load = os.getloadavg()
    print(
        f"torch {torch.__version__} on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; "
        f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )
    t0 = time.perf_counter()
    emb = embeddings(args, max(nl + u for nl, u, _ in shapes))
    print(
        f"embeddings {args.embeddings}: {tuple(emb.shape)} in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    for nl, u, b in shapes:
        lab, unl = emb[:nl], emb[nl : nl + u]
        print(f"nL={nl} U={u} D={emb.shape[1]} B={b}", flush=True)
        runs: dict[str, tuple[float, list[int], list[float]]] = {}

        dev = torch.device(args.device)
        runs["new"] = timed(
            "new (products + re-check)", k_center_greedy, unl.to(dev), lab.to(dev), b, args.seed
        )
        if not args.no_exact:
            runs["exact"] = timed(
                "exact broadcast (7131caa)", exact_k_center_greedy, unl, lab, b, args.seed
            )
            new, old = runs["new"], runs["exact"]
            same = new[1] == old[1] and new[2] == old[2]
            print(
                f"  speed-up {old[0] / new[0]:.1f}x; positions and distances identical: {same}",
                flush=True,
            )
            if not same:
                raise SystemExit("the new k-center greedy differs from the exact form")
        if args.cdist:
            timed("cdist (before 7131caa)", cdist_k_center_greedy, unl, lab, b, args.seed)


if __name__ == "__main__":
    main()
