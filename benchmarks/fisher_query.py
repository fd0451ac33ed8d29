"""Time one FisherMask query phase by stage, against its floor and the naive formulation.

Index convention: N pool images (labeled + unlabeled), C classes, k masked weights, d = k.

Stages (docs/methods.md §2): diagonal Fisher on the first ``--diag-samples`` pool images; the Fisher
mask (standard mode, k = sparsity * P); masked per-sample gradients on the whole pool with a
RANDOM mask of the same k reaching every parameter tensor (a fresh network would put its
Fisher mask in the last layers and make the gradient stage look cheaper than it is); the
pool Fisher; greedy selection of B points among the unlabeled ones.

Side by side it measures the *floor* of the gradient stage: C backward passes of the same
model over the same pool chunks with ordinary batched weight gradients (no per-sample
separation), interleaved chunk by chunk with the fast stage so that a shared, contended CPU
affects both alike. It checks the fast stages against the naive formulation (a loop of
``torch.autograd.grad`` per sample and class; the per-candidate explicit-inverse selection)
and against ``torch.func`` ``vmap(jacrev)``. With ``--compare-baseline`` it also runs the
previous selection (``benchmarks/legacy_selection.py``) on the same V in the same process and
compares the picks. Peak RSS is recorded after every stage (the process's high-water mark).

    .venv/bin/python benchmarks/fisher_query.py            # the target problem (minutes)
    .venv/bin/python benchmarks/fisher_query.py --quick    # smoke test (seconds)
    # the diagonal Fisher against its floor only, then a profile of it on 256 images
    .venv/bin/python benchmarks/fisher_query.py --diag-only --profile-diag 256
    # the full CIFAR-10 pool: 50 000 images, B = 1 000, no naive checks
    .venv/bin/python benchmarks/fisher_query.py --pool 50000 --labeled 1000 --batch 1000 \
        --no-checks
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from fishermask.fisher import (
    diag_fisher,
    disk_tensor,
    greedy_select,
    mask_indices,
    mask_profile,
    masked_grads,
    mean_fisher,
    random_mask,
    top_k_mask,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from legacy_selection import legacy_greedy_select  # noqa: E402
from pool_scale import RssSampler, floor_chunk  # noqa: E402


def build(width: float, classes: int, device: str) -> nn.Module:
    """The target model: CIFAR ResNet-18 (3x3 stem, no max-pool) at ``width``."""
    from fishermask.models import build_model

    return build_model("resnet18", classes, (3, 32, 32), width).to(device).eval()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def peak_cuda_mb(device: str) -> float | None:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Timer:
    """Wall and process CPU seconds per stage, and the time windows of each stage."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.times: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.windows: dict[str, list[tuple[float, float]]] = {}

    def run(self, name: str, fn: Callable[[], object]) -> object:
        sync(self.device)
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        sync(self.device)
        end = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + end - start
        self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu
        self.windows.setdefault(name, []).append((start, end))
        return out

    def add(self, name: str, seconds: float) -> None:
        self.times[name] = self.times.get(name, 0.0) + seconds


DIAG_FLOOR = "floor of diag Fisher (C backward passes)"


def profile_diag(model: nn.Module, x: Tensor, chunk: int = 64) -> None:
    """Where the diagonal Fisher's time goes, against its floor, on images ``x`` (CPU seconds
    of this process): the engine's output-only backward passes and each layer's closed form
    (by route), timed by wrapping them for this call only; then the floor's forward, its C
    backward passes taken w.r.t. the input only (the data gradients the engine also needs)
    and with the weights (the floor itself)."""
    from fishermask.fisher import _engine, closed_form

    spent: dict[str, float] = {}

    def timed(key: str, fn: Callable, *a, **kw):
        start = time.process_time()
        out = fn(*a, **kw)
        spent[key] = spent.get(key, 0.0) + time.process_time() - start
        return out

    forms = (closed_form.Conv2dForm, closed_form.BatchNormForm, closed_form.LinearForm)
    saved = {cls: cls.sq_sum for cls in forms}
    grad = torch.autograd.grad

    def wrap(cls: type) -> Callable:
        def sq_sum(self, go, k=0, k_count=1):
            kind = cls.__name__.removesuffix("Form")
            if cls is closed_form.Conv2dForm:
                w = self.module.weight.shape
                kind += f" {self.sq_sum_mode(k_count)} {w[0]}x{w[1]}x{w[2]}x{w[3]}"
            return timed(kind, saved[cls], self, go, k, k_count)

        return sq_sum

    try:
        for cls in forms:
            cls.sq_sum = wrap(cls)
        _engine.torch.autograd.grad = lambda *a, **kw: timed("backward passes", grad, *a, **kw)
        start = time.process_time()
        for s in range(0, len(x), chunk):
            diag_fisher(model, x[s : s + chunk], batch_size=chunk)
        total = time.process_time() - start
    finally:
        for cls in forms:
            cls.sq_sum = saved[cls]
        _engine.torch.autograd.grad = grad
    start = time.process_time()
    for s in range(0, len(x), chunk):
        floor_chunk(model, x[s : s + chunk])
    floor = time.process_time() - start
    fwd = data = 0.0
    for s in range(0, len(x), chunk):
        xb = x[s : s + chunk].clone().requires_grad_(True)
        start = time.process_time()
        logits = model(xb)
        fwd += time.process_time() - start
        probs = torch.softmax(logits.detach(), 1)
        start = time.process_time()
        for c in range(logits.shape[1]):
            cot = -probs.clone()
            cot[:, c] += 1
            cot *= probs[:, c : c + 1].sqrt()
            torch.autograd.grad(logits, [xb], cot, retain_graph=c < logits.shape[1] - 1)
        data += time.process_time() - start
    forms_total = sum(v for k_, v in spent.items() if k_ != "backward passes")
    rest = total - forms_total - spent["backward passes"]
    print(f"\ndiagonal Fisher profile ({len(x)} images, chunks of {chunk}; CPU seconds)")
    print(f"  diag_fisher {total:.2f} = output-only backward passes {spent['backward passes']:.2f}")
    print(f"    + closed forms {forms_total:.2f} + forward and the rest {rest:.2f}")
    print(f"  floor {floor:.2f}: forward {fwd:.2f}, input-only backward passes {data:.2f},")
    print(f"    so weight gradients about {floor - fwd - data:.2f};  ratio {total / floor:.2f}")
    print("  closed forms by layer shape and route (seconds):")
    for key, sec in sorted(spent.items(), key=lambda kv: -kv[1]):
        if key != "backward passes" and sec >= 0.01 * forms_total:
            print(f"    {key:<36} {sec:6.2f}")


def naive_masked_grads(model: nn.Module, x: Tensor, mask: dict[str, Tensor]) -> Tensor:
    """The authors' formulation: one autograd call per (sample, class), then the mask."""
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    rows = []
    for i in range(x.shape[0]):
        logp = F.log_softmax(model(x[i : i + 1]), 1)[0]  # [C]
        probs = logp.detach().exp()
        per_class = []
        for c in range(logp.shape[0]):
            grads = torch.autograd.grad(logp[c], params, retain_graph=True)
            v = torch.cat([g[mask[n]] for n, g in zip(names, grads, strict=True) if n in mask])
            per_class.append(v * probs[c].sqrt())
        rows.append(torch.stack(per_class))
    return torch.stack(rows)  # [n, C, k]


def func_masked_grads(model: nn.Module, x: Tensor, mask: dict[str, Tensor]) -> Tensor:
    """Alternative: torch.func vmap(jacrev) over the masked parameter tensors only."""
    idx = mask_indices(model, mask)
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def logp(sub: dict[str, Tensor], xi: Tensor) -> Tensor:
        out = functional_call(model, {**params, **buffers, **sub}, (xi.unsqueeze(0),))
        return F.log_softmax(out, -1).squeeze(0)

    jac = vmap(jacrev(logp), in_dims=(None, 0))({k: params[k] for k in idx}, x)
    probs = torch.softmax(model(x), 1).detach().sqrt()[:, :, None]  # [n, C, 1]
    return torch.cat([jac[k].flatten(2)[:, :, i] for k, i in idx.items()], 2) * probs


def naive_select(vu: Tensor, vl: Tensor, budget: int, lam: float = 1.0) -> list[int]:
    """docs/methods.md §2.5 forward phase with explicit inverses per step and per candidate."""
    n, c, d = vu.shape
    n_lab = vl.shape[0]
    rows = torch.cat([vu, vl]).reshape(-1, d)
    fs = rows.T @ rows / (n + n_lab)
    lab = vl.reshape(-1, d)
    m = lam * torch.eye(d, dtype=vu.dtype) + lab.T @ lab / (n_lab + budget)
    s = math.sqrt(budget / (n_lab + budget))
    eye = torch.eye(c, dtype=vu.dtype)
    chosen: list[int] = []
    for _ in range(budget):
        m_inv = torch.linalg.inv(m)
        best, best_score = -1, -math.inf
        for x in range(n):
            if x in chosen:
                continue
            v = vu[x].T * s  # [d, C]
            a = m_inv @ v
            score = torch.trace(a.T @ fs @ a @ torch.linalg.inv(eye + v.T @ a)).item()
            if score > best_score:
                best, best_score = x, score
        chosen.append(best)
        m = m + (vu[best].T * s) @ (vu[best] * s)
    return chosen


def agreement(a: list[int], b: list[int]) -> str:
    if a == b:
        return "identical"
    first = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    return f"differ from pick {first}; {len(set(a) & set(b))}/{len(a)} in common"


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--pool", type=int, default=5750, help="pool size N (labeled included)")
    ap.add_argument("--labeled", type=int, default=250)
    ap.add_argument("--budget", "--batch", type=int, default=250, help="query batch size B")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--sparsity", type=float, default=0.002)
    ap.add_argument("--diag-samples", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=256, help="images per gradient chunk")
    ap.add_argument("--backward-steps", type=int, default=0)
    ap.add_argument("--naive-samples", type=int, default=8)
    ap.add_argument("--func-samples", type=int, default=64)
    ap.add_argument("--select-sub", type=int, default=200, help="candidates of the naive check")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    ap.add_argument("--compare-baseline", action="store_true", help="also time the old selection")
    ap.add_argument("--no-checks", action="store_true", help="skip the floor and naive checks")
    ap.add_argument(
        "--diag-only",
        action="store_true",
        help="stop after the diagonal Fisher and its floor (and --profile-diag)",
    )
    ap.add_argument(
        "--profile-diag",
        type=int,
        default=0,
        metavar="N",
        help="after the query, profile the diagonal Fisher on N images against its floor",
    )
    ap.add_argument(
        "--v-on-disk", action="store_true", help="V in a disk-backed memory map (streaming form)"
    )
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.width, args.pool, args.labeled, args.budget = 0.125, 240, 20, 10
        args.diag_samples, args.naive_samples, args.func_samples = 64, 4, 16
        args.select_sub, args.batch_size, args.sparsity = 40, 64, 0.01
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = args.device
    load0 = os.getloadavg()
    print(
        f"torch {torch.__version__} on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, device {dev}; "
        f"python {sys.version.split()[0]}"
    )
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")

    model = build(args.width, args.classes, dev)
    total = sum(p.numel() for p in model.parameters())
    k = max(1, round(args.sparsity * total))
    gen = torch.Generator().manual_seed(args.seed)
    pool = torch.randn(args.pool, 3, 32, 32, generator=gen).to(dev)  # [N, 3, 32, 32]
    # the first nL pool images are the labeled ones
    unlabeled = torch.arange(args.labeled, args.pool)
    print(
        f"ResNet-18 width {args.width}: P={total} parameters in "
        f"{len(list(model.parameters()))} tensors; k={k} (sparsity {args.sparsity}); "
        f"pool N={args.pool} ({args.labeled} labeled), C={args.classes}, B={args.budget}, "
        f"backward_steps={args.backward_steps}, chunk {args.batch_size}"
    )
    t = Timer(dev)
    sampler = RssSampler()
    sampler.start()

    # 1. diagonal Fisher in chunks of 64 images, interleaved chunk by chunk with its floor (C
    # batched backward passes over the same chunk); 2. the Fisher mask
    diag_images = pool[: args.diag_samples]
    diag: dict[str, Tensor] = {}
    for start in range(0, len(diag_images), 64):
        x = diag_images[start : start + 64]
        part = t.run("diag Fisher", lambda x=x: diag_fisher(model, x, batch_size=64))
        for name, v in part.items():  # the mean over all images, from the chunks' means
            diag[name] = diag[name] + v * len(x) if name in diag else v * len(x)
        if not args.no_checks:
            t.run(DIAG_FLOOR, lambda x=x: floor_chunk(model, x))
    diag = {name: v / len(diag_images) for name, v in diag.items()}
    fisher_mask = t.run("mask", lambda: top_k_mask(diag, k))
    prof = mask_profile(fisher_mask)
    reached = sum(r.kept > 0 for r in prof)
    print(
        f"Fisher mask (standard): reaches {reached}/{len(prof)} tensors; "
        f"{prof[-2].name} {prof[-2].kept}/{prof[-2].size}"
    )
    mask = random_mask(model, k, gen, min_per_tensor=1)
    print(
        f"random mask for the gradient stage: k={k}, reaches "
        f"{sum(r.kept > 0 for r in mask_profile(mask))}/{len(prof)} tensors"
    )
    rss = {"diag Fisher + mask": peak_rss_mb()}
    if args.diag_only:
        report(args, t, rss, dev, load0, sampler)
        if args.profile_diag:
            profile_diag(model, pool[: args.profile_diag])
        return

    # 3. masked gradients on the pool, interleaved chunk by chunk with the floor
    # one [N, C, k] float32 tensor (in memory or a disk-backed memory map), filled chunk by chunk
    shape = (args.pool, args.classes, k)
    if args.v_on_disk:
        v_all = disk_tensor(shape)
    else:
        v_all = torch.empty(shape, device=dev)
    print(
        f"V {list(shape)} float32: {v_all.numel() * 4 / 2**30:.2f} GiB"
        + (" on disk (memory map)" if args.v_on_disk else ""),
        flush=True,
    )
    for start in range(0, args.pool, args.batch_size):
        x = pool[start : start + args.batch_size]
        v_all[start : start + len(x)] = t.run(
            "masked grads", lambda x=x: masked_grads(model, x, mask, batch_size=len(x))
        )
        if not args.no_checks:
            t.run("floor (C batched backward passes)", lambda x=x: floor_chunk(model, x))
    rss["masked grads"] = peak_rss_mb()

    # 4. pool Fisher, 5. selection; the first nL rows are the labeled ones, so both sets are
    # views of v_all
    fs = t.run("pool Fisher", lambda: mean_fisher(v_all, dtype=torch.float64))
    rss["pool Fisher"] = peak_rss_mb()
    vu, vl = v_all[args.labeled :], v_all[: args.labeled]
    stats: dict = {}
    picked = t.run(
        "selection",
        lambda: greedy_select(
            vu, vl, args.budget, backward_steps=args.backward_steps, pool_fisher=fs, stats=stats
        ),
    ).tolist()
    rss["selection"] = peak_rss_mb()
    steps = min((args.backward_steps + 1) * args.budget, len(unlabeled))
    steps += steps - args.budget
    print(
        f"selection: {t.times['selection']:.1f} s, {t.times['selection'] / steps * 1e3:.1f} "
        f"ms per greedy step ({steps} steps); {stats}",
        flush=True,
    )
    if args.compare_baseline:
        start = time.perf_counter()
        old = legacy_greedy_select(
            vu, vl, args.budget, backward_steps=args.backward_steps, pool_fisher=fs
        ).tolist()
        t_old = time.perf_counter() - start
        rss["previous selection"] = peak_rss_mb()
        print(
            f"previous selection (legacy_selection.py): {t_old:.1f} s, "
            f"{t_old / steps * 1e3:.1f} ms per step; speed-up {t_old / t.times['selection']:.2f}x; "
            f"picks {agreement(picked, old)}",
            flush=True,
        )
    if args.no_checks:
        report(args, t, rss, dev, load0, sampler)
        if args.profile_diag:
            profile_diag(model, pool[: args.profile_diag])
        return

    # checks against the naive formulations (sub-problems)
    sub = pool[: args.naive_samples]
    start = time.perf_counter()
    naive = naive_masked_grads(model, sub, mask)
    t_naive = (time.perf_counter() - start) / len(sub)
    fast_sub = masked_grads(model, sub, mask)
    err = (naive - fast_sub).abs().max().item() / naive.abs().max().item()
    fsub = pool[: args.func_samples]
    start = time.perf_counter()
    func = func_masked_grads(model, fsub, mask)
    t_func = (time.perf_counter() - start) / len(fsub)
    err_func = (func - v_all[: len(fsub)]).abs().max().item() / func.abs().max().item()
    del func
    n_sub = min(args.select_sub, len(unlabeled))
    b_sub = min(10, n_sub)
    vu_s, vl_s = vu[:n_sub].double(), vl.double()
    start = time.perf_counter()
    ref_pick = naive_select(vu_s, vl_s, b_sub)
    t_naive_sel = (time.perf_counter() - start) / b_sub
    start = time.perf_counter()
    fast_pick = greedy_select(vu_s, vl_s, b_sub, backward_steps=0).tolist()
    t_fast_sel = (time.perf_counter() - start) / b_sub
    rss["checks"] = peak_rss_mb()
    per_image = t.times["masked grads"] / args.pool

    report(args, t, rss, dev, load0, sampler)
    if args.profile_diag:
        profile_diag(model, pool[: args.profile_diag])
    print(
        f"masked grads: {per_image * 1e3:.2f} ms/image fast, {t_naive * 1e3:.1f} ms/image "
        f"naive loop ({args.naive_samples} images): speed-up {t_naive / per_image:.0f}x; "
        f"max rel. diff {err:.1e}"
    )
    print(
        f"  torch.func vmap(jacrev) over the masked tensors: {t_func * 1e3:.2f} ms/image "
        f"({args.func_samples} images), {t_func / per_image:.1f}x slower than fast; "
        f"max rel. diff {err_func:.1e}"
    )
    print(
        f"selection check ({n_sub} candidates, d={k}, {b_sub} picks, float64): naive "
        f"{t_naive_sel * 1e3:.0f} ms/step, fast {t_fast_sel * 1e3:.1f} ms/step; indices "
        f"{agreement(fast_pick, ref_pick)}"
    )


def report(
    args: argparse.Namespace, t: Timer, rss: dict, dev: str, load0: tuple, sampler: RssSampler
) -> None:
    query = sum(v for name, v in t.times.items() if not name.startswith("floor"))
    print("\nstage                                  seconds  CPU seconds  peak RSS (anon) MB")
    for name, sec in t.times.items():
        peaks = [sampler.peak(a, b) for a, b in t.windows[name]]
        vm, anon = max(p[0] for p in peaks), max(p[1] for p in peaks)
        print(f"  {name:<36} {sec:8.2f} {t.cpu[name]:11.2f}  {vm:7.0f} ({anon:7.0f})")
    print(f"  {'whole query (without floor)':<36} {query:8.2f}   target < 120 s")
    floor = t.times.get("floor (C batched backward passes)")
    if floor:
        print(f"masked grads / floor = {t.times['masked grads'] / floor:.2f}   target <= 2")
    floor = t.times.get(DIAG_FLOOR)
    if floor:
        print(
            f"diag Fisher / its floor = {t.times['diag Fisher'] / floor:.2f} "
            f"(CPU seconds: {t.cpu['diag Fisher'] / t.cpu[DIAG_FLOOR]:.2f})   target <= 1.5"
        )
    print("peak RSS (MB) by the end of: " + ", ".join(f"{k_}: {v:.0f}" for k_, v in rss.items()))
    cuda = peak_cuda_mb(dev)
    if cuda is not None:
        print(f"peak CUDA memory: {cuda:.0f} MB")
    load1 = os.getloadavg()
    print(
        f"load average at start {load0[0]:.2f}, at end: {load1[0]:.2f} {load1[1]:.2f} "
        f"{load1[2]:.2f} (> torch threads means other processes shared the CPU)"
    )


if __name__ == "__main__":
    main()
