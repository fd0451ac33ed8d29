"""Safe names made from free text (strategy labels, class names, paths)."""

from __future__ import annotations

from itertools import groupby


def slug(text: str, *, keep: str = "", sep: str = "_", unicode: bool = False) -> str:
    """``text`` with each run of characters other than letters, digits and ``keep`` made ``sep``.

    Letters and digits are ASCII ones unless ``unicode`` (then those of any script).
    """

    def ok(c: str) -> bool:
        return c in keep or (c.isalnum() and (unicode or c.isascii()))

    return "".join("".join(run) if good else sep for good, run in groupby(text, ok))
