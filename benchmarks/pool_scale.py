"""One query over the full CIFAR-10 pool (N = 50 000): time and peak memory by stage.

One method per process (its peak RSS is that method's alone), through the library's own code:

- ``fishermask``: ``FisherMaskStrategy.select`` (diagonal Fisher on 1 024 pool images, the
  standard Fisher mask of k = sparsity x P weights, masked per-sample gradients of every pool
  image written chunk by chunk into one float32 V, the pool Fisher F_S in float64 over chunks,
  greedy selection). Beside it the *floor* of the gradient stage: C ordinary batched backward
  passes over ``--floor-images`` pool images, timed before and after the query and
  extrapolated to the pool.
- ``bait``: the calls of ``BaitStrategy.query`` one by one (forward pass over the pool,
  closed-form embeddings ``[N, C, C D]`` float32, F_S, greedy selection with one backward step).
- ``badge``: the forward pass, then ``BadgeStrategy.select`` (k-means++ on factorised gradient
  embeddings).

The model is an untrained CIFAR ResNet-18 at ``--width`` in eval mode; images are the real
CIFAR-10 training images (``--data``, the first ``--pool`` of the training split) or random
ones (``--data random``). A thread samples the resident set (VmRSS and its anonymous part,
RssAnon, from /proc/self/status) every 50 ms; each stage's peak is the largest sample in its
time span, and the process's high-water mark (``ru_maxrss``) is printed at the end.

    python benchmarks/pool_scale.py fishermask --data ../shared/datasets/cifar10-jpeg.tar.gz
    python benchmarks/pool_scale.py bait --data ../shared/datasets/cifar10-jpeg.tar.gz
    python benchmarks/pool_scale.py badge --data ../shared/datasets/cifar10-jpeg.tar.gz
    python benchmarks/pool_scale.py fishermask --data random --pool 3000 --labeled 200 \\
        --batch 100 --floor-images 256     # smoke test (minutes)
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time
from collections.abc import Callable

import torch

from fishermask.al.pool import Pool
from fishermask.fisher import bait_embeddings, greedy_select, mean_fisher
from fishermask.models import build_model
from fishermask.strategies.badge import BadgeStrategy
from fishermask.strategies.base import QueryContext
from fishermask.strategies.fishermask import FisherMaskStrategy
from fishermask.training.augment import Normalizer


def _status_mb() -> tuple[float, float]:
    """(VmRSS, RssAnon) of this process in MB."""
    vals = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                vals[key] = int(rest.split()[0]) / 1024
    return vals.get("VmRSS", 0.0), vals.get("RssAnon", 0.0)


class RssSampler(threading.Thread):
    """Samples (time, VmRSS, RssAnon, process CPU seconds) every ``every`` seconds; prints a
    heartbeat each minute."""

    def __init__(self, every: float = 0.05, heartbeat: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.every, self.heartbeat = every, heartbeat
        self.samples: list[tuple[float, float, float, float]] = []
        self.stop = threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        last = self.t0
        while not self.stop.is_set():
            now = time.perf_counter()
            self.samples.append((now, *_status_mb(), time.process_time()))
            if now - last >= self.heartbeat:
                last = now
                print(
                    f"    [{now - self.t0:7.0f} s] RSS {self.samples[-1][1]:6.0f} MB, "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
            self.stop.wait(self.every)

    def peak(self, start: float, end: float) -> tuple[float, float]:
        inside = [(r, a) for t, r, a, _ in self.samples if start <= t <= end]
        if not inside:
            return _status_mb()
        return max(r for r, _ in inside), max(a for _, a in inside)

    def cpu(self, start: float, end: float) -> float:
        """Process CPU seconds (all threads) between the samples nearest ``start``, ``end``."""
        before = [c for t, _, _, c in self.samples if t <= start] or [self.samples[0][3]]
        after = [c for t, _, _, c in self.samples if t <= end] or [before[-1]]
        return after[-1] - before[-1]


class Stages:
    """Stage table: wall and CPU seconds, peak RSS / RssAnon per stage, from the sampler."""

    def __init__(self, sampler: RssSampler) -> None:
        self.sampler = sampler

    def add(self, name: str, start: float, end: float) -> None:
        rss, anon = self.sampler.peak(start, end)
        print(
            f"  {name:<46} {end - start:8.1f} s ({self.sampler.cpu(start, end):7.1f} CPU s)"
            f"   peak RSS {rss:6.0f} MB "
            f"(anon {anon:6.0f})   load {os.getloadavg()[0]:.1f}",
            flush=True,
        )

    def timed(self, name: str, fn: Callable[[], object]) -> object:
        start = time.perf_counter()
        out = fn()
        self.add(name, start, time.perf_counter())
        return out


def floor_chunk(model: torch.nn.Module, x: torch.Tensor) -> None:
    """The floor: one forward and C ordinary backward passes (batched weight gradients)."""
    params = list(model.parameters())
    logits = model(x)
    probs = torch.softmax(logits.detach(), 1)
    for c in range(logits.shape[1]):
        cot = -probs.clone()
        cot[:, c] += 1
        cot *= probs[:, c : c + 1].sqrt()
        torch.autograd.grad(logits, params, cot, retain_graph=c < logits.shape[1] - 1)


def floor_per_image(model: torch.nn.Module, x: torch.Tensor, chunk: int = 128) -> float:
    """Seconds per image of one forward and C ordinary backward passes (batched weight grads)."""
    start = time.perf_counter()
    for s in range(0, len(x), chunk):
        floor_chunk(model, x[s : s + chunk])
    return (time.perf_counter() - start) / len(x)


def load_images(source: str, n: int, gen: torch.Generator) -> tuple[torch.Tensor, str]:
    if source == "random":
        return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen), "random"
    from fishermask.data.registry import load_dataset

    ds = load_dataset(source)
    if len(ds.x_train) < n:
        raise SystemExit(f"{source} has {len(ds.x_train)} training images, fewer than --pool {n}")
    return ds.x_train[:n].contiguous(), f"CIFAR-10 training images from {source}"


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("method", choices=["fishermask", "bait", "badge"])
    ap.add_argument("--data", default="random", help="CIFAR-10 path (tarball) or 'random'")
    ap.add_argument("--pool", type=int, default=50000, help="pool size N, labeled included")
    ap.add_argument("--labeled", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=1000, help="query batch size B")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--sparsity", type=float, default=0.002)
    ap.add_argument("--floor-images", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    return ap


def main() -> None:
    args = build_parser().parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    sampler = RssSampler()
    sampler.start()
    st = Stages(sampler)
    print(
        f"{args.method}: pool N={args.pool} ({args.labeled} labeled), B={args.batch}, "
        f"ResNet-18 width {args.width} (untrained, eval), {torch.get_num_threads()} thread(s), "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    t = time.perf_counter()
    images, what = load_images(args.data, args.pool, gen)
    model = build_model("resnet18", 10, (3, 32, 32), args.width).eval()
    pool = Pool(args.pool)
    labeled = torch.randperm(args.pool, generator=gen)[: args.labeled]
    pool.add(labeled.tolist(), torch.zeros(args.labeled, dtype=torch.int64))
    ctx = QueryContext(
        model=model,
        pool=pool,
        images=images,
        normalizer=Normalizer.fit(images[:5000]),
        generator=torch.Generator().manual_seed(1),
    )
    st.add(f"set-up ({what})", t, time.perf_counter())
    n_u, budget = pool.num_unlabeled, args.batch

    if args.method == "fishermask":
        sample = ctx.inputs(pool.unlabeled[: args.floor_images])
        floor0 = floor_per_image(model, sample)
        strategy = FisherMaskStrategy(sparsity=args.sparsity)
        print(f"  k = {strategy.mask_size(model)}; floor before: {floor0 * 1e3:.2f} ms/image")
        start = time.perf_counter()
        sel = strategy.select(ctx, budget)
        secs = sel.info["stage_seconds"]
        for name, sec in secs.items():
            st.add(f"{name}", start, start + sec)
            start += sec
        floor1 = floor_per_image(model, sample)
        per_image = secs["gradients"] / args.pool
        floor = (floor0 + floor1) / 2
        print(
            f"  floor (C batched backward passes, {len(sample)} images): {floor0 * 1e3:.2f} "
            f"ms/image before, {floor1 * 1e3:.2f} after -> {floor * args.pool:.0f} s for "
            f"{args.pool} images; gradients {per_image * 1e3:.2f} ms/image: ratio "
            f"{per_image / floor:.2f}; mask k={sel.info['mask_k']}, reaches "
            f"{sum(r['kept'] > 0 for r in sel.info['mask_profile'])} tensors"
        )
        reached = [
            f"{r['name']} {r['kept']}/{r['size']}" for r in sel.info["mask_profile"] if r["kept"]
        ]
        print("  mask by tensor (kept/size): " + ", ".join(reached))
        total = sum(secs.values())
    elif args.method == "bait":  # the calls of BaitStrategy.query, timed one by one
        unl, lab = pool.unlabeled, pool.labeled
        start = time.perf_counter()
        p_u, e_u = st.timed("forward pass (predictions)", lambda: ctx.predictions(unl))
        p_l, e_l = ctx.predictions(lab)
        v_u = st.timed("closed-form embeddings", lambda: bait_embeddings(e_u, p_u))
        v_l = bait_embeddings(e_l, p_l)
        print(f"  V [{n_u}, 10, {v_u.shape[2]}] float32: {v_u.numel() * 4 / 2**30:.2f} GiB")
        fs = st.timed(
            "pool Fisher F_S (float64)", lambda: mean_fisher(v_u, v_l, dtype=torch.float64)
        )
        stats: dict = {}
        st.timed(
            "greedy selection (backward_steps=1)",
            lambda: greedy_select(v_u, v_l, budget, lam=0.01, pool_fisher=fs, stats=stats),
        )
        print(f"  selection stats: {stats}")
        total = time.perf_counter() - start
    else:
        unl = pool.unlabeled
        start = time.perf_counter()
        st.timed("forward pass (predictions)", lambda: ctx.predictions(unl))
        st.timed(
            "k-means++ seeding (BadgeStrategy.select)", lambda: BadgeStrategy().select(ctx, budget)
        )
        total = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"query total {total:.1f} s; process peak RSS (ru_maxrss) {peak:.0f} MB; "
        f"load average now {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )


if __name__ == "__main__":
    main()
