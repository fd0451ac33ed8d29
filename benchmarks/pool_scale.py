"""Selection over the full CIFAR-10 pool (N = 50 000): time and peak memory, one method per run.

Each run is a separate process, so its peak RSS (the process's high-water mark, printed after
every stage) is that method's alone.

- ``fishermask``: masked per-sample gradients (k = sparsity x P on a random mask reaching every
  tensor) of an untrained CIFAR ResNet-18 at ``--width`` are computed for ``--grad-images``
  random 3x32x32 images (timed, beside the C-pass floor), then tiled with 10 % multiplicative
  noise to the ``[N, C, k]`` float32 V of the whole pool (so that the selection sees a
  realistic spread without hours of gradients on this CPU); pool Fisher; greedy selection.
- ``bait``: BAIT's closed-form embeddings ``[N, C, C D]`` from random embeddings (ReLU of
  Gaussians, D = the network's embedding size at ``--width``) and softmax probabilities;
  greedy selection with one backward step.
- ``badge``: k-means++ seeding on the factorised gradient embeddings of the same inputs.

    python benchmarks/pool_scale.py fishermask --pool 50000 --labeled 1000 --batch 1000
    python benchmarks/pool_scale.py bait --pool 50000 --labeled 1000 --batch 1000
    python benchmarks/pool_scale.py badge --pool 50000 --labeled 1000 --batch 1000
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import torch

from fishermask.fisher import bait_embeddings, greedy_select, masked_grads, mean_fisher, random_mask
from fishermask.models import build_model
from fishermask.strategies.badge import badge_factors, kmeans_pp_seeding


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage(name: str, start: float) -> float:
    now = time.perf_counter()
    print(
        f"  {name:<40} {now - start:9.1f} s   peak RSS {rss_mb():7.0f} MB   "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return now


def floor_chunk(model: torch.nn.Module, x: torch.Tensor) -> None:
    """One forward and C ordinary backward passes (batched weight gradients)."""
    params = list(model.parameters())
    logits = model(x)
    probs = torch.softmax(logits.detach(), 1)
    for c in range(logits.shape[1]):
        cot = -probs.clone()
        cot[:, c] += 1
        cot *= probs[:, c : c + 1].sqrt()
        torch.autograd.grad(logits, params, cot, retain_graph=c < logits.shape[1] - 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("method", choices=["fishermask", "bait", "badge"])
    ap.add_argument("--pool", type=int, default=50000, help="pool size N, labeled included")
    ap.add_argument("--labeled", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=1000, help="query batch size B")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--sparsity", type=float, default=0.002)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--grad-images", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    n_unl = args.pool - args.labeled
    model = build_model("resnet18", args.classes, (3, 32, 32), args.width).eval()
    print(
        f"{args.method}: pool N={args.pool} ({args.labeled} labeled), B={args.batch}, "
        f"ResNet-18 width {args.width}, {torch.get_num_threads()} thread(s), "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    t = time.perf_counter()
    if args.method == "fishermask":
        total = sum(p.numel() for p in model.parameters())
        k = round(args.sparsity * total)
        mask = random_mask(model, k, gen, min_per_tensor=1)
        images = torch.randn(args.grad_images, 3, 32, 32, generator=gen)
        t_grad = t_floor = 0.0
        parts = []
        for s in range(0, args.grad_images, 256):
            x = images[s : s + 256]
            t0 = time.perf_counter()
            parts.append(masked_grads(model, x, mask, batch_size=len(x)))
            t1 = time.perf_counter()
            floor_chunk(model, x)
            t_grad, t_floor = t_grad + t1 - t0, t_floor + time.perf_counter() - t1
        sample = torch.cat(parts)
        print(
            f"  k={k}; masked gradients {t_grad / args.grad_images * 1e3:.2f} ms/image, floor "
            f"(C batched backward passes) {t_floor / args.grad_images * 1e3:.2f} ms/image: "
            f"ratio {t_grad / t_floor:.2f}; for {args.pool} images "
            f"{t_grad / args.grad_images * args.pool:.0f} s vs floor "
            f"{t_floor / args.grad_images * args.pool:.0f} s (extrapolated)",
            flush=True,
        )
        t = stage("gradients on the sample", t)
        v = torch.empty(args.pool, args.classes, k)  # the pool's V, filled in chunks
        for s in range(0, args.pool, 4096):
            e = min(s + 4096, args.pool)
            src = sample[torch.randint(len(sample), (e - s,), generator=gen)]
            v[s:e] = src * (1 + 0.1 * torch.randn(src.shape, generator=gen))
        del sample, parts
        t = stage(
            f"V [{args.pool}, {args.classes}, {k}] float32 ({v.numel() * 4 / 2**30:.2f} GiB)", t
        )
    else:
        dim = model.embedding_dim
        emb = torch.randn(args.pool, dim, generator=gen).relu()
        probs = torch.softmax(2 * torch.randn(args.pool, args.classes, generator=gen), 1)
        if args.method == "badge":
            u, e = badge_factors(emb[args.labeled :], probs[args.labeled :])
            t = stage("embeddings", t)
            kmeans_pp_seeding(u, args.batch, factor=e, generator=gen)
            stage("k-means++ seeding (BADGE)", t)
            return
        v = bait_embeddings(emb, probs)
        del emb, probs
        t = stage(
            f"V [{args.pool}, {args.classes}, {v.shape[2]}] ({v.numel() * 4 / 2**30:.2f} GiB)", t
        )
    vu, vl = v[args.labeled :], v[: args.labeled]  # views
    fs = mean_fisher(vu, vl, dtype=torch.float64)
    t = stage("pool Fisher", t)
    stats: dict = {}
    back = 1 if args.method == "bait" else 0
    greedy_select(vu, vl, args.batch, backward_steps=back, pool_fisher=fs, stats=stats)
    steps = stats["steps"]
    now = time.perf_counter()
    stage(f"greedy selection ({steps} steps, {(now - t) / steps * 1e3:.0f} ms/step)", t)
    print(f"  {stats}; unlabeled candidates {n_unl}")


if __name__ == "__main__":
    main()
