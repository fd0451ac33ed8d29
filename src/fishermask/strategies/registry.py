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
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} needs a non-empty `name`.")
    old = _REGISTRY.get(cls.name)
    if old is not None and old is not cls and not redefined(old, cls):
        raise TypeError(f"Strategy name {cls.name!r} is registered twice.")
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    return list(_REGISTRY)


def strategy_class(name: str) -> type[Strategy]:
    """The registered class of strategy ``name``."""
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
