"""The Typer application: global options, settings for a command, and errors mapped in one place.

Command modules only parse, call the service (`facer_cli.service`) and render
(`facer_cli.cli.output`); they import heavy modules inside the command, so
`facer --help` and `facer config show` load neither numpy, OpenCV nor ONNX Runtime.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console
from typer import _click as click  # Typer's own click: its exceptions and contexts are these
from typer.core import TyperGroup

from facer_cli import __version__, interrupts
from facer_cli.cli.errors import EXIT_CANCELLED, EXIT_INTERNAL, EXIT_INTERRUPTED, error_line, exit_code_for
from facer_cli.errors import FacerError
from facer_cli.settings import SETTING_NAMES, LoadedSettings, Settings, load_settings

# Options every command accepts after its name too (`facer verify alice x.jpg --debug`).
GLOBAL_FLAGS = ("--debug",)
GLOBAL_OPTIONS = ("--config",)

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@dataclass
class AppState:
    config: Path | None = None
    debug: bool = False


def hoist_global_options(args: list[str]) -> list[str]:
    """`--debug` and `--config PATH` anywhere before `--` are moved in front of the command."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        if arg in GLOBAL_FLAGS or any(arg.startswith(option + "=") for option in GLOBAL_OPTIONS):
            front.append(arg)
        elif arg in GLOBAL_OPTIONS and index + 1 < len(args):
            front.extend(args[index : index + 2])
            index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest


class FacerGroup(TyperGroup):
    """Maps facer's errors to one line on stderr and an exit code; --debug shows the traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    # Commands are built when first asked for (`facer_cli.cli.commands`), not all at each start.
    def list_commands(self, ctx: click.Context) -> list[str]:
        from facer_cli.cli.commands import COMMANDS

        return [command.name for command in COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from facer_cli.cli.commands import BY_NAME

        if cmd_name not in self.commands and cmd_name in BY_NAME:
            self.commands[cmd_name] = BY_NAME[cmd_name].build()
        return self.commands.get(cmd_name)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if ctx.parent is not None:
            return super().format_help(ctx, formatter)
        from facer_cli.cli.commands import COMMANDS
        from facer_cli.cli.root_help import root_help

        console.print(root_help(ctx, self.get_params(ctx), self.help or "", COMMANDS))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with interrupts.unwinding_on_interrupt():  # Ctrl-C: transactions roll back, temporary files go
                return super().invoke(ctx)
        except FacerError as exc:
            if _debug(ctx):
                raise
            err_console.print("[bold red]error:[/] ", end="")
            err_console.print(error_line(exc), markup=False, soft_wrap=True)
            raise typer.Exit(exit_code_for(exc)) from None
        except KeyboardInterrupt:
            _interrupted()
        except typer.Abort as exc:  # a prompt answered with Ctrl-C (interrupted) or end of input (declined)
            if isinstance(exc.__context__, KeyboardInterrupt) or interrupts.received:
                _interrupted()
            err_console.print("[bold red]error:[/] ", end="")
            err_console.print("cancelled at the prompt", markup=False)
            raise typer.Exit(EXIT_CANCELLED) from None
        except (typer.Exit, click.ClickException):
            raise
        except Exception as exc:  # a bug: still one line unless --debug
            if interrupts.received:  # an interrupt that a library turned into another exception
                _interrupted()
            if _debug(ctx):
                raise
            err_console.print("[bold red]internal error:[/] ", end="")
            err_console.print(
                f"{type(exc).__name__}: {exc} (run with --debug for the traceback)", markup=False, soft_wrap=True
            )
            raise typer.Exit(EXIT_INTERNAL) from None


def _interrupted() -> NoReturn:
    interrupts.stop_unwinding()
    err_console.print("interrupted")
    raise typer.Exit(EXIT_INTERRUPTED) from None


def _debug(ctx: click.Context) -> bool:
    state = ctx.find_object(AppState)
    return bool(state and state.debug)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"facer {__version__}")
        raise typer.Exit(0)


app = typer.Typer(
    cls=FacerGroup,
    name="facer",
    help="Face enrollment and verification: turn a few frames into one trustworthy template. Start with `facer demo`.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main_callback(
    ctx: typer.Context,
    config: Annotated[
        Optional[Path],
        typer.Option(
            "--config",
            help="Read settings from this facer.toml (default: ./facer.toml, then the user "
            "config dir). Accepted after the command too.",
            dir_okay=False,
        ),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show tracebacks instead of one-line errors. Accepted after the command too."),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print facer's version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    ctx.obj = AppState(config=config, debug=debug)


def state_of(ctx: typer.Context) -> AppState:
    return ctx.find_object(AppState) or AppState()


def flag_overrides(ctx: typer.Context) -> dict[str, Any]:
    """The command's parameters named after a setting (`--det-size` → det_size, `--model` → model_name)."""
    return {
        name: str(value) if isinstance(value, Path) else value
        for name, value in ctx.params.items()
        if name in SETTING_NAMES
    }


def loaded_settings(ctx: typer.Context, **overrides: Any) -> LoadedSettings:
    """Settings of this invocation: defaults < facer.toml < FACER_* < the command's flags.

    Flags named after a setting apply by themselves; `overrides` adds those named otherwise.
    """
    return load_settings(state_of(ctx).config, {**flag_overrides(ctx), **overrides})


def settings_for(ctx: typer.Context, **overrides: Any) -> Settings:
    return loaded_settings(ctx, **overrides).settings


def main() -> None:
    """The command line (the console script is `facer_cli.entry.main`, which handles Ctrl-C earlier)."""
    if not interrupts.installed():
        interrupts.install()
    try:
        app(prog_name="facer")
    except KeyboardInterrupt:  # outside a command (while parsing or importing)
        err_console.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
