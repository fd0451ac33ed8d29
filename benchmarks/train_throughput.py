"""Training throughput: fishermask's trainer against a minimal PyTorch loop.

Index convention: N training images ``[N, 3, 32, 32]`` (CIFAR-10 size), C = 10 classes.

Side by side, in one process, alternating (A B A B ...) so that a change in machine load
hits both the same: the same model (same initial weights), the same uint8 images on the
model's device, the same batch size, augmentation (random crop + flip, normalisation) and
batch order drawn from the same seeded generator.

1. ``trainer``: :func:`fishermask.training.train` with ``stop="epochs"``;
2. ``minimal``: the loop a user would write by hand (shuffle, augment, forward, cross-entropy,
   backward, step), nothing else.

Then checks that both end with bit-identical weights (the trainer adds bookkeeping, never
arithmetic) and prints images per second, the median over ``--repeats`` of each, and their
ratio (the target is >= 0.95). Pixel values do not change the cost: images are random.

    python benchmarks/train_throughput.py                  # width 1/8, N = 2048, 2 epochs
    python benchmarks/train_throughput.py --channels-last  # the same, NHWC memory format
    python benchmarks/train_throughput.py --quick          # a few seconds
    python benchmarks/train_throughput.py --precision bf16 # bfloat16 autocast (AMX on recent Xeons)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from fishermask.models import build_model
from fishermask.training import TrainConfig
from fishermask.training.augment import Augmenter, Normalizer
from fishermask.training.trainer import train

CIFAR = Normalizer((0.491, 0.482, 0.447), (0.247, 0.243, 0.261))


def minimal_loop(model, x, y, *, epochs, batch_size, lr, augmenter, generator, bf16=False) -> None:
    """The hand-written loop: shuffle, augment, forward, loss, backward, step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    n = len(y)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(x.device)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            xb = augmenter(x[idx], generator)
            if next(model.parameters()).is_contiguous(memory_format=torch.channels_last):
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--width", type=float, default=0.125)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32",
        help="bf16: bfloat16 autocast of the forward pass and loss in both loops",
    )  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="N = 256, 1 epoch, 2 repeats")
    return ap


def main() -> None:
    a = build_parser().parse_args()
    if a.quick:
        a.n, a.epochs, a.repeats = 256, 1, 2
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (a.n, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    y = torch.randint(0, 10, (a.n,), generator=g).to(device)
    augmenter = Augmenter(CIFAR, crop_padding=4, hflip=True)
    cfg = TrainConfig(
        stop="epochs", epochs=a.epochs, batch_size=a.batch_size, augment="crop_flip",
        channels_last=a.channels_last, precision=a.precision,
    )  # fmt: skip
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format

    def fresh() -> torch.nn.Module:
        torch.manual_seed(1)
        return build_model(a.model, 10, (3, 32, 32), a.width).to(device, memory_format=fmt)

    def run(kind: str) -> tuple[float, torch.nn.Module]:
        model = fresh()
        gen = torch.Generator().manual_seed(2)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        if kind == "trainer":
            train(model, x, y, cfg, augmenter, generator=gen)
        else:
            minimal_loop(
                model, x, y, epochs=a.epochs, batch_size=a.batch_size, lr=cfg.lr,
                augmenter=augmenter, generator=gen, bf16=a.precision == "bf16",
            )  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize()
        return a.n * a.epochs / (time.perf_counter() - t0), model

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, device {device}, {a.threads} thread(s); {a.model} width {a.width}, "
        f"N={a.n}, batch {a.batch_size}, {a.epochs} epoch(s), "
        f"{'channels_last' if a.channels_last else 'contiguous'}, {a.precision}"
    )
    run("minimal")  # warm-up (allocator, kernels)
    speeds: dict[str, list[float]] = {"trainer": [], "minimal": []}
    models = {}
    for _ in range(a.repeats):
        for kind in ("trainer", "minimal"):
            s, models[kind] = run(kind)
            speeds[kind].append(s)
    same = all(
        torch.equal(p, q)
        for p, q in zip(
            models["trainer"].state_dict().values(),
            models["minimal"].state_dict().values(),
            strict=True,
        )
    )
    med = {k: statistics.median(v) for k, v in speeds.items()}
    for k, v in speeds.items():
        print(f"{k:8s} {med[k]:8.0f} img/s  (runs: {', '.join(f'{s:.0f}' for s in v)})")
    print(f"ratio trainer / minimal: {med['trainer'] / med['minimal']:.3f}")
    print(f"identical weights after training: {same}")


if __name__ == "__main__":
    main()
