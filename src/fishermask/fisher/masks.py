"""Parameter masks: which k weights FisherMask keeps (docs/methods.md §2.2, paper Fig. 2).

Index convention: P total parameter entries, k masked (kept) entries. A mask is
a ``dict[str, BoolTensor]`` keyed like ``model.named_parameters()``, each value
shaped like its parameter; the masked columns of :func:`masked_grads` follow the
dict's parameter order and row-major order inside each tensor.

Ties are broken deterministically: values in descending order, equal values by
ascending flat position (parameters in dict order, entries row-major).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from fishermask.errors import ConfigError, check_choice

MaskMode = Literal["standard", "dispersed"]
MASK_MODES: tuple[str, ...] = get_args(MaskMode)


@dataclass(frozen=True)
class MaskProfileRow:
    """One parameter tensor's share of a mask (a bar of the paper's Fig. 2)."""

    name: str
    kept: int
    size: int

    @property
    def fraction(self) -> float:
        """Fraction of this tensor's entries that are kept."""
        return self.kept / self.size if self.size else 0.0


def default_always(names_and_shapes: Mapping[str, torch.Size | Sequence[int]]) -> list[str]:
    """The parameters standard mode keeps whole by default: the last matrix in dict order.

    For a classifier ending in ``nn.Linear`` this is the final layer's weight ``[C, D]``
    (the "61st layer" spike of the paper's Fig. 2, and exactly BAIT's parameter set).
    Its bias is *not* included by default: docs/methods.md §2.2 keeps every weight of the
    final linear layer's matrix, and BAIT's embedding (docs/methods.md §3) has no bias part; pass
    ``always=["classifier.weight", "classifier.bias"]`` to keep it as well.
    """
    matrices = [name for name, shape in names_and_shapes.items() if len(shape) >= 2]
    return matrices[-1:]


def head_always(model: nn.Module, example: torch.Tensor | None = None) -> list[str]:
    """Standard mode's always-kept parameter for ``model``: its head's weight, by name.

    A model that names its head ``model.classifier`` (every fishermask ``Classifier``, and
    the adapter ``fishermask.query`` wraps a plain ``nn.Module`` in) gives that layer's
    weight, wherever it is registered. Otherwise, with ``example`` (a few inputs as the
    model receives them), the weight of the ``nn.Linear`` that runs last on them, as
    ``fishermask.query`` finds the head; without it, :func:`default_always` (the last matrix
    in registration order, which is not the head when the head is registered first).
    """
    params = dict(model.named_parameters())
    head = getattr(model, "classifier", None)
    if head is None and example is not None:
        from fishermask.models.module import ModuleClassifier

        head = ModuleClassifier(model, example=example).classifier
    weight = getattr(head, "weight", None)
    if isinstance(weight, torch.Tensor):
        names = [n for n, p in params.items() if p is weight]
        if names:
            return names[:1]
    return default_always({n: p.shape for n, p in params.items()})


def _flat_order(values: torch.Tensor) -> torch.Tensor:
    """Positions of ``values`` sorted by value descending, ties by position ascending."""
    return torch.sort(values, descending=True, stable=True).indices


def _check_diag(diag: Mapping[str, torch.Tensor]) -> None:
    if not diag:
        raise ConfigError("`diag` is empty; pass the dict returned by diag_fisher(model, ...).")
    for name, value in diag.items():
        if not torch.isfinite(value).all():
            raise ConfigError(
                f"`diag[{name!r}]` contains NaN or inf; the Fisher values must be finite "
                "(check the model's outputs for overflow)."
            )


def _check_k(k: int, total: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"`k`={k!r}, must be an integer >= 1.")
    if k > total:
        raise ConfigError(
            f"`k`={k} exceeds the {total} parameter entries available; choose k <= {total} "
            "(e.g. a smaller sparsity)."
        )


def _dispersed_quotas(sizes: list[int], k: int) -> list[int]:
    """Largest-remainder split of k proportional to ``sizes``; sums to exactly k."""
    total = sum(sizes)
    exact = [k * s / total for s in sizes]
    quotas = [int(k * s // total) for s in sizes]
    remainders = [(-(e - q), i) for i, (e, q) in enumerate(zip(exact, quotas, strict=True))]
    for _, i in sorted(remainders)[: k - sum(quotas)]:
        quotas[i] += 1
    return quotas


def top_k_mask(
    diag: Mapping[str, torch.Tensor],
    k: int,
    *,
    mode: MaskMode = "standard",
    always: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Keep exactly ``k`` parameter entries with the largest diagonal Fisher (docs/methods.md §2.2).

    Args:
        diag: diagonal Fisher per parameter (from :func:`diag_fisher`), in parameter order.
        k: number of entries to keep (``1 <= k <=`` total entries).
        mode: ``"standard"``: keep every entry of the ``always`` parameters, fill the rest of
            k with the global top values of all other parameters (the authors' reference
            mode). ``"dispersed"``: keep the same fraction k/P of every tensor, rounded by
            largest remainder so the total is exactly k; the top values inside each tensor.
        always: names kept whole in standard mode; default :func:`default_always` (the
            final linear layer's weight). ``[]`` keeps nothing whole. Not allowed with
            ``mode="dispersed"``.

    Returns:
        ``dict[name, BoolTensor]`` shaped like ``diag``, with exactly k ``True`` entries.

    Raises:
        ConfigError: unknown mode or name, k out of range, or ``always`` alone larger than k.
    """
    check_choice("mask mode", mode, MASK_MODES)
    _check_diag(diag)
    names = list(diag)
    sizes = [diag[n].numel() for n in names]
    _check_k(k, sum(sizes))
    masks = {n: torch.zeros(diag[n].shape, dtype=torch.bool, device=diag[n].device) for n in names}

    if mode == "dispersed":
        if always:
            raise ConfigError(
                f"`always`={list(always)!r} is only used by mode='standard'; "
                "dispersed mode takes the same fraction from every tensor. Drop `always`."
            )
        for name, quota in zip(names, _dispersed_quotas(sizes, k), strict=True):
            order = _flat_order(diag[name].detach().flatten())  # [numel]
            masks[name].view(-1)[order[:quota]] = True
        return masks

    always = default_always({n: diag[n].shape for n in names}) if always is None else list(always)
    unknown = [n for n in always if n not in diag]
    if unknown:
        raise ConfigError(f"`always` names {unknown} not among the parameters {names}.")
    n_always = sum(diag[n].numel() for n in set(always))
    if n_always > k:
        raise ConfigError(
            f"The always-kept parameters {sorted(set(always))} hold {n_always} entries, more "
            f"than k={k}; raise k (sparsity) to >= {n_always} or pass a smaller `always`."
        )
    for name in always:
        masks[name].fill_(True)
    rest = [n for n in names if n not in set(always)]
    if k > n_always and rest:
        device = diag[rest[0]].device
        values = torch.cat([diag[n].detach().flatten().to(device, torch.float64) for n in rest])
        chosen = _flat_order(values)[: k - n_always]  # [k - n_always] global flat positions
        offset = 0
        for name in rest:
            size = diag[name].numel()
            local = chosen[(chosen >= offset) & (chosen < offset + size)] - offset
            masks[name].view(-1)[local.to(masks[name].device)] = True
            offset += size
    return masks


def mask_profile(mask: Mapping[str, torch.Tensor]) -> list[MaskProfileRow]:
    """Per-parameter kept counts and sizes, in mask order (data for the paper's Fig. 2)."""
    return [MaskProfileRow(n, int(m.sum().item()), m.numel()) for n, m in mask.items()]


def mask_size(mask: Mapping[str, torch.Tensor]) -> int:
    """Total number of kept entries k."""
    return sum(int(m.sum().item()) for m in mask.values())


def random_mask(
    model_or_shapes: nn.Module | Mapping[str, torch.Size | Sequence[int]],
    k: int,
    generator: torch.Generator | None = None,
    *,
    min_per_tensor: int = 0,
) -> dict[str, torch.Tensor]:
    """A uniformly random mask with exactly k entries (for benchmarks and tests).

    Args:
        model_or_shapes: a model (its ``named_parameters()``) or ``{name: shape}``.
        k: number of entries to keep.
        generator: CPU random generator, for reproducibility.
        min_per_tensor: first keep this many random entries of every tensor (capped by its
            size), so that the mask reaches every layer; the rest uniformly over all entries.

    Returns:
        ``dict[name, BoolTensor]`` on CPU (or on the model's parameter devices).
    """
    if isinstance(model_or_shapes, nn.Module):
        shapes = {n: p.shape for n, p in model_or_shapes.named_parameters()}
        devices = {n: p.device for n, p in model_or_shapes.named_parameters()}
    else:
        shapes = {n: torch.Size(s) for n, s in model_or_shapes.items()}
        devices = {n: torch.device("cpu") for n in shapes}
    sizes = [torch.Size(s).numel() for s in shapes.values()]
    _check_k(k, sum(sizes))
    floor = [min(min_per_tensor, s) for s in sizes]
    if sum(floor) > k:
        raise ConfigError(
            f"`min_per_tensor`={min_per_tensor} needs {sum(floor)} entries over {len(sizes)} "
            f"tensors, more than k={k}; lower min_per_tensor or raise k."
        )
    flat = torch.zeros(sum(sizes), dtype=torch.bool)
    offset = 0
    for size, m in zip(sizes, floor, strict=True):
        pick = torch.randperm(size, generator=generator)[:m]
        flat[offset + pick] = True
        offset += size
    free = (~flat).nonzero().squeeze(1)
    flat[free[torch.randperm(free.numel(), generator=generator)[: k - sum(floor)]]] = True
    out, offset = {}, 0
    for (name, shape), size in zip(shapes.items(), sizes, strict=True):
        out[name] = flat[offset : offset + size].view(shape).to(devices[name])
        offset += size
    return out
