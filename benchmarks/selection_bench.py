"""Time greedy selection on BAIT- and FisherMask-shaped problems, today's vs the previous one.

The problem comes from an untrained CIFAR ResNet-18 on random 3x32x32 images (N candidates,
nL labeled): ``--problem bait`` uses BAIT's closed-form last-layer embeddings
(d = D * C, D = the embedding size at that width); ``--problem fishermask`` uses masked
per-sample gradients on a random mask of k = ``--sparsity`` * P weights reaching every
tensor. With ``--compare-baseline`` the previous implementation
(``benchmarks/legacy_selection.py``: float64 whenever the copy fits in 1 GiB, one rank-C
product per step) runs on the same V in the same process after the new one, and the picks
are compared.

    # BAIT, CIFAR-10 Setting 2 cpu-profile shape: N=6750, C=10, d=640, B=2000, 1 backward step
    python benchmarks/selection_bench.py --problem bait --compare-baseline
    # FisherMask, same pool: d=882 (width 1/8, sparsity 0.005), no backward steps
    python benchmarks/selection_bench.py --problem fishermask --backward-steps 0 --compare-baseline
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from legacy_selection import legacy_greedy_select  # noqa: E402

from fishermask.fisher import (  # noqa: E402
    bait_embeddings,
    bait_factors,
    greedy_select,
    masked_grads,
    mean_fisher,
    random_mask,
)
from fishermask.models import build_model  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def problem(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, tuple | None]:
    """``V_unlabeled [N, C, d]``, ``V_labeled [nL, C, d]`` (float32) from a random network,
    and for BAIT the factors of ``V_unlabeled`` (:func:`bait_factors`, as BAIT passes them)."""
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    model = build_model("resnet18", args.classes, (3, 32, 32), args.width).eval()
    total = args.pool + args.labeled
    images = torch.randn(total, 3, 32, 32, generator=gen)
    if args.problem == "bait":
        probs, embs = [], []
        with torch.no_grad():
            for start in range(0, total, 512):
                out = model.forward_features(images[start : start + 512])
                probs.append(torch.softmax(out.logits, 1))
                embs.append(out.embedding)
        embs, probs = torch.cat(embs), torch.cat(probs)
        v = bait_embeddings(embs, probs)
        a, e = bait_factors(embs[: args.pool], probs[: args.pool])
        factors = (a.contiguous(), e.contiguous())
    else:
        n_par = sum(p.numel() for p in model.parameters())
        k = max(1, round(args.sparsity * n_par))
        mask = random_mask(model, k, gen, min_per_tensor=1)
        factors = None
        v = torch.cat(
            [
                masked_grads(model, images[s : s + 256], mask, batch_size=256)
                for s in range(0, total, 256)
            ]
        )
    return v[: args.pool].contiguous(), v[args.pool :].contiguous(), factors


def cached_problem(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, tuple | None]:
    """:func:`problem`, kept in ``args.cache`` when given (rebuilt if its settings differ)."""
    key = {
        k: getattr(args, k)
        for k in ("problem", "pool", "labeled", "classes", "width", "sparsity", "seed")
    }
    if args.cache is not None and args.cache.exists():
        saved = torch.load(args.cache)
        if saved["key"] == key and (args.problem != "bait" or "factors" in saved):
            return saved["vu"], saved["vl"], saved.get("factors")
    vu, vl, factors = problem(args)
    if args.cache is not None:
        torch.save({"key": key, "vu": vu, "vl": vl, "factors": factors}, args.cache)
    return vu, vl, factors


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problem", choices=["bait", "fishermask"], default="bait")
    ap.add_argument("--pool", type=int, default=6750, help="unlabeled candidates N")
    ap.add_argument("--labeled", type=int, default=500)
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--backward-steps", type=int, default=1)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--width", type=float, default=0.125)
    ap.add_argument("--sparsity", type=float, default=0.005)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--device", default="cpu", help="where the selection runs (V is built on the CPU)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--cache",
        type=Path,
        help="file keeping V between runs (built and saved when missing, with its settings)",
    )
    ap.add_argument("--compare-baseline", action="store_true")
    ap.add_argument(
        "--dense",
        action="store_true",
        help="BAIT: do not pass the factors of V to greedy_select (BaitStrategy passes them)",
    )
    ap.add_argument(
        "--float64-products", action="store_true", help="also time product_dtype=float64"
    )
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    print(
        f"torch {torch.__version__} on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; "
        f"load average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}",
        flush=True,
    )
    start = time.perf_counter()
    vu, vl, factors = cached_problem(args)
    n, c, d = vu.shape
    print(
        f"{args.problem}: N={n} candidates, nL={vl.shape[0]}, C={c}, d={d}, B={args.budget}, "
        f"backward_steps={args.backward_steps}; V built in {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    vu, vl = vu.to(args.device), vl.to(args.device)
    new_kw = {"factors": factors} if factors is not None and not args.dense else {}
    fs = mean_fisher(vu, vl, dtype=torch.float64)
    kw = {"backward_steps": args.backward_steps, "pool_fisher": fs}
    steps = min((args.backward_steps + 1) * args.budget, n) + (
        min((args.backward_steps + 1) * args.budget, n) - args.budget
    )
    runs: dict[str, tuple[float, list[int]]] = {}

    def timed(name: str, fn) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        picked = fn().tolist()  # .tolist() waits for the device
        sec, cpu = time.perf_counter() - t0, time.process_time() - c0
        runs[name] = (sec, picked)
        load = os.getloadavg()[0]
        print(
            f"  {name:<34} {sec:8.1f} s  {sec / steps * 1e3:7.1f} ms/step  "
            f"(CPU time {cpu:.1f} s)  peak RSS {peak_rss_mb():.0f} MB  load {load:.2f}",
            flush=True,
        )

    stats: dict = {}
    timed(
        "greedy_select (float32 products)",
        lambda: greedy_select(vu, vl, args.budget, stats=stats, **kw, **new_kw),
    )
    print(f"    {stats}{'; BAIT factors passed' if new_kw else ''}", flush=True)
    if args.float64_products:
        timed(
            "greedy_select (float64 products)",
            lambda: greedy_select(vu, vl, args.budget, product_dtype=torch.float64, **kw, **new_kw),
        )
    if args.compare_baseline:
        timed(
            "previous (legacy_selection.py)",
            lambda: legacy_greedy_select(vu, vl, args.budget, **kw),
        )
        new, old = runs["greedy_select (float32 products)"], runs["previous (legacy_selection.py)"]
        first = next((i for i, (a, b) in enumerate(zip(new[1], old[1], strict=True)) if a != b), 0)
        same = (
            "identical"
            if new[1] == old[1]
            else f"DIFFERENT: {len(set(new[1]) & set(old[1]))}/{len(old[1])} in common, "
            f"first difference at pick {first}"
        )
        print(f"speed-up {old[0] / new[0]:.2f}x; picks {same}")
    load1 = os.getloadavg()
    print(f"load average at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} (2 cores shared)")


if __name__ == "__main__":
    main()
