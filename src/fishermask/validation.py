"""One mechanism that checks every configuration value against its type annotation.

Every configuration dataclass (the sections of an experiment, a strategy's
options) is validated field by field from its annotations with pydantic, whether
the values come from a file, the command line or Python code. A field added to a
dataclass is validated from its annotation with no further code; bounds can be
declared in the annotation too (``Annotated[float, Field(gt=0)]``).

Coercion is pydantic's lax mode: ``"1e-3"`` (a string to YAML) becomes 0.001,
``"no"`` becomes ``False``, a list becomes a tuple, ``"16x16"`` or ``"5,0,5"``
becomes a tuple of integers, and ``"none"`` is ``None`` where ``None`` is allowed.
A boolean is never taken for a number, nor for an item of a tuple of numbers
(``image_size: [true, 3]``), and an unreadable value is a
:class:`~fishermask.errors.ConfigError` of one line that names the field, the value
and what is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any, ClassVar

from pydantic import TypeAdapter, ValidationError

from fishermask.errors import ConfigError


def coerce_field(owner: type, name: str, value: Any, where: str) -> Any:
    """``value`` checked and converted to the annotated type of field ``name`` of ``owner``.

    ``where`` names the field in messages: ``"train.lr"``, or ``"fishermask:sparsity"``
    for a strategy option (as the command line writes it).
    """
    hint = _hints(owner)[name]
    if isinstance(value, bool) and not _admits_bool(hint):
        raise ConfigError(f"`{where}`={value!r}, must be of type {_describe(hint)}, not a boolean.")
    _refuse_bool_items(hint, value, where)
    parts = _parts(hint)
    if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in parts:
        if str not in parts:
            return None
    given = value
    if isinstance(value, str) and _int_tuple(hint):
        value = _split_ints(value, where)
    try:
        return _adapter(owner, name).validate_python(value)
    except ValidationError as e:
        n = _int_tuple_length(hint)
        if n is not None:  # pydantic said "Field required" of a missing second number
            example = "x".join(["32"] * n) + (" (HxW)" if n == 2 else "")
            raise ConfigError(
                f"`{where}`={given!r}, must be {n} integers, e.g. {example} or "
                f"[{', '.join(['32'] * n)}]."
            ) from None
        raise ConfigError(f"`{where}`={given!r}, {_reason(e)}.") from None


def validate_fields(obj: Any, section: str) -> None:
    """Check and convert every field of the (frozen) dataclass ``obj`` in place."""
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        where = f"{section}.{f.name}" if section else f.name
        value = getattr(obj, f.name)
        new = coerce_field(type(obj), f.name, value, where)
        if new is not value:
            object.__setattr__(obj, f.name, new)


@dataclasses.dataclass(frozen=True)
class Section:
    """Base of the configuration sections: fields validated on construction, then ``check``.

    Subclasses set ``section`` (the key in a config file) and put cross-field rules
    in :meth:`check` instead of ``__post_init__``.
    """

    section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        validate_fields(self, self.section)
        self.check()

    def check(self) -> None:
        """Rules beyond each field's type (ranges, choices, consistency); raise ConfigError."""


@functools.cache
def _hints(owner: type) -> dict[str, Any]:
    return typing.get_type_hints(owner, include_extras=True)


@functools.cache
def _adapter(owner: type, name: str) -> TypeAdapter[Any]:
    return TypeAdapter(_hints(owner)[name])


def _parts(hint: Any) -> tuple[Any, ...]:
    """The members of a union (``int | None`` -> int, None), the type itself otherwise."""
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, _UnionType):
        return tuple(a for arg in typing.get_args(hint) for a in _parts(arg))
    return (hint,)


_UnionType = type(int | None)


def _admits_bool(hint: Any) -> bool:
    return any(p is bool or p is Any or p is object for p in _parts(hint))


def _refuse_bool_items(hint: Any, value: Any, where: str) -> None:
    """Refuse a boolean item of a list or tuple given for a field of tuples of numbers, which
    pydantic's lax mode reads as 1 or 0 (``image_size: [true, 3]`` became ``(1, 3)``)."""
    if not isinstance(value, (list, tuple)):
        return
    items = [
        a
        for p in _parts(hint)
        if typing.get_origin(p) in (tuple, list)
        for a in typing.get_args(p)
        if a is not Ellipsis
    ]
    if not items or any(a not in (int, float) for a in items):
        return  # booleans allowed, or refused by pydantic (a string is not read from one)
    bad = [i for i, v in enumerate(value) if isinstance(v, bool)]
    if bad:
        what = "an integer" if all(a is int for a in items) else "a number"
        fixed = [int(v) if isinstance(v, bool) else v for v in value]
        raise ConfigError(
            f"`{where}`={value!r}: {value[bad[0]]!r} (item {bad[0] + 1}) is a boolean, not "
            f"{what}; write the number, e.g. {fixed!r}."
        )


def _int_tuple(hint: Any) -> bool:
    for p in _parts(hint):
        if typing.get_origin(p) is tuple and typing.get_args(p):
            if all(a is int or a is Ellipsis for a in typing.get_args(p)):
                return True
    return False


def _int_tuple_length(hint: Any) -> int | None:
    """``n`` for a field of ``n`` integers (``tuple[int, int]``: 2), else ``None``."""
    for p in _parts(hint):
        args = typing.get_args(p)
        if typing.get_origin(p) is tuple and args and all(a is int for a in args):
            return len(args)
    return None


def _split_ints(text: str, where: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"`{where}`={text!r}, must be integers separated by commas (or HxW)."
        ) from None


def _describe(hint: Any) -> str:
    names = []
    for p in _parts(hint):
        if p is type(None):
            names.append("null")
        else:
            names.append(getattr(p, "__name__", str(p)))
    return " or ".join(names)


def _reason(e: ValidationError) -> str:
    """pydantic's first complaint, phrased as what the value must be."""
    err = e.errors(include_url=False)[0]
    msg = str(err["msg"])
    for prefix in ("Input should be ", "Value should be "):
        if msg.startswith(prefix):
            msg = "must be " + msg[len(prefix) :]
    return msg
