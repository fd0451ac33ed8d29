"""``check_strategy``: the contract every built-in strategy is tested against, for yours.

A strategy of your own passes when, on a small random problem (a half-width CNN on
random 8 x 8 images, every other pool item labeled), it returns ``budget`` unique
unlabeled *pool* indices (with every other item labeled, positions within
``ctx.pool.unlabeled`` mistaken for pool indices land on labeled items and are caught),
makes the same choice under the same query generator, leaves the model (and its
auxiliary module) unchanged (weights, buffers, ``.grad``, ``requires_grad``) and in eval mode
(every submodule), and can take the whole unlabeled pool.
Each breach is a :class:`~fishermask.strategies.base.StrategyError` of one line.
"""

from __future__ import annotations

import torch

from fishermask.al.pool import Pool
from fishermask.models.base import Classifier
from fishermask.strategies.base import QueryContext, Strategy, StrategyError
from fishermask.training.augment import Normalizer


def _context(
    model: Classifier,
    aux: torch.nn.Module | None,
    n: int,
    image_shape: tuple[int, int, int],
    seed: int,
) -> QueryContext:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *image_shape), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, model.num_classes, (n,), generator=g)
    pool = Pool(n)
    every_other = torch.arange(0, n, 2)  # positions in `unlabeled` are mostly labeled items
    pool.add(every_other.tolist(), labels[every_other])
    return QueryContext(
        model=model,
        pool=pool,
        images=images,
        normalizer=Normalizer.fit(images),
        generator=torch.Generator().manual_seed(seed + 1),
        aux=aux,
        batch_size=16,
    )


def _modules(ctx: QueryContext) -> list[torch.nn.Module]:
    return [ctx.model] + ([ctx.aux] if ctx.aux is not None else [])


def _state(ctx: QueryContext) -> list[torch.Tensor]:
    return [t.detach().clone() for m in _modules(ctx) for t in m.state_dict().values()]


def _grads(ctx: QueryContext) -> list[tuple[bool, torch.Tensor | None]]:
    """Each parameter's ``requires_grad`` and ``.grad`` (a copy)."""
    return [
        (p.requires_grad, None if p.grad is None else p.grad.detach().clone())
        for m in _modules(ctx)
        for p in m.parameters()
    ]


def _same_grads(a: list, b: list) -> bool:
    return all(
        ra == rb and (ga is None) == (gb is None) and (ga is None or torch.equal(ga, gb))
        for (ra, ga), (rb, gb) in zip(a, b, strict=True)
    )


def check_strategy(
    strategy: Strategy,
    *,
    model: Classifier | None = None,
    n: int = 60,
    budget: int = 7,
    image_shape: tuple[int, int, int] = (1, 8, 8),
    seed: int = 0,
) -> None:
    """Raise ``StrategyError`` (one line) at ``strategy``'s first breach of the contract.

    ``model``: a ``Classifier`` for ``image_shape`` inputs (default: the half-width ``cnn``
    with 4 classes); pass one when the strategy needs something particular (e.g. dropout).
    """
    from fishermask.models import build_model

    name = strategy.name or type(strategy).__name__
    if model is None:
        torch.manual_seed(seed)
        model = build_model("cnn", 4, image_shape, width=0.5)
    model.eval()
    strategy.check(model)
    torch.manual_seed(seed)
    aux = strategy.make_auxiliary(model)
    if aux is not None:
        aux.eval()
    args = (model, aux, n, image_shape, seed)

    ctx = _context(*args)
    before, grads = _state(ctx), _grads(ctx)
    first = strategy.select(ctx, budget).indices  # count, uniqueness, range, unlabeled
    training = [n for m in _modules(ctx) for n, sub in m.named_modules() if sub.training]
    if training:  # a submodule too: e.g. dropout switched on and left on
        where = f" (submodule {training[0]!r})" if training[0] else ""
        raise StrategyError(
            f"strategy {name!r} left the model in training mode{where}; leave it in eval mode "
            "(use torch.no_grad() and do not call model.train())."
        )
    after = _state(ctx)
    if not all(torch.equal(a, b) for a, b in zip(before, after, strict=True)):
        raise StrategyError(
            f"strategy {name!r} changed the model's weights or buffers while querying; work on "
            "a copy (copy.deepcopy(ctx.model)) if it must train something."
        )
    if not _same_grads(grads, _grads(ctx)):  # fishermask.query hands a user's model to it
        raise StrategyError(
            f"strategy {name!r} changed the model's .grad or requires_grad while querying; "
            "take gradients with torch.autograd.grad(out, params) (or fishermask.fisher), "
            "not loss.backward(), and leave requires_grad as it is."
        )
    again = strategy.select(_context(*args), budget).indices
    if not torch.equal(first, again):
        raise StrategyError(
            f"strategy {name!r} chose {first.tolist()} and then {again.tolist()} under the same "
            "query generator; draw every random number from ctx.generator "
            "(torch.randperm(..., generator=ctx.generator)), not from torch's global one."
        )
    ctx = _context(*args)
    whole = strategy.select(ctx, ctx.pool.num_unlabeled).indices
    if sorted(whole.tolist()) != ctx.pool.unlabeled.tolist():  # select checked the rest
        raise StrategyError(f"strategy {name!r} cannot take the whole unlabeled pool.")
