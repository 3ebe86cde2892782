"""`facer --help`: the command list, drawn like Typer's help without loading its help module.

Typer's help renderer imports Markdown and traceback support (~60 ms) and needs every
command built; the top-level page needs neither. Each command's own help (`facer verify
--help`) is still Typer's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Group
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from typer import _click as click

    from facer_cli.cli.commands import LazyCommand

STYLE_OPTION = "bold cyan"
STYLE_SWITCH = "bold green"
STYLE_METAVAR = "bold yellow"
STYLE_USAGE = "yellow"
STYLE_BORDER = "dim"


def first_paragraph(text: str) -> str:
    """What a command list shows of a help text: its first paragraph on one line."""
    return " ".join(text.strip().split("\n\n")[0].split())


def _panel(title: str, table: Table) -> Panel:
    return Panel(table, border_style=STYLE_BORDER, title=title, title_align="left", box=box.ROUNDED)


def _table(first_width: int | None = None) -> Table:
    table = Table(highlight=False, show_header=False, expand=True, box=None, pad_edge=False, padding=(0, 1))
    table.add_column(style=STYLE_OPTION, no_wrap=True, width=first_width)
    return table


def options_panel(ctx: click.Context, params: list[Any]) -> Panel:
    table = _table()
    table.add_column(style=STYLE_SWITCH, no_wrap=True)
    table.add_column(style=STYLE_METAVAR, no_wrap=True)
    table.add_column(ratio=10)
    for param in params:
        if getattr(param, "hidden", False) or param.param_type_name != "option":
            continue
        long = [name for name in param.opts + param.secondary_opts if name.startswith("--")]
        short = [name for name in param.opts + param.secondary_opts if not name.startswith("--")]
        metavar = "" if param.is_flag or param.count else param.make_metavar(ctx)
        table.add_row(",".join(long), ",".join(short), metavar, Text.from_markup(param.help or ""))
    return _panel("Options", table)


def root_help(ctx: click.Context, params: list[Any], help_text: str, commands: tuple[LazyCommand, ...]) -> Group:
    usage = Text.assemble(("Usage: ", STYLE_USAGE), (f"{ctx.command_path} [OPTIONS] COMMAND [ARGS]...", "bold"))
    parts: list[Any] = [Padding(usage, 1), Padding(Text.from_markup(help_text), (0, 1, 1, 1))]
    parts.append(options_panel(ctx, params))
    width = max(len(command.name) for command in commands)
    panels: dict[str, Table] = {}
    for command in commands:
        if command.panel not in panels:
            panels[command.panel] = _table(width)
            panels[command.panel].add_column(ratio=10)
        table = panels[command.panel]
        table.add_row(command.name, Text.from_markup(first_paragraph(command.help_text())))
    parts.extend(_panel(title, table) for title, table in panels.items())
    return Group(*parts)
