"""`facer demo`: enroll, verify a match and an impostor, on the photos that ship with the model pack."""

from __future__ import annotations

import typer

from facer_cli.cli.app import console, settings_for
from facer_cli.cli.options import JsonOption, VerboseOption


def demo_command(ctx: typer.Context, json_output: JsonOption = False, verbose: VerboseOption = False) -> None:
    """The main story in one go: enroll, verify a match and an impostor, on the bundled photos.

    Enrolls Yao Ming from a bundled photo into a temporary store, verifies a second photo of him
    (match) and someone else (no match), then lists the next commands to try.

    Writes nothing outside a temporary folder. Exit 0 when both answers are as expected.
    In Python: facer_cli.service.run_demo(settings, folder).
    """
    import tempfile
    from pathlib import Path

    from facer_cli.cli.output.text import print_json
    from facer_cli.cli.output.views import demo_view
    from facer_cli.service import run_demo

    settings = settings_for(ctx)
    with tempfile.TemporaryDirectory(prefix="facer-demo-") as folder:
        result = run_demo(settings, Path(folder))
    if json_output:
        print_json(result.to_dict())
    else:
        console.print(demo_view(result, verbose))
    raise typer.Exit(0 if result.ok else 1)
