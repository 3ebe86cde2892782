"""The `facer` command line: thin commands over the service layer (`facer_cli.service`)."""

from facer_cli.cli.app import app, main

__all__ = ["app", "main"]
