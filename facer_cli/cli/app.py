"""The Typer application: global options, settings for a command, and errors mapped in one place.

Command modules only parse, call the service (`facer_cli.service`) and render
(`facer_cli.cli.output`); they import heavy modules inside the command, so
`facer --help` and `facer config show` load neither numpy, OpenCV nor ONNX Runtime.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.text import Text
from typer import _click as click  # Typer's own click: its exceptions and contexts are these
from typer.core import TyperArgument, TyperGroup
from typer.models import TyperPath

from facer_cli import __version__, interrupts
from facer_cli.cli.errors import EXIT_CANCELLED, EXIT_INTERNAL, EXIT_INTERRUPTED, error_line, exit_code_for
from facer_cli.cli.output.text import message_line
from facer_cli.errors import FacerError, UsageError, UserNameError
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
    options: frozenset[str] | None = None  # the running command's --options, for its hints


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
            self.commands[cmd_name] = checking_arguments(BY_NAME[cmd_name].build())
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[Any, Any, list[str]]:
        """`facer enrol`: "Did you mean 'enroll'?" over every command, also those not built yet."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.UsageError as error:
            if args and "Did you mean" not in error.message:
                matches = get_close_matches(args[0], self.list_commands(ctx))
                if matches:
                    suggestions = ", ".join(repr(match) for match in matches)
                    error.message = f"{error.message.rstrip('.')}. Did you mean {suggestions}?"
            raise

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
            message_line(err_console, Text("error:", "bold red"), error_line(exc, _options(ctx)))
            raise typer.Exit(exit_code_for(exc)) from None
        except KeyboardInterrupt:
            _interrupted()
        except typer.Abort as exc:  # a prompt answered with Ctrl-C (interrupted) or end of input (declined)
            if isinstance(exc.__context__, KeyboardInterrupt) or interrupts.received:
                _interrupted()
            message_line(err_console, Text("error:", "bold red"), "cancelled at the prompt")
            raise typer.Exit(EXIT_CANCELLED) from None
        except (typer.Exit, click.ClickException):
            raise
        except Exception as exc:  # a bug: still one line unless --debug
            if interrupts.received:  # an interrupt that a library turned into another exception
                _interrupted()
            if _debug(ctx):
                raise
            message_line(
                err_console,
                Text("internal error:", "bold red"),
                f"{type(exc).__name__}: {exc} (run with --debug for the traceback)",
            )
            raise typer.Exit(EXIT_INTERNAL) from None


def _interrupted() -> NoReturn:
    interrupts.stop_unwinding()
    err_console.print("interrupted")
    raise typer.Exit(EXIT_INTERRUPTED) from None


def _options(ctx: click.Context) -> frozenset[str] | None:
    state = ctx.find_object(AppState)
    return state.options if state else None


def _debug(ctx: click.Context) -> bool:
    state = ctx.find_object(AppState)
    return bool(state and state.debug)


# -- what a person typed: checked once, as each command's arguments are parsed, before anything loads --

ALLOW_PATH_NAME = "--allow-path-name"  # declared by the commands that store a new name (options.py)
# The one positional argument that names a file to write (the others name inputs; outputs are --out …).
OUTPUT_ARGUMENTS = frozenset({("config init", "path")})


def checking_arguments(command: click.Command) -> click.Command:
    """The command (and each subcommand of a group) with `check_arguments` run on its arguments as
    soon as they are parsed; the running command's --options are noted for its hints (`error_line`)."""
    for sub in getattr(command, "commands", {}).values():
        checking_arguments(sub)
    parse = command.parse_args
    options = frozenset(
        name for param in command.params for name in param.opts + param.secondary_opts if name.startswith("--")
    )

    def parse_args(ctx: click.Context, args: list[str]) -> list[str]:
        typed = list(args)
        rest = parse(ctx, args)
        state = ctx.find_object(AppState)
        if state is not None:
            state.options = options
        if not ctx.resilient_parsing and not isinstance(command, TyperGroup):
            check_arguments(ctx, typed)
        return rest

    command.parse_args = parse_args  # type: ignore[method-assign]
    return command


def input_values(ctx: click.Context, param: click.Parameter) -> list[str]:
    """The files and folders a positional argument names: one typed as a path (but OUTPUT_ARGUMENTS), or
    `sources` (images and folders, unless --camera)."""
    params = ctx.params
    value = params.get(param.name or "")
    command = ctx.command_path.partition(" ")[2]
    if not isinstance(param, TyperArgument) or value is None or (command, param.name) in OUTPUT_ARGUMENTS:
        return []
    if param.name == "sources":
        if params.get("camera"):
            return []
    elif not isinstance(param.type, TyperPath):
        return []
    return [str(item) for item in (value if isinstance(value, (list, tuple)) else [value])]


def _absent(path: str) -> bool:
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, ValueError):  # no permission to look, a name too long …: its row says why
        return False
    return False


def _as_typed(value: str, typed: list[str]) -> str:
    """The argument as the person typed it (a path argument arrives as a Path: `photos/` → `photos`)."""
    if value in typed:
        return value
    return next((raw for raw in typed if not raw.startswith("-") and Path(raw) == Path(value)), value)


def path_like(name: str) -> str | None:
    """Why a user name looks like a path typed in its place, or None: it ends in /, or it is an existing
    file, or an existing folder named with a / (a plain word that is also a folder here is a fine name:
    `facer enroll alice alice/`)."""
    text = name.strip()
    if text.endswith(("/", os.sep)):
        return "it ends in /"
    if os.path.isdir(text):
        return "an existing folder" if "/" in text or os.sep in text or text in (".", "..") else None
    return "an existing file" if os.path.lexists(text) else None


def check_arguments(ctx: click.Context, typed: list[str]) -> None:
    """A user name that looks like a path (unless --allow-path-name), and a path that does not exist, are
    usage errors (exit 2), named as typed. A missing file among existing ones of the same argument only
    gets a warning: its row in the table says so, and the other files go on."""
    params = ctx.params
    name = next((params[key] for key in ("new", "user") if isinstance(params.get(key), str)), None)
    named = [value for param in ctx.command.params for value in [input_values(ctx, param)] if value]
    if name is not None and "allow_path_name" in params and not params["allow_path_name"]:
        why = path_like(name)
        if why is not None:
            order = "; the name comes first, then the files" if named else ""
            raise UserNameError(
                f"the user name {name!r} looks like a path ({why}), so the arguments may be swapped or "
                f"mistyped{order}; pass {ALLOW_PATH_NAME} if it really is the name"
            )
    fatal: list[str] = []
    for values in named:
        missing = [_as_typed(value, typed) for value in values if _absent(value)]
        if len(missing) == len(values):
            fatal.extend(missing)
        for path in [] if len(missing) == len(values) else missing:
            message_line(
                err_console, Text("warning:", "bold yellow"), f"no such file or folder: {path} (the others go on)"
            )
    if fatal:
        message = "no such file or folder: " if len(fatal) == 1 else "no such files or folders: "
        message += ", ".join(fatal)
        why = None if name is None else path_like(name)
        if why is not None:
            message += f"; the user name {name!r} looks like a path ({why}): the name comes first, then the files"
        raise UsageError(message)


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
