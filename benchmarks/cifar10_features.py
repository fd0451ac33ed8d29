"""Embeddings for the CIFAR-10 Setting 1 features run, from a network trained once on
CIFAR-10 training images outside the Setting 1 pool.

Index convention: N = 50 000 train + 10 000 test images, D embedding size.

1. The Setting 1 pool (classes 0-3 with 250/5000/250/250 train images, drawn exactly as
   ``apply_preset(ds, "setting1")`` draws them) is set aside.
2. From the other training images (all ten classes; the pool holds every class-1 image, so
   class 1 contributes none) ``--train-images`` are drawn with ``--seed``, and the small
   CNN (``build_model("cnn", 10, (3, 32, 32), --width)``) is trained on them for
   ``--epochs`` epochs with the toolkit's recipe (Adam, crop + flip).
3. Its penultimate embeddings of all N images, in the data set's order (train, then test),
   are saved as float32 ``.npy`` ``[N, D]``: the file ``fishermask run --features`` takes.

No Setting 1 pool image and no test image is used for training.

    .venv/bin/python benchmarks/cifar10_features.py --out runs/cifar10_cnn_features.npy
    fishermask run --config experiments/cifar10_setting1_features.yaml \\
        --out runs/cifar10_setting1_features
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fishermask.data import apply_preset, load_dataset
from fishermask.models import build_model
from fishermask.training import Normalizer, evaluate, make_augmenter, train
from fishermask.training.config import TrainConfig


def pool_indices(ds, preset: str = "setting1") -> np.ndarray:
    """Train-split positions of the preset's pool (the preset applied to position labels)."""
    pos = torch.arange(len(ds.y_train), dtype=torch.float32)[:, None, None, None]
    tagged = replace(ds, x_train=pos, x_test=torch.zeros(len(ds.y_test), 1, 1, 1))
    return apply_preset(tagged, preset).x_train.flatten().numpy().astype(np.int64)


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script (main parses sys.argv with it)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="../shared/datasets/cifar10-jpeg.tar.gz")
    ap.add_argument("--out", type=Path, default=Path("runs/cifar10_cnn_features.npy"))
    ap.add_argument("--train-images", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    return ap


def main() -> None:
    args = build_parser().parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    ds = load_dataset(args.dataset)
    pool = pool_indices(ds)
    outside = np.setdiff1d(np.arange(len(ds.y_train)), pool)
    rng = np.random.default_rng(args.seed)
    chosen = np.sort(rng.choice(outside, size=args.train_images, replace=False))
    assert not np.intersect1d(chosen, pool).size
    x, y = ds.x_train[chosen], ds.y_train[chosen]
    print(
        f"pool {len(pool)} images set aside; training on {len(chosen)} others, "
        f"class counts {torch.bincount(y, minlength=10).tolist()}",
        flush=True,
    )

    torch.manual_seed(args.seed)
    model = build_model("cnn", 10, ds.image_shape, args.width)
    cfg = TrainConfig(stop="epochs", epochs=args.epochs, batch_size=128)
    norm = Normalizer.fit(x)
    res = train(
        model,
        x,
        y,
        cfg,
        make_augmenter(cfg, norm, 3),
        generator=torch.Generator().manual_seed(args.seed),
        on_epoch=lambda e, n, a: print(f"epoch {e}/{n}: train accuracy {a:.3f}", flush=True),
    )
    test = evaluate(model, ds.x_test, ds.y_test, norm)
    print(f"trained in {res.seconds:.0f} s; 10-class test accuracy {test.accuracy:.3f}", flush=True)

    images = torch.cat([ds.x_train, ds.x_test])
    parts = []
    with torch.no_grad():
        for i in range(0, len(images), 1000):
            parts.append(model.embed(norm(images[i : i + 1000]))[0])
    emb = torch.cat(parts).numpy().astype(np.float32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, emb)
    print(
        f"saved {emb.shape} to {args.out} ({time.perf_counter() - start:.0f} s in all)",
        flush=True,
    )


if __name__ == "__main__":
    main()
