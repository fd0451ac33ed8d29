"""Strategy registry: ``register`` (class decorator), ``get(name, **options)``, ``available()``."""

from __future__ import annotations

import dataclasses
from typing import Any

from fishermask.errors import ConfigError
from fishermask.plugins import redefined
from fishermask.strategies.base import Strategy
from fishermask.text import did_you_mean
from fishermask.validation import coerce_field

_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: register ``cls`` (a ``Strategy`` dataclass) under ``cls.name``.

    The name is then usable wherever a built-in's is (``fishermask.query(strategy=...)``,
    the runner's ``strategies``, ``get``). Another class under a name already taken raises
    ``TypeError``; the same definition run again in ``__main__`` (a re-run notebook cell)
    replaces the old one.
    """
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} needs a non-empty `name`.")
    old = _REGISTRY.get(cls.name)
    if old is not None and old is not cls and not redefined(old, cls):
        raise TypeError(f"Strategy name {cls.name!r} is registered twice.")
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """The names of the registered strategies, in registration order (built-ins first)."""
    return list(_REGISTRY)


def strategy_class(name: str) -> type[Strategy]:
    """The registered class of strategy ``name``."""
    if not isinstance(name, str):
        raise ConfigError(
            f"Unknown strategy {name!r} (an {type(name).__name__}); a strategy is named by a "
            f"string, one of: {', '.join(_REGISTRY)}."
        )
    if name not in _REGISTRY:
        raise ConfigError(
            did_you_mean(
                f"Unknown strategy {name!r}; supported: {', '.join(_REGISTRY)}.", name, _REGISTRY
            )
        )
    return _REGISTRY[name]


def get(name: str, **options: Any) -> Strategy:
    """An instance of the strategy ``name`` with ``options`` (unknown options are errors)."""
    cls = strategy_class(name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        known = ", ".join(fields) or "none"
        raise ConfigError(
            did_you_mean(
                f"Unknown option(s) {', '.join(unknown)} for strategy {name!r}; "
                f"its options: {known}.",
                unknown,
                fields,
            )
        )
    coerced = {k: coerce_field(cls, k, v, f"{name}:{k}") for k, v in options.items()}
    return cls(**coerced)
