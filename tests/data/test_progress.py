"""The optional progress bar: shown on a terminal only."""

from __future__ import annotations

from fishermask.data.progress import progress_bar


def test_no_bar_and_no_blank_line_when_stderr_is_not_a_terminal(capsys):
    """A transient rich bar on a non-terminal stderr printed nothing but a blank line, so every
    `label predict --out F 2> log` (and scan, init) began its log with an empty line."""
    with progress_bar("working", 1000, True) as advance:
        for _ in range(1000):
            advance(1)
    assert capsys.readouterr().err == ""
