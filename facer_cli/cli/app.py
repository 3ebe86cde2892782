"""The Typer application, its global options and the one place errors become exit codes."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from facer_cli.errors import FacerError
from facer_cli.settings import SETTING_NAMES, LoadedSettings, Settings, load_settings

# Typer vendors its own click: typer.BadParameter and typer.Abort are not click's classes.
TYPER_CLICK_ERRORS = (next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"), typer.Abort)

# Exit codes scripts can rely on (also listed in the README).
EXIT_OK = 0
EXIT_NO_MATCH = 1
EXIT_USAGE = 2
EXIT_UNCERTAIN = 3
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


@dataclass
class AppState:
    config: Path | None = None
    debug: bool = False


class FacerGroup(TyperGroup):
    """Maps facer's errors to one line on stderr and an exit code; --debug shows the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FacerError as exc:
            if _debug(ctx):
                raise
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort, typer.Exit, *TYPER_CLICK_ERRORS):
            raise
        except Exception as exc:  # a bug: still one line unless --debug
            if _debug(ctx):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_INTERNAL) from None


def _debug(ctx: click.Context) -> bool:
    state = ctx.find_object(AppState)
    return bool(state and state.debug)


app = typer.Typer(
    cls=FacerGroup,
    name="facer",
    help="Face enrollment and verification: turn a few frames into one trustworthy template.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main_callback(
    ctx: typer.Context,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", help="Read settings from this facer.toml (default: ./facer.toml, then the user config dir).", dir_okay=False),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
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


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# Options shared by every command that runs the models.
DetSizeOption = Annotated[Optional[int], typer.Option("--det-size", help="Detector input size (multiple of 32).", rich_help_panel="Settings")]
DetThresholdOption = Annotated[Optional[float], typer.Option("--detection-threshold", help="Minimum detector score.", rich_help_panel="Settings")]
YawOption = Annotated[Optional[float], typer.Option("--pose-yaw-limit", help="Largest accepted |yaw| in degrees.", rich_help_panel="Settings")]
PitchOption = Annotated[Optional[float], typer.Option("--pose-pitch-limit", help="Largest accepted |pitch| in degrees.", rich_help_panel="Settings")]
QualityOption = Annotated[Optional[float], typer.Option("--min-quality-score", help="Minimum quality score.", rich_help_panel="Settings")]
ModelOption = Annotated[Optional[str], typer.Option("--model", help='Model pack: "bundled" or a pack name under model_root.', rich_help_panel="Settings")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for programs instead of tables.")]
