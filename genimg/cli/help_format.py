"""Help that stays readable in a narrow terminal.

Typer's rich help gives each option four columns (long name, short name, negative name, type) before
its text; at 80 columns a flag such as ``--attention-slicing/--no-attention-slicing`` is cut to
``--attention-slic…`` and the help squeezed to two words a line. Below ``WIDE`` columns a command's
help is Click's plain layout (typer's own copy of Click) instead (a name on its own line when long, the text wrapped under it),
keeping typer's panels as headed sections.
"""

from __future__ import annotations

import shutil

import typer
from typer.core import TyperArgument, TyperCommand

WIDE = 100  # columns from which the rich tables fit the option names whole


def terminal_columns() -> int:
    return shutil.get_terminal_size((80, 24)).columns  # 80 when piped, as rich assumes


class WrappedHelpCommand(TyperCommand):
    """A command whose help falls back to plain, sectioned text below ``WIDE`` columns."""

    def format_help(self, ctx, formatter) -> None:
        if terminal_columns() >= WIDE:
            super().format_help(ctx, formatter)
            return
        formatter.width = terminal_columns()
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        self.format_options(ctx, formatter)

    def format_options(self, ctx, formatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            heading = "Arguments" if isinstance(param, TyperArgument) else "Options"
            sections.setdefault(getattr(param, "rich_help_panel", None) or heading, []).append(record)
        for heading, rows in sections.items():
            with formatter.section(heading):
                formatter.write_dl(rows, col_max=26)


class App(typer.Typer):
    """``typer.Typer`` whose commands use :class:`WrappedHelpCommand` unless told otherwise."""

    def command(self, *args, cls: type[TyperCommand] | None = None, **kwargs):  # type: ignore[override]
        return super().command(*args, cls=cls or WrappedHelpCommand, **kwargs)
