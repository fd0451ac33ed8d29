"""Time LPLgrad's query (entropy-gradient norms) against one forward+backward pass.

Index convention: N images of shape [3, 32, 32] (CIFAR-10 size), C = 10 classes.

Side by side, in one process, on the same N inputs and the same model (ResNet-18 for CIFAR,
width ``--width``, untrained, eval mode):

1. forward only, and one batched forward+backward pass (loss = sum of the entropies; the
   parameter gradients are accumulated as in training) - the reference cost;
2. :func:`fishermask.strategies.entropy_gradnorm_scores` with each method (``hooks``,
   ``func``) and the ``expected`` scheme (C backward passes; timed on a sub-sample and
   extrapolated);
3. the per-image ``torch.autograd.grad`` loop of the reference code on ``--loop-n`` images,
   extrapolated to N;

then checks that the fast scores agree with the loop on that sub-sample. Pixel values do
not change the cost, so the inputs are random normals.

    python benchmarks/lplgrad_query.py            # N = 10 000, width 1/4
    python benchmarks/lplgrad_query.py --quick    # N = 512, a few seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import torch

from fishermask.models import build_model
from fishermask.strategies import entropy_gradnorm_scores


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def forward_backward(model: torch.nn.Module, x: torch.Tensor, batch: int) -> None:
    """One training-style pass: entropy summed over the batch, ``.backward()`` per batch."""
    for i in range(0, len(x), batch):
        logp = model(x[i : i + batch]).log_softmax(dim=1)  # [b, C]
        (-(logp.exp() * logp).sum()).backward()
    model.zero_grad(set_to_none=True)


@torch.no_grad()
def forward_only(model: torch.nn.Module, x: torch.Tensor, batch: int) -> None:
    for i in range(0, len(x), batch):
        model(x[i : i + batch])


def loop_scores(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reference: one image at a time, sum of per-tensor norms of the entropy gradient."""
    params = list(model.parameters())
    out = []
    for i in range(len(x)):
        logp = model(x[i : i + 1]).log_softmax(dim=1)
        h = -(logp.exp() * logp).sum()
        out.append(sum(g.norm() for g in torch.autograd.grad(h, params)))
    return torch.stack(out)


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="images (default 10 000)")
    ap.add_argument("--width", type=float, default=0.25, help="ResNet-18 width (default 1/4)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="N = 512, smaller sub-samples")
    ap.add_argument("--batch", type=int, default=128, help="batch of the reference pass")
    ap.add_argument("--grad-batch", type=int, default=64, help="chunk of the hooks method")
    ap.add_argument("--func-batch", type=int, default=32, help="chunk of the func method")
    ap.add_argument("--loop-n", type=int, default=200, help="images for the per-image loop")
    ap.add_argument("--expected-n", type=int, default=1000, help="images for scheme=expected")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    return ap


def main() -> None:
    args = build_parser().parse_args()
    if args.quick:
        args.n, args.loop_n, args.expected_n = 512, 32, 128
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    model = build_model("resnet18", 10, (3, 32, 32), args.width).to(device).eval()
    n_params = sum(p.numel() for p in model.parameters())
    x = torch.randn(args.n, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    sub = x[: args.loop_n]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    # warm-up (allocator, kernels) on a small slice
    forward_backward(model, x[:64], args.batch)
    entropy_gradnorm_scores(model, x[:16], batch_size=16)
    entropy_gradnorm_scores(model, x[:8], batch_size=8, method="func")
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    rows: list[tuple[str, float, str]] = []

    def run(label: str, fn: Callable[[], object], scale: float = 1.0, note: str = "") -> object:
        sync()
        t, out = _timed(lambda: (fn(), sync())[0])
        rows.append((label, t * scale, note))
        print(f"  {label:<48} {t * scale:9.2f} s  {note}", flush=True)
        return out

    print(
        f"ResNet-18 width {args.width} ({n_params:,} parameters), N = {args.n}, "
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    run("forward only (no grad)", lambda: forward_only(model, x, args.batch))
    run(
        f"forward+backward, batch {args.batch} (reference cost)",
        lambda: forward_backward(model, x, args.batch),
    )
    fast = run(
        f"entropy_gradnorm_scores hooks, chunk {args.grad_batch}",
        lambda: entropy_gradnorm_scores(model, x, batch_size=args.grad_batch, method="hooks"),
    )
    run(
        f"entropy_gradnorm_scores func (vmap), chunk {args.func_batch}",
        lambda: entropy_gradnorm_scores(model, x, batch_size=args.func_batch, method="func"),
    )
    en = min(args.expected_n, args.n)
    run(
        f"scheme=expected, hooks, chunk {args.grad_batch}",
        lambda: entropy_gradnorm_scores(
            model, x[:en], scheme="expected", batch_size=args.grad_batch
        ),
        scale=args.n / en,
        note=f"(extrapolated from {en})" if en < args.n else "",
    )
    ref = run(
        "per-image autograd.grad loop (reference code)",
        lambda: loop_scores(model, sub),
        scale=args.n / len(sub),
        note=f"(extrapolated from {len(sub)})",
    )
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    base = rows[1][1]
    print("\n| step | seconds | × forward+backward |\n|---|---:|---:|")
    for label, t, note in rows:
        print(f"| {label} {note} | {t:.2f} | {t / base:.2f} |")
    fast_sub = fast[: len(sub)]  # type: ignore[index]
    rel = ((fast_sub - ref).abs() / ref.abs()).max().item()  # type: ignore[operator]
    func_sub = entropy_gradnorm_scores(model, sub, method="func", batch_size=args.func_batch)
    rel_f = ((func_sub - ref).abs() / ref.abs()).max().item()  # type: ignore[operator]
    same = torch.equal(
        torch.argsort(-fast_sub, stable=True)[:10],  # type: ignore[arg-type]
        torch.argsort(-ref, stable=True)[:10],  # type: ignore[arg-type]
    )
    print(
        f"\nagreement with the loop on {len(sub)} images (float32): max relative difference "
        f"hooks {rel:.1e}, func {rel_f:.1e}; same top-10 order: {same}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load0:.1f} before / {load1:.1f} after"
    )


if __name__ == "__main__":
    main()
