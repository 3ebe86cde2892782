"""The `facer` command line: thin commands over the service layer (`facer_cli.service`)."""

from facer_cli.cli.app import app, main
from facer_cli.cli.commands import register

register(app)

__all__ = ["app", "main"]
