"""Importing these modules registers their commands on the app."""

from facer_cli.cli import (  # noqa: F401
    compare_cmd,
    config_cmd,
    demo_cmd,
    doctor_cmd,
    enroll_cmd,
    evaluate_cmd,
    inspect_cmd,
    serve_cmd,
    users_cmd,
)
