"""Help pages that keep every word at any terminal width.

typer's rich help tables cut what does not fit an 80-column terminal with "…" (long option
names such as ``--no-allow-env-change``, defaults, option examples); click's plain layout
wraps instead (``rich_markup_mode=None``). Its list of commands still cut each description
to what fits one line ("write results,..."); :class:`Group` wraps the whole first sentence.
"""

from __future__ import annotations

import functools
from typing import Any

import click
import typer
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


def _number_said(exc: typer.BadParameter) -> typer.BadParameter:
    """typer's complaint about a value that is not a number, said with the value and an
    example: ``'abc' is not a whole number (e.g. `--rounds 6`)`` in place of pydantic's
    "Input should be a valid integer, unable to parse string as an integer", which names
    neither. Any other complaint is returned as it is."""
    cause = exc.__cause__
    errors = getattr(cause, "errors", None)
    if not callable(errors) or not errors() or exc.param is None:
        return exc
    err = errors()[0]
    kind = str(err.get("type", ""))
    if kind.startswith("int_"):
        what, example = "a whole number", 3
    elif kind.startswith("float_"):
        what, example = "a number", 0.5
    else:
        return exc
    param = exc.param
    default = getattr(param, "default", None)
    if isinstance(default, int | float) and not isinstance(default, bool):
        example = default
    name = max(param.opts, key=len) if getattr(param, "opts", None) else None
    usage = f"{name} {example}" if name and name.startswith("-") else str(example)
    said = typer.BadParameter(
        f"{err.get('input')!r} is not {what} (e.g. `{usage}`).", ctx=exc.ctx, param=param
    )
    said.__cause__ = None
    return said


#: A Ctrl-C before the command runs (fishermask.cli writes it for its own imports too).
INTERRUPTED_STARTING = "interrupted while fishermask was starting; nothing was done."


class Group(TyperGroup):
    """A command group whose ``--help`` lists each command with its whole first sentence,
    whose commands name their values in words (:func:`_value_names`), and which says a
    value that is not a number with the value (:func:`_number_said`)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:
            said = _number_said(exc)
            if said is exc:
                raise
            raise said from None
        except KeyboardInterrupt as exc:
            if type(exc) is not KeyboardInterrupt:  # e.g. `run`'s SIGTERM: its own message
                raise
            # Ctrl-C that no command said anything about (while a command imports its modules,
            # torch among them, before it runs): typer's exit 130 said nothing
            click.echo("error: interrupted.", err=True)
            raise typer.Exit(130) from None

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except KeyboardInterrupt as exc:  # reading the command line: typer's exit said nothing
            if type(exc) is not KeyboardInterrupt:
                raise
            click.echo(f"error: {INTERRUPTED_STARTING}", err=True)
            raise typer.Exit(130) from None

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
