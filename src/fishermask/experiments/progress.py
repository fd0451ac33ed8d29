"""Progress display for experiments: rich bars for trials, rounds and training epochs."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)


class NullProgress(AbstractContextManager):
    """Shows nothing (tests, worker processes)."""

    def __exit__(self, *exc: Any) -> None:
        return None

    def start_trial(self, label: str, rounds: int, done: int, epochs: bool = True) -> None: ...

    def round_done(self, text: str = "") -> None: ...

    def epoch(self, epoch: int, limit: int, accuracy: float) -> None: ...

    def end_trial(self) -> None: ...


class RichProgress(NullProgress):
    """One bar for the rounds of the current trial, one for its training epochs."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._rounds: Any = None
        self._train: Any = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def start_trial(self, label: str, rounds: int, done: int, epochs: bool = True) -> None:
        self._rounds = self._progress.add_task(label, total=rounds, completed=done, status="")
        self._train = self._progress.add_task("  training", total=1, status="", visible=epochs)

    def round_done(self, text: str = "") -> None:
        self._progress.update(self._rounds, advance=1, status=text)

    def epoch(self, epoch: int, limit: int, accuracy: float) -> None:
        self._progress.update(
            self._train, completed=epoch, total=limit, status=f"train acc {accuracy:.3f}"
        )

    def end_trial(self) -> None:
        self._progress.remove_task(self._train)
