"""Every command, registered explicitly, in the order `facer --help` lists them."""

from __future__ import annotations

import typer

from facer_cli.cli import (
    compare_cmd,
    config_cmd,
    demo_cmd,
    doctor_cmd,
    enroll_cmd,
    evaluate_cmd,
    identify_cmd,
    inspect_cmd,
    serve_cmd,
    users_cmd,
)

START = "Start here"
STORE = "Enroll, verify and identify"
MEASURE = "Look and measure"
RUN = "Serve and set up"


_REGISTERED: list[typer.Typer] = []


def register(app: typer.Typer) -> None:
    if app in _REGISTERED:
        return
    _REGISTERED.append(app)
    app.command("demo", rich_help_panel=START)(demo_cmd.demo_command)
    app.command("enroll", rich_help_panel=STORE)(enroll_cmd.enroll_command)
    app.command("verify", rich_help_panel=STORE)(enroll_cmd.verify_command)
    app.command("identify", rich_help_panel=STORE)(identify_cmd.identify_command)
    app.add_typer(users_cmd.users_app, name="users", rich_help_panel=STORE)
    app.command("capture", rich_help_panel=STORE)(enroll_cmd.capture_command)
    app.command("inspect", rich_help_panel=MEASURE)(inspect_cmd.inspect_command)
    app.command("compare", rich_help_panel=MEASURE)(compare_cmd.compare_command)
    app.command("evaluate", rich_help_panel=MEASURE)(evaluate_cmd.evaluate_command)
    app.command("serve", rich_help_panel=RUN)(serve_cmd.serve_command)
    app.add_typer(config_cmd.config_app, name="config", rich_help_panel=RUN)
    app.command("doctor", rich_help_panel=RUN)(doctor_cmd.doctor_command)
