"""The `facer` command line: thin commands over the facer_cli library."""

from facer_cli.cli import commands as _commands  # noqa: F401  (registers the commands)
from facer_cli.cli.app import app


def main() -> None:
    app(prog_name="facer")


__all__ = ["app", "main"]
