"""Safe names made from free text (strategy labels, class names, paths), and CSV cells
a spreadsheet shows as text."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from itertools import groupby
from typing import Any


def slug(text: str, *, keep: str = "", sep: str = "_", unicode: bool = False) -> str:
    """``text`` with each run of characters other than letters, digits and ``keep`` made ``sep``.

    Letters and digits are ASCII ones unless ``unicode`` (then those of any script).
    """

    def ok(c: str) -> bool:
        return c in keep or (c.isalnum() and (unicode or c.isascii()))

    return "".join("".join(run) if good else sep for good, run in groupby(text, ok))


# A spreadsheet runs a cell that starts with one of these as a formula ("CSV injection"):
# an image named `=HYPERLINK(...).png` would be a live link in the export opened in Excel.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _runs_as_formula(cell: str) -> bool:
    """Whether ``cell``, leading ``'`` aside, starts like a formula (a number such as ``-1``
    does not)."""
    core = cell.lstrip("'")
    return core.startswith(_FORMULA_START) and not _is_number(core)


def spreadsheet_safe(cell: object) -> object:
    """A CSV cell a spreadsheet shows as text: a string starting with ``= + - @``, tab or
    carriage return (and not a plain number such as ``-1``) gets a leading ``'``, the
    usual escape; so does one that starts so after its own leading ``'`` (the escape stays
    reversible); anything else is returned as it is. :func:`spreadsheet_unsafe` undoes it."""
    if isinstance(cell, str) and _runs_as_formula(cell):
        return "'" + cell
    return cell


def spreadsheet_unsafe(cell: str) -> str:
    """The cell :func:`spreadsheet_safe` escaped, as it was (other cells unchanged)."""
    if cell.startswith("'") and _runs_as_formula(cell):
        return cell[1:]
    return cell


class SpreadsheetCsv:
    """``csv.writer(f, lineterminator="\\n")`` whose every cell is :func:`spreadsheet_safe`:
    the writer of every CSV file the labeling tool hands out (paths and class names are
    whatever the user's files are called)."""

    def __init__(self, f: Any) -> None:
        self._w = csv.writer(f, lineterminator="\n")

    def writerow(self, row: Iterable[object]) -> None:
        self._w.writerow([spreadsheet_safe(c) for c in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)


def utc_iso(t: float | None = None) -> str:
    """``2026-12-02T04:53:42Z``: the time ``t`` (seconds since the epoch; None: now) as the
    labeling tool writes it in its CSV and JSON (UTC, ISO 8601)."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def utc_clock(t: float, now: float | None = None) -> str:
    """``23:58 UTC`` for a time ``t`` (seconds since the epoch) of today, ``2026-11-30 23:58
    UTC`` for one of another day (``now``: the current time). Always UTC, and said so: the
    times the labeling tool shows (a check's time on a page opened from other machines, a
    server's start in another process's refusal) are read by people who may be in other time
    zones than the machine that wrote them, and its CSV and JSON times are UTC too."""
    import time

    then = time.gmtime(t)
    today = time.gmtime(time.time() if now is None else now)
    return time.strftime("%H:%M UTC" if then[:3] == today[:3] else "%Y-%m-%d %H:%M UTC", then)
