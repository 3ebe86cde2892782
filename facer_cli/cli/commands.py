"""Every command, in the order `facer --help` lists them, each built only when it is needed.

Typer would turn every command's signature into options at each start (~40 ms); here a
command's module is imported and its options built only when that command runs or shows
its own help. `facer --help` needs only each command's name, panel and first line.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer

START = "Start here"
STORE = "Enroll, verify and identify"
MEASURE = "Look and measure"
RUN = "Serve and set up"


@dataclass(frozen=True)
class LazyCommand:
    """A command (a function) or a group (a Typer app) in a module of `facer_cli.cli`."""

    name: str
    panel: str
    module: str
    attribute: str

    def target(self) -> Any:
        return getattr(importlib.import_module(f"facer_cli.cli.{self.module}"), self.attribute)

    def help_text(self) -> str:
        """The command's help as Typer shows it: the group's help, or the function's docstring."""
        import inspect

        target = self.target()
        if isinstance(target, typer.Typer):
            return inspect.cleandoc(str(target.info.help or ""))
        return inspect.getdoc(target) or ""

    def build(self) -> Any:
        """The click command, with its options, as Typer would have built it."""
        from typer.main import get_command_from_info, get_group_from_info
        from typer.models import CommandInfo, TyperInfo

        target = self.target()
        command: Any
        if isinstance(target, typer.Typer):
            command = get_group_from_info(
                TyperInfo(target, name=self.name, rich_help_panel=self.panel),
                pretty_exceptions_short=False,
                suggest_commands=True,
                rich_markup_mode="rich",
            )
        else:
            command = get_command_from_info(
                CommandInfo(name=self.name, callback=target, rich_help_panel=self.panel),
                pretty_exceptions_short=False,
                rich_markup_mode="rich",
            )
        finish(command)
        return command


def command_paths() -> list[tuple[str, ...]]:
    """Every command and visible subcommand, in the order `facer --help` lists them: ("enroll",),
    ("users", "list"), … (the docs' CLI reference and the help-size test walk the same list)."""
    paths: list[tuple[str, ...]] = []

    def walk(path: tuple[str, ...], command: Any) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            if not getattr(sub, "hidden", False):
                walk((*path, name), sub)

    for command in COMMANDS:
        walk((command.name,), command.build())
    return paths


def reflowed(text: str) -> str:
    """Help text with each paragraph on one line, for Rich to wrap to the terminal (Typer keeps a
    docstring's line breaks after the first paragraph); a paragraph starting with \\b is kept as is."""
    import inspect

    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.lstrip().startswith("\b") else " ".join(p.split()) for p in paragraphs)


def finish(command: Any) -> None:
    """Help text reflowed and `--help-settings` added, on a command and each of its subcommands."""
    from facer_cli.cli.options import add_help_settings

    if command.help:
        command.help = reflowed(command.help)
    add_help_settings(command)
    for sub in getattr(command, "commands", {}).values():
        finish(sub)


COMMANDS = (
    LazyCommand("demo", START, "demo_cmd", "demo_command"),
    LazyCommand("enroll", STORE, "enroll_cmd", "enroll_command"),
    LazyCommand("verify", STORE, "enroll_cmd", "verify_command"),
    LazyCommand("identify", STORE, "identify_cmd", "identify_command"),
    LazyCommand("capture", STORE, "enroll_cmd", "capture_command"),
    LazyCommand("users", STORE, "users_cmd", "users_app"),
    LazyCommand("store", STORE, "store_cmd", "store_app"),
    LazyCommand("inspect", MEASURE, "inspect_cmd", "inspect_command"),
    LazyCommand("compare", MEASURE, "compare_cmd", "compare_command"),
    LazyCommand("evaluate", MEASURE, "evaluate_cmd", "evaluate_command"),
    LazyCommand("serve", RUN, "serve_cmd", "serve_command"),
    LazyCommand("keys", RUN, "keys_cmd", "keys_app"),
    LazyCommand("doctor", RUN, "doctor_cmd", "doctor_command"),
    LazyCommand("config", RUN, "config_cmd", "config_app"),
)
BY_NAME = {command.name: command for command in COMMANDS}
