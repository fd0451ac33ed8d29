"""User-facing errors and the validation helpers that raise them.

Every message names the offending value, the limit it broke and, where there is
one, the fix. The CLI prints ``FishermaskError`` as a single line and exits 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable

from fishermask.text import did_you_mean


class FishermaskError(Exception):
    """An error caused by the user's input or configuration (one-line message)."""


class DataError(FishermaskError):
    """A data set could not be found, read or interpreted."""


class ConfigError(FishermaskError):
    """A configuration value is invalid or inconsistent."""


def check_positive(name: str, value: int, *, allow_zero: bool = False) -> int:
    """Return ``value`` if it is a positive (or non-negative) integer, else raise."""
    limit = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < limit:
        raise ConfigError(f"`{name}`={value!r}, must be an integer >= {limit}.")
    return value


def check_choice(name: str, value: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise naming them all (and the
    close ones: "did you mean")."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(
            did_you_mean(
                f"Unknown {name} {value!r}; supported: {', '.join(choices)}.", value, choices
            )
        )
    return value
