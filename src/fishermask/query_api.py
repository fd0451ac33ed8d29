"""Ask a query strategy which images to label next, for any trained classifier.

``fishermask.query(model, images, labeled=..., labels=..., budget=50)`` runs the registered
strategy (FisherMask by default) exactly as the experiment runner does: it builds the same
:class:`~fishermask.al.pool.Pool` and :class:`~fishermask.strategies.QueryContext` and calls
the strategy's ``select``, so with the runner's model, pool, normaliser and query generator
it returns the runner's choice.

Index convention: N images, Ch channels, H x W pixels, C classes, D embedding size.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import IterableDataset

from fishermask import strategies
from fishermask.al.pool import Pool
from fishermask.errors import ConfigError, FishermaskError
from fishermask.experiments.config import StrategySpec
from fishermask.fisher._engine import is_compiled
from fishermask.models.base import Classifier, eval_mode, input_dtype
from fishermask.models.module import ModuleClassifier
from fishermask.strategies.base import QueryContext, Strategy
from fishermask.text import counted, listed
from fishermask.training.augment import Normalizer


class QueryResult(NamedTuple):
    """The chosen images (indices into ``images``, in the order chosen) and their scores."""

    indices: torch.Tensor  # [budget] int64
    scores: torch.Tensor | None  # [budget], or None when the strategy has no per-item score


def _integers(name: str, values: Any, what: str) -> torch.Tensor:
    """``values`` (sequence, array or tensor) as a 1-D int64 tensor; refuse masks and fractions."""
    if isinstance(values, set | frozenset | dict):
        raise ConfigError(
            f"`{name}` is a {type(values).__name__}, whose order `labeled` and `labels` "
            "cannot share; pass lists in one order (labeled = sorted(labeled), and the labels "
            "in that order)."
        )
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values if values is not None else [])
    if arr.dtype.kind in "USO" and any(isinstance(v, str | bytes) for v in arr.flat):
        first = next(v for v in arr.flat if isinstance(v, str | bytes))
        first = first.decode(errors="replace") if isinstance(first, bytes) else str(first)
        if what == "class indices":  # a class name that looks like a number is no index
            raise ConfigError(
                f"`{name}` holds strings ({first!r}); pass class indices 0..C-1 as integers: "
                "[classes.index(c) for c in labels] for class names, in the order the model "
                "was trained on (a folder class '10' sorts before '2'), or [int(c) for c in "
                "labels] if the strings are the indices."
            )
        raise ConfigError(
            f"`{name}` holds strings ({first!r}); pass integer {what} ([int(i) for i in {name}])."
        )
    if what == "class indices" and arr.ndim == 2 and arr.shape[1] > 1:
        raise ConfigError(
            f"`{name}` of shape {tuple(arr.shape)}: pass one class index per labeled image "
            "(labels.argmax(1) for one-hot rows)."
        )
    if arr.dtype == np.bool_ and what == "indices":
        raise ConfigError(
            f"`{name}` is a boolean mask; pass the indices instead (np.flatnonzero(mask))."
        )
    if arr.ndim > 1 and not (arr.ndim == 2 and arr.shape[1] == 1):  # a column is one list
        of = ", one per labeled image" if what == "class indices" else " into `images`"
        raise ConfigError(
            f"`{name}` of shape {tuple(arr.shape)}: pass a 1-D list of {what}{of} (shape "
            "[k]; a column [k, 1] is read as one)."
        )
    if arr.size and arr.dtype.kind not in "iub":
        try:
            exact = bool(np.all(np.asarray(arr, dtype=np.float64) % 1 == 0))
        except (TypeError, ValueError):
            exact = False
        if not exact:
            raise ConfigError(f"`{name}` must hold integer {what}; got {arr.dtype} values.")
    return torch.as_tensor(np.asarray(arr, dtype=np.int64)).flatten()


def _is_boolean(values: Any) -> bool:
    """Whether ``values`` are booleans (a bool tensor or array, or Python bools)."""
    if isinstance(values, torch.Tensor):
        return values.dtype == torch.bool
    try:
        return np.asarray(values).dtype == np.bool_
    except (TypeError, ValueError):
        return False


def _check_normalizer(normalizer: Any, x: torch.Tensor) -> None:
    """Refuse a ``normalizer`` that is not fishermask's, or whose mean or std has other than
    one entry per channel of ``x``: torch would broadcast one entry over RGB images, or three
    over grey ones (making them RGB), without a word."""
    if not isinstance(normalizer, Normalizer):
        name = type(normalizer).__name__
        if hasattr(normalizer, "mean") and hasattr(normalizer, "std"):  # torchvision's
            raise ConfigError(
                f"`normalizer` is a {name}; pass fishermask's Normalizer (fishermask.training."
                "augment), in the same [0, 1] units as torchvision's Normalize: "
                "Normalizer(tuple(n.mean), tuple(n.std))."
            )
        raise ConfigError(
            f"`normalizer` is a {name}; pass Normalizer(mean, std) (fishermask.training."
            "augment, one entry per channel, in [0, 1] units), or None."
        )
    ch = x.shape[1]
    mean, std = tuple(normalizer.mean), tuple(normalizer.std)
    if len(mean) == len(std) == ch:
        return
    shape = f"[{', '.join(map(str, x.shape))}]"
    if len(mean) == len(std) == 1:
        fix = (
            f"give one per channel, Normalizer({mean} * {ch}, {std} * {ch}) if the same "
            "statistics are meant for every channel, or the statistics of the images the "
            f"model was trained on ({ch}-channel ones)"
        )
    else:
        fix = f"give {ch} of each: the per-channel statistics the model was trained with"
    raise ConfigError(
        f"`normalizer` has {len(mean)} mean and {len(std)} std "
        f"{'entry' if len(mean) == len(std) == 1 else 'entries'} for images of {ch} "
        f"channel{'s' if ch > 1 else ''} ({shape}); {fix}."
    )


def _listed(values: torch.Tensor, most: int = 5) -> str:
    """``values`` as ``3, 7, 9`` (the first ``most``, then how many more)."""
    return listed(values, most, show=int)


def _as_indices(name: str, values: Any, n: int) -> torch.Tensor:
    t = _integers(name, values, "indices")
    outside = t[(t < 0) | (t >= n)]
    if len(outside):
        raise ConfigError(
            f"`{name}` holds indices outside [0, {n}) of `images`: {_listed(outside)}."
        )
    unique, counts = torch.unique(t, return_counts=True)
    if len(unique) != len(t):
        raise ConfigError(f"`{name}` repeats an index: {_listed(unique[counts > 1])}.")
    return t


def _uncompiled(model: nn.Module) -> nn.Module:
    """The module inside ``torch.compile(model)`` (the same weights): the per-sample
    gradients need its layers' outputs, which the compiled graph hides; a compiled
    submodule is refused where the gradients are taken."""
    while is_compiled(model):
        model = model._orig_mod  # type: ignore[assignment]
    return model


def _stack_dataset(ds: torch.utils.data.Dataset) -> torch.Tensor:
    """``[N, Ch, H, W]``: the images of a map-style Dataset's ``(image, label)`` items (or bare
    images), stacked. A PIL image becomes uint8 ``[Ch, H, W]`` (normalised per channel later,
    as a uint8 tensor is); a tensor or array is taken as it is (a transform's output, which
    is what the model takes)."""
    from PIL import Image

    n = len(ds)  # type: ignore[arg-type]
    if n == 0:
        raise ConfigError("`images` is an empty Dataset; give it at least one image.")
    out = []
    for i in range(n):
        item = ds[i]
        image = item[0] if isinstance(item, tuple | list) else item
        if isinstance(image, Image.Image):
            a = np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image)
            t = torch.from_numpy(a.copy())
            t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)  # [Ch, H, W] uint8
        elif isinstance(image, torch.Tensor | np.ndarray):
            t = torch.as_tensor(image)
        else:
            raise ConfigError(
                f"`images` Dataset item {i} holds a {type(image).__name__}; its items must be "
                "(image, label) with a PIL image or a tensor [Ch, H, W]."
            )
        if out and t.shape != out[0].shape:
            raise ConfigError(
                f"`images` Dataset item {i} has shape {tuple(t.shape)} but item 0 "
                f"{tuple(out[0].shape)}; give every image one size (transforms.Resize)."
            )
        out.append(t)
    return torch.stack(out)


def _rounded(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def _refuse_nonfinite(x: torch.Tensor) -> None:
    """Refuse float images holding NaN or ±inf: every score would be NaN, and the strategy
    blamed for it."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        images = torch.nonzero(bad.flatten(1).any(dim=1)).flatten()
        count = int(bad.sum())
        raise ConfigError(
            f"`images` hold {counted(count, 'NaN or infinite value')} "
            f"(image{'s' if len(images) > 1 else ''} {_listed(images)}); fix or drop those "
            "images before asking which to label."
        )


def _refuse_raw_pixels(x: torch.Tensor) -> None:
    """Refuse float images that are whole numbers in 0..255 beyond 0/1: raw pixels
    (``torch.tensor(uint8_array).float()``), which would reach the model unnormalised."""
    if not x.numel():
        return
    hi, lo = float(x.max()), float(x.min())
    if lo >= 0 and 1 < hi <= 255 and bool(torch.all(x == torch.round(x))):
        raise ConfigError(
            f"`images` are {x.dtype} but hold whole numbers in [{lo:g}, {hi:g}]: raw pixels, "
            "which would reach the model unnormalised. Pass them as uint8 "
            "(images.to(torch.uint8)) to be normalised per channel, normalise them as the "
            "model expects, or pass normalizer=Normalizer((0.0,) * Ch, (1.0,) * Ch) "
            "(fishermask.training.augment) to use them as they are."
        )


def _strategy(strategy: str | Strategy, options: dict[str, Any]) -> Strategy:
    """The strategy to run: a registered name with ``options``, a ``"name:key=value,..."``
    spec (as in the runner's config and ``--strategy``), or a ready ``Strategy`` instance."""
    if isinstance(strategy, Strategy):
        if options:
            raise ConfigError(
                f"options {', '.join(sorted(options))} go to the Strategy instance, not to "
                f"fishermask.query: strategies.get({strategy.name!r}, "
                f"{', '.join(f'{k}=...' for k in sorted(options))}), or pass its name."
            )
        return strategy
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        raise ConfigError(
            f"`strategy` is the class {strategy.__name__}; pass an instance "
            f"({strategy.__name__}()) or its registered name ({strategy.name!r})."
        )
    if not isinstance(strategy, str):
        raise ConfigError(
            f"`strategy`={strategy!r}: give a registered strategy's name ('fishermask', "
            "'bait:lam=0.1'; fishermask.strategies.available()) or a Strategy instance."
        )
    spec = StrategySpec.parse(strategy)
    twice = sorted(set(spec.options) & set(options))
    if twice:
        raise ConfigError(
            f"`{twice[0]}` is given twice, in strategy={strategy!r} and as a keyword; keep one."
        )
    return strategies.get(spec.name, **spec.options, **options)


_OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "not enough memory")


def _from_the_input(exc: Exception) -> bool:
    """Whether ``exc``, raised by the model's forward, may come from the images it was given
    (a shape, channel count or dtype it does not take): not running out of memory, nor a
    model without a forward, where a note to give the images otherwise would mislead."""
    if isinstance(exc, (MemoryError, NotImplementedError, torch.OutOfMemoryError)):
        return False
    if not isinstance(exc, (RuntimeError, ValueError, TypeError, IndexError, AssertionError)):
        return False
    text = str(exc).lower()
    return not any(words in text for words in _OUT_OF_MEMORY)


def query(
    model: nn.Module,
    images: torch.Tensor | np.ndarray,
    *,
    labeled: Sequence[int] | torch.Tensor | np.ndarray = (),
    labels: Sequence[int] | torch.Tensor | np.ndarray = (),
    budget: int = 50,
    strategy: str | Strategy = "fishermask",
    candidates: Sequence[int] | torch.Tensor | np.ndarray | None = None,
    normalizer: Normalizer | None = None,
    seed: int | torch.Generator = 0,
    batch_size: int = 512,
    aux: nn.Module | None = None,
    **options: Any,
) -> QueryResult:
    """Choose ``budget`` images to label next with the registered strategy ``strategy``.

    Args:
        model: a trained fishermask ``Classifier`` or any ``nn.Module`` mapping a batch to
            logits ``[B, C]`` (or a tuple/list with the logits first, or a dict with a
            ``"logits"`` key, as Hugging Face models return) whose head is the
            ``nn.Linear`` that runs last (see :class:`ModuleClassifier`). Used in eval mode;
            its mode is restored afterwards.
        images: ``[N, Ch, H, W]``: uint8 (then normalised by ``normalizer``) or float already
            normalised the way the model expects (then ``normalizer`` defaults to none).
            Also a map-style torch ``Dataset`` of ``(image, label)`` items, whose images are
            stacked (PIL images as uint8; tensors as they are); its labels are not read.
        labeled: indices of the labeled images; ``labels``: their classes, integers 0..C-1
            (strings are refused, class names and numeric strings alike: a class name is no
            index).
        budget: how many images to choose; 0 gives an empty choice (``QueryResult`` of an
            empty int64 tensor and ``None``) without running the strategy.
        strategy: a registered strategy name (``fishermask.strategies.available()``);
            ``**options`` are its options (e.g. ``sparsity=0.02``). Also a spec as in the
            runner's config (``"fishermask:sparsity=0.02"``) or a ``Strategy`` instance
            (``strategies.get("bait", lam=0.1)``, or your own; then no ``**options``).
        candidates: indices that may be chosen (default: every unlabeled image).
        normalizer: ``Normalizer(mean, std)`` (:mod:`fishermask.training.augment`, per
            channel, in [0, 1] units) for uint8 ``images``: use the statistics the model was
            trained with. Default for uint8: ``Normalizer.fit(images)``, the statistics of
            the images passed (as the runner does on its training split), with a warning
            saying so; for float images none (they are taken as they are).
        seed: an int or a ``torch.Generator`` for the strategy's random draws; the same seed
            gives the same draws on every call, so a loop passes its round (``seed=r``).
        batch_size: images per forward (and gradient) chunk of the query (bounds memory).
        aux: the jointly trained module of ``lpl``/``lplgrad``, if any.

    Returns:
        :class:`QueryResult` ``(indices, scores)``; indices into ``images`` in the order
        chosen; scores ``None`` for strategies that have none (random, FisherMask, BAIT,
        TypiClust, ProbCover); for k-center and BADGE each pick's (squared, for BADGE)
        distance to the nearest earlier center; for the others each pick's score
        (docs/methods.md §4, §5, §9: entropy, margin, top probability, predicted loss,
        gradient norm, mutual information; BatchBALD's is the batch's joint mutual
        information once that pick is added).
    """
    if isinstance(images, torch.utils.data.Dataset) and not isinstance(images, IterableDataset):
        images = _stack_dataset(images)
    if not isinstance(images, torch.Tensor | np.ndarray):
        raise ConfigError(
            f"`images` is a {type(images).__name__}; fishermask.query needs one tensor or NumPy "
            "array [N, Ch, H, W]: torch.stack(images) for a list, or "
            "torch.stack([ds[i][0] for i in range(len(ds))]) for a Dataset of (image, label)."
        )
    x = torch.as_tensor(images)
    if not (x.dtype == torch.uint8 or x.is_floating_point()):
        # int64 0..255 (torch.tensor of a NumPy array) would go to the model as it is, unscaled
        raise ConfigError(
            f"`images` are {x.dtype}; pass uint8 0..255 (normalised per channel here, as the "
            "runner does: images.to(torch.uint8)) or float inputs already normalised the way "
            "the model expects."
        )
    if x.dim() != 4:
        raise ConfigError(f"`images` must be [N, Ch, H, W], got shape {tuple(x.shape)}.")
    # [N, H, W, C]: per-channel statistics would be per row (features [N, D, 1, 1] are fine)
    if x.shape[-1] in (1, 3) and x.shape[1] > 4 and x.shape[2] > 4:
        raise ConfigError(
            f"`images` of shape {tuple(x.shape)} look channel-last [N, H, W, C]; "
            "fishermask.query needs [N, Ch, H, W]: pass images.permute(0, 3, 1, 2) (a model "
            "that wants channel-last input can permute back in its forward)."
        )
    if x.is_floating_point():
        _refuse_nonfinite(x)
    n = len(x)
    lab = _as_indices("labeled", labeled, n)
    y = _integers("labels", labels, "class indices")
    if len(y) != len(lab):
        raise ConfigError(f"`labels` has {len(y)} entries for {len(lab)} `labeled` indices.")
    if normalizer is not None:
        _check_normalizer(normalizer, x)
    elif x.dtype == torch.uint8:
        normalizer = Normalizer.fit(x)
        warnings.warn(
            "fishermask.query normalises these uint8 `images` with their own per-channel "
            f"statistics (mean {_rounded(normalizer.mean)}, std {_rounded(normalizer.std)}"
            ", in [0, 1] units), not with those the model was trained on; if it was "
            "trained otherwise (ImageNet statistics, plain /255), pass "
            "normalizer=Normalizer(mean, std) (fishermask.training.augment) or float "
            "images normalised as it expects; normalizer=Normalizer.fit(images) keeps "
            "this choice without the warning.",
            UserWarning,
            stacklevel=2,
        )
    else:
        _refuse_raw_pixels(x)
        normalizer = Normalizer((0.0,) * x.shape[1], (1.0,) * x.shape[1])
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or batch_size < 1
    ):
        raise ConfigError(f"`batch_size`={batch_size!r}, must be an integer >= 1.")
    if not isinstance(seed, torch.Generator) and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
    ):
        raise ConfigError(f"`seed`={seed!r}, must be an integer or a torch.Generator.")
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"`model` is a {type(model).__name__}; fishermask.query needs a torch nn.Module "
            "(x -> logits [B, C], its head an nn.Linear): the strategies read its layers, "
            "not only its outputs."
        )
    model = _uncompiled(model)
    if isinstance(model, Classifier):
        clf = model
    else:  # the head is the nn.Linear that runs last on a few of the images
        device = next(iter(model.parameters()), torch.empty(0)).device
        example = normalizer(x[:16].to(device), input_dtype(model))
        try:
            clf = ModuleClassifier(model, example=example)
        except FishermaskError:  # its own checks (probabilities, one logit): one line already
            raise
        except Exception as exc:  # the model's own forward: say what it was given
            if _from_the_input(exc):
                exc.add_note(
                    f"fishermask.query: raised by the model on images[:16], shape "
                    f"[{', '.join(map(str, example.shape))}] ({example.dtype}): give `images` "
                    "as the model takes them (channels, size)."
                )
            raise
    if _is_boolean(labels) and clf.num_classes != 2:  # True/False as classes 1/0 of 10?
        raise ConfigError(
            f"`labels` are booleans, read as classes 0 and 1, but the model has "
            f"{clf.num_classes} outputs; pass each labeled image's class index, integers "
            f"0..{clf.num_classes - 1} (booleans are class indices for a two-class model "
            "only; a mask of the labeled images goes to `labeled` as np.flatnonzero(mask))."
        )
    wrong = torch.nonzero((y < 0) | (y >= clf.num_classes)).flatten()  # positions in labels
    if len(wrong):
        i = int(wrong[0])
        raise ConfigError(
            f"`labels` must be class indices in [0, {clf.num_classes}) (the model's "
            f"{clf.num_classes} outputs); it holds {int(y[i])} (for labeled image {int(lab[i])})"
            + (f" and {len(wrong) - 1} more outside" if len(wrong) > 1 else "")
            + "."
        )
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    strat = _strategy(strategy, options)
    strat.check(clf)

    why = f"{n} images" + (f", {len(lab)} of them labeled" if len(lab) else "")
    if candidates is None:
        pool_ids = torch.arange(n)  # the runner's layout: the pool is every image
    else:
        cand = _as_indices("candidates", candidates, n)
        taken = int(torch.isin(cand, lab).sum())
        why += f", {len(cand)} candidates" + (f", {taken} of them labeled" if taken else "")
        cand = cand[~torch.isin(cand, lab)]
        pool_ids = torch.cat([lab, cand]).sort().values
    position = torch.full((n,), -1, dtype=torch.int64)
    position[pool_ids] = torch.arange(len(pool_ids))
    pool = Pool(len(pool_ids))
    if len(lab):
        pool.add(position[lab].tolist(), y)
    if isinstance(budget, bool) or not isinstance(budget, numbers.Integral) or budget < 0:
        raise ConfigError(f"`budget`={budget!r}, must be an integer >= 0.")
    if budget == 0:  # nothing to choose (a loop's last round): the strategy does not run
        return QueryResult(torch.empty(0, dtype=torch.int64), None)
    if budget > pool.num_unlabeled:
        free = pool.num_unlabeled
        raise ConfigError(
            f"`budget`={budget} is larger than the {counted(free, 'image')} that "
            f"may be chosen ({why})"
            + (
                f"; ask for at most {free}."
                if free
                else "; none is left: add unlabeled images (or candidates), or stop querying."
            )
        )
    # every submodule gets its own mode back (a plain module's wrapper has no mode of its own)
    with eval_mode(clf, aux):
        ctx = QueryContext(
            model=clf,
            pool=pool,
            images=x[pool_ids] if candidates is not None else x,
            normalizer=normalizer,
            generator=gen,
            aux=aux,
            batch_size=int(batch_size),
        )
        sel = strat.select(ctx, budget)
    chosen = pool_ids[sel.indices]
    scores = sel.scores.detach().cpu() if sel.scores is not None else None
    return QueryResult(chosen, scores)
