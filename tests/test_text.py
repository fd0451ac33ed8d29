"""CSV cells a spreadsheet shows as text (``fishermask.text.spreadsheet_safe``)."""

from __future__ import annotations

import calendar
import csv
import io
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fishermask.text import (
    AND_MORE_APART,
    ELIDED,
    SpreadsheetCsv,
    listed,
    parse_utc_iso,
    spreadsheet_safe,
    spreadsheet_unsafe,
    utc_clock,
    utc_iso,
)


def test_formula_cells_are_escaped_and_the_rest_is_left_alone():
    for cell in ('=HYPERLINK("http://x")', "+1+2", "-1+2", "@SUM(A1)", "\tx", "\rx", "'=x"):
        assert spreadsheet_safe(cell) == "'" + cell, cell
    for cell in ("cat", "a=b.png", "-1", "+2.5", "-1e3", "", "'quoted", "dogs/=x.png", 3, -1.5):
        assert spreadsheet_safe(cell) == cell, cell


@given(st.text())
def test_unescaping_gives_back_every_cell(cell):
    safe = spreadsheet_safe(cell)
    assert spreadsheet_unsafe(safe) == cell
    core = safe.lstrip("'")
    if safe == cell:  # left as it is: a spreadsheet does not run it
        try:
            float(core)
        except ValueError:
            assert not core.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_the_writer_escapes_every_cell_and_csv_reads_them_back():
    buf = io.StringIO()
    w = SpreadsheetCsv(buf)
    w.writerow(["path", "label"])
    w.writerows([["=cmd.png", "-neg"], ["ok.png", "-1"]])
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows == [["path", "label"], ["'=cmd.png", "'-neg"], ["ok.png", "-1"]]
    assert [[spreadsheet_unsafe(c) for c in r] for r in rows[1:]] == [
        ["=cmd.png", "-neg"],
        ["ok.png", "-1"],
    ]


def test_a_misspelt_name_is_suggested_and_a_far_one_is_not():
    from fishermask.text import did_you_mean, suggestion

    said = "Unknown strategy 'entrpy'; supported: random, entropy."
    assert did_you_mean(said, "entrpy", ["random", "entropy"]) == (
        "Unknown strategy 'entrpy'; supported: random, entropy; did you mean 'entropy'?"
    )
    assert did_you_mean(said, "qqq", ["random", "entropy"]) == said  # nothing close
    # equally close: all, in the choices' order; several names: each with its guess
    assert suggestion("setting3", ["setting1", "setting2"]) == (
        "did you mean 'setting1' or 'setting2'?"
    )
    assert suggestion(["widht", "zzz", "dpeth"], ["depth", "width", "lr"]) == (
        "did you mean 'width' for 'widht', 'depth' for 'dpeth'?"
    )


def test_counted_is_singular_for_one_only():
    """'1 tasks', 'not added 1 files': a count's noun is singular for 1, plural otherwise."""
    from fishermask.text import counted

    assert counted(1, "task") == "1 task"
    assert [counted(n, "new image") for n in (0, 2)] == ["0 new images", "2 new images"]
    assert (counted(1, "copy", "copies"), counted(3, "copy", "copies")) == ("1 copy", "3 copies")


def test_listed_names_the_first_few_then_how_many_more():
    """Four hand-written ways of shortening a list (", ...", " and N more", ", ... and N more",
    " (and N more)") are this one function."""
    assert listed(["a", "b", "c", "d", "e"], 3) == "a, b, c and 2 more"
    assert listed(["a", "b", "c"], 3) == "a, b, c"  # all of them: no "and 0 more"
    assert listed([], 3) == ""
    assert listed(["a", "b", "c", "d"], 3, more=ELIDED) == "a, b, c, ..."
    assert listed(["a", "b", "c"], 3, more=ELIDED) == "a, b, c"
    errors = ["line 2: x", "line 3: y", "line 4: z", "line 5: w"]
    assert listed(errors, 3, sep="; ", more=AND_MORE_APART) == (
        "line 2: x; line 3: y; line 4: z (and 1 more)"
    )
    assert listed(["cat", "dog"], 1, show=repr) == "'cat' and 1 more"  # shown items only
    seen = []
    listed([1, 2, 3, 4], 2, show=seen.append)
    assert seen == [1, 2]
    assert listed(range(10), 2) == "0, 1 and 8 more"


BASE = calendar.timegm((2026, 12, 2, 4, 53, 42))  # 2026-12-02T04:53:42Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2026-12-02T04:53:42Z", BASE),  # as utc_iso writes it
        ("2026-12-02T04:53:42.250000Z", BASE + 0.25),
        ("2026-12-02T04:53:42.000001+00:00", BASE + 1e-6),
        ("2026-12-02T05:53:42+01:00", BASE),  # another offset: the same moment
        ("2026-11-30T23:53:42.5-05:00", BASE - 86400 + 0.5),  # 2026-12-01T04:53:42.5Z
        ("2026-12-02T04:53:42", BASE),  # no offset: UTC, as the tool writes every time
    ],
)
def test_an_iso_time_reads_back_exactly_and_is_shown_in_utc(
    text: str, seconds: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`label status` read a check's time back with one format (whole seconds and "Z"): a
    time with microseconds or an offset stopped it with a ValueError."""
    monkeypatch.setenv("TZ", "America/New_York")  # the machine's zone plays no part
    time.tzset()
    try:
        t = parse_utc_iso(text)
        assert abs(t - seconds) < 1e-7 and round(t * 1e6) == round(seconds * 1e6)
        assert utc_iso(t) == utc_iso(seconds)  # whole seconds, "Z", as before
        assert utc_clock(t, now=BASE + 86400 * 10) == time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime(seconds)
        )
    finally:
        monkeypatch.undo()
        time.tzset()


def test_utc_iso_reads_back_as_written() -> None:
    for t in (0.0, BASE, BASE + 0.999999, 4102444799.5):
        assert parse_utc_iso(utc_iso(t)) == int(t)
        assert utc_iso(parse_utc_iso(utc_iso(t))) == utc_iso(t)
