"""Safe names made from free text (strategy labels, class names, paths), CSV cells a
spreadsheet shows as text, the "did you mean" of a refused name, and counts and shortened
lists in messages."""

from __future__ import annotations

import csv
import difflib
from collections.abc import Callable, Iterable, Sequence
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


def parse_utc_iso(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 time: as :func:`utc_iso` writes it
    (``2026-12-02T04:53:42Z``), with a fraction of a second (``...42.123456Z``, kept to the
    microsecond) or another offset (``2026-12-02T05:53:42+01:00``, the same moment); one
    without an offset is UTC, as the labeling tool writes every time (not the machine's
    zone). ``parse_utc_iso(utc_iso(t))`` is ``t`` to the second."""
    from datetime import UTC, datetime

    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


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


def suggestion(names: str | Sequence[str], choices: Iterable[str]) -> str:
    """``did you mean 'entropy'?`` when a refused name of ``names`` is close to one of
    ``choices`` (:func:`difflib.get_close_matches`), else ``""``.

    Equally close choices are all named (``did you mean 'setting1' or 'setting2'?``); with
    several refused names each close one is named with its guess (``did you mean 'width' for
    'widht', 'depth' for 'dpeth'?``).
    """

    def ratio(choice: str, name: str) -> float:  # as get_close_matches scores it
        return difflib.SequenceMatcher(None, choice, name).ratio()

    refused = [names] if isinstance(names, str) else list(names)
    known = [c for c in choices if c not in refused]  # in their order: ties named so
    guesses = []
    for name in refused:
        close = difflib.get_close_matches(name, known, n=3)
        if close:
            best = ratio(close[0], name)
            tied = [c for c in known if c in close and ratio(c, name) == best]
            guess = " or ".join(repr(c) for c in tied)
            guesses.append(guess if len(refused) == 1 else f"{guess} for {name!r}")
    return f"did you mean {', '.join(guesses)}?" if guesses else ""


def did_you_mean(message: str, names: str | Sequence[str], choices: Iterable[str]) -> str:
    """``message`` (a refusal of ``names``, ending in ``.``) with its :func:`suggestion` in
    place of the final ``.``; ``message`` unchanged when no choice is close.

    ``"Unknown strategy 'entrpy'; supported: random, entropy."`` becomes ``"Unknown strategy
    'entrpy'; supported: random, entropy; did you mean 'entropy'?"``.
    """
    hint = suggestion(names, choices)
    return f"{message.rstrip().removesuffix('.')}; {hint}" if hint else message


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: ``counted(1, "task")`` is "1 task",
    ``counted(2, "task")`` "2 tasks" (``plural``: an irregular one, ``counted(n, "copy",
    "copies")``). Words before the noun go in ``noun``: ``counted(n, "new image")``."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


#: How :func:`listed` ends a list it shortens: with how many it left out (the default), the
#: same in parentheses (after items that hold commas or semicolons of their own), or without
#: the count.
AND_MORE = " and {n} more"
AND_MORE_APART = " (and {n} more)"
ELIDED = ", ..."


def listed(
    items: Sequence[Any],
    most: int,
    *,
    sep: str = ", ",
    show: Callable[[Any], object] = str,
    more: str = AND_MORE,
) -> str:
    """The first ``most`` of ``items``, each as ``show`` writes it, joined by ``sep``, then
    ``more`` (``{n}``: how many are left out) when there are more: ``listed("abcde", 3)`` is
    "a, b, c and 2 more", ``listed("abcde", 3, more=ELIDED)`` "a, b, c, ...",
    ``listed(errors, 3, sep="; ", more=AND_MORE_APART)`` "e1; e2; e3 (and 2 more)". Every
    message that names a few of many names them so."""
    shown = sep.join(str(show(item)) for item in items[:most])
    return shown + (more.format(n=len(items) - most) if len(items) > most else "")
