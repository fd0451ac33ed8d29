"""An optional progress bar (rich, on stderr) for slow decoding loops."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Advance = Callable[[int], None]


def _noop(n: int = 1) -> None:
    """Advance nothing (progress disabled)."""


@contextmanager
def progress_bar(description: str, total: int | None, enabled: bool) -> Iterator[Advance]:
    """Yield ``advance(n)``; shows a transient bar on stderr when ``enabled`` and stderr is a
    terminal (elsewhere rich draws nothing but leaves a blank line).

    Updates are batched so that calling ``advance(1)`` per image stays cheap.
    """
    if not enabled:
        yield _noop
        return
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    if not console.is_terminal:
        yield _noop
        return
    pending = 0
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            nonlocal pending
            pending += n
            if pending >= 256:
                bar.advance(task, pending)
                pending = 0

        yield advance
        bar.advance(task, pending)
