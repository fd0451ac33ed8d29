"""Help pages that keep every word at any terminal width.

typer's rich help tables cut what does not fit an 80-column terminal with "…" (long option
names such as ``--no-allow-env-change``, defaults, option examples); click's plain layout
wraps instead (``rich_markup_mode=None``). Its list of commands still cut each description
to what fits one line ("write results,..."); :class:`Group` wraps the whole first sentence.
"""

from __future__ import annotations

import functools

import click
from typer.core import TyperArgument, TyperGroup, TyperOption


def _usage_name(param: TyperArgument) -> str:
    name = param.metavar or param.name.upper()
    name = name if param.required else f"[{name}]"
    return name + ("..." if param.nargs != 1 else "")


def _value_names(cmd: click.Command) -> None:
    """Name the value of every option and argument that has no ``metavar`` of its own, in
    place of typer's Python types (``--images <path>``, ``project <path>``, ``{project}``):
    a path ``PATH``, a whole number ``N``, a number ``X``, any other value its option's name
    (``--classes CLASSES``), an argument its name (``PROJECT``). Choices keep their list."""
    for param in cmd.params:
        if isinstance(param, TyperArgument):
            # the usage line as click writes it, `report [OPTIONS] RUN_DIR...` (typer 0.29
            # braces a required argument, `{RUN_DIR}...`, which reads as a set to choose from)
            param._usage_display_name = functools.partial(_usage_name, param)  # type: ignore[method-assign]
            # listed by its name alone: typer appends the annotation (`RUN_DIR <list[Path]>`)
            param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
            if param.metavar is None:
                param.metavar = param.name.upper()
        elif param.metavar is not None:
            continue
        elif isinstance(param, TyperOption) and not param.is_flag and not param.count:
            desc = param.type_descriptor
            if desc.is_choice or desc.is_list or desc.is_tuple:
                continue
            if desc.is_path:
                param.metavar = "PATH"
            elif desc.annotation is int:
                param.metavar = "N"
            elif desc.annotation is float:
                param.metavar = "X"
            else:
                long = max(param.opts, key=len).lstrip("-")
                param.metavar = long.upper().replace("-", "_")


class Group(TyperGroup):
    """A command group whose ``--help`` lists each command with its whole first sentence, and
    whose commands name their values in words (:func:`_value_names`)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None and not isinstance(cmd, TyperGroup):
            _value_names(cmd)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


#: The settings of every ``typer.Typer`` of the ``fishermask`` command.
APP_SETTINGS = {"cls": Group, "rich_markup_mode": None}
