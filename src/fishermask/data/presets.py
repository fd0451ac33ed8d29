"""Class-imbalance presets of the FisherMask paper, applied to the train split.

- ``setting1``: classes 0..3 with 250, 5000, 250, 250 train images (pool 5 750).
- ``setting2``: classes 0..8 with 250 each, class 9 with 5000 (pool 7 250).

A preset (or explicit ``class_counts``) gives one count per class; classes past
the end of the list or with count 0 are dropped, the kept classes are relabelled
``0..K-1`` in their original order (names follow), and the test split keeps all
test images of the kept classes (the paper does not say; docs/methods.md §6.2).

Which train images: for class c, ``count`` images drawn without replacement by
``numpy.random.default_rng([seed, c])`` and kept in their original order. The
``seed`` (default 0) belongs to the data set, not to the experiment: by default
every experiment seed sees the same imbalanced pool, and each class's draw does
not depend on the other classes' counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from fishermask.data.base import ImageDataset
from fishermask.errors import ConfigError, DataError
from fishermask.text import did_you_mean

#: Preset name -> train images per class (classes past the tuple are dropped).
PRESETS: dict[str, tuple[int, ...]] = {
    "setting1": (250, 5000, 250, 250),
    "setting2": (250,) * 9 + (5000,),
}


def apply_preset(
    ds: ImageDataset,
    preset: str | None = None,
    *,
    class_counts: Sequence[int] | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Subsample the train split per class (see the module docstring).

    Give ``preset`` (a key of ``PRESETS``) or ``class_counts``, not both; with
    neither, ``ds`` is returned unchanged.
    """
    if preset is not None and class_counts is not None:
        raise ConfigError(
            f"got both preset {preset!r} and class_counts {list(class_counts)}; give only one."
        )
    if preset is None and class_counts is None:
        return ds
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(
                did_you_mean(
                    f"Unknown preset {preset!r}; supported: {', '.join(PRESETS)}.", preset, PRESETS
                )
            )
        counts, what = PRESETS[preset], f"preset {preset}"
    else:
        counts, what = _check_counts(class_counts), "class_counts"  # type: ignore[arg-type]
    if len(counts) > ds.num_classes:
        raise DataError(
            f"{what} needs {len(counts)} classes but {ds.name} has {ds.num_classes}; "
            "use a data set with more classes or fewer counts."
        )
    available = ds.class_counts("train")
    kept: list[int] = []
    train_idx: list[np.ndarray] = []
    y_train = ds.y_train.numpy()
    for c, count in enumerate(counts):
        if count == 0:
            continue
        if count > available[c]:
            raise DataError(
                f"{what} asks for {count} images of class {c} {ds.classes[c]!r} but the train "
                f"split has only {available[c]}; lower the count or use a larger data set."
            )
        members = np.flatnonzero(y_train == c)
        rng = np.random.default_rng([seed, c])
        train_idx.append(members[rng.choice(len(members), size=count, replace=False)])
        kept.append(c)
    idx = torch.from_numpy(np.sort(np.concatenate(train_idx)))
    relabel = torch.full((ds.num_classes,), -1, dtype=torch.int64)
    relabel[kept] = torch.arange(len(kept))
    test_idx = torch.nonzero(relabel[ds.y_test] >= 0).flatten()
    return replace(
        ds,
        x_train=ds.x_train[idx],
        y_train=relabel[ds.y_train[idx]],
        x_test=ds.x_test[test_idx],
        y_test=relabel[ds.y_test[test_idx]],
        classes=tuple(ds.classes[c] for c in kept),
        train_files=None if ds.train_files is None else tuple(ds.train_files[i] for i in idx),
        train_index=idx if ds.train_index is None else ds.train_index[idx],
    )


def _check_counts(class_counts: Sequence[int]) -> tuple[int, ...]:
    counts = tuple(class_counts)
    bad = [c for c in counts if isinstance(c, bool) or not isinstance(c, int | np.integer) or c < 0]
    if bad:
        raise ConfigError(
            f"`class_counts` has {bad[0]!r}, must hold integers >= 0 (one per class)."
        )
    if not any(counts):
        raise ConfigError(
            f"`class_counts`={list(counts)} keeps no class; give at least one count >= 1."
        )
    return tuple(int(c) for c in counts)
