"""Help pages that keep every word at any terminal width.

typer's rich help tables cut what does not fit an 80-column terminal with "…" (long option
names such as ``--no-allow-env-change``, defaults, option examples); click's plain layout
wraps instead (``rich_markup_mode=None``). Its list of commands still cut each description
to what fits one line ("write results,..."); :class:`Group` wraps the whole first sentence.
"""

from __future__ import annotations

from typing import Any

import click
from typer.core import TyperArgument, TyperCommand, TyperGroup


class Group(TyperGroup):
    """A command group whose ``--help`` lists each command with its whole first sentence."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class Command(TyperCommand):
    """A command whose arguments with a metavar are listed by it alone: typer appends the
    annotation (``RUN_DIR <list[Path]>``), a Python type that means nothing to a user."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument) and param.metavar is not None:
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]


#: The settings of every ``typer.Typer`` of the ``fishermask`` command.
APP_SETTINGS = {"cls": Group, "rich_markup_mode": None}
