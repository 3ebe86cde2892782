"""`facer store copy SRC DST`: the store as a whole — copied into another, on either backend."""

from __future__ import annotations

from typing import Annotated

import typer

from facer_cli.cli.app import console, err_console, settings_for
from facer_cli.cli.options import JsonOption

store_app = typer.Typer(
    help="The store as a whole: copy it into another (an SQLite file or a PostgreSQL database).",
    no_args_is_help=True,
)

SourceArgument = Annotated[
    str,
    typer.Argument(
        metavar="SRC", help="The store to copy: an SQLite file or a postgresql:// URL (only read).", show_default=False
    ),
]
DestinationArgument = Annotated[
    str,
    typer.Argument(
        metavar="DST",
        help="The store to copy into: an SQLite file or a postgresql:// URL (made when missing; a "
        "PostgreSQL database must exist).",
        show_default=False,
    ),
]


@store_app.command("copy")
def store_copy(
    ctx: typer.Context, source: SourceArgument, destination: DestinationArgument, json_output: JsonOption = False
) -> None:
    """Copy users, templates, samples, the verify and identify logs and look-alikes from SRC into DST.

    SQLite to PostgreSQL (a desk becomes a fleet), PostgreSQL to SQLite (a backup, a site copy), or
    between two of a kind. One transaction on DST: it gains everything, verified (row counts, and a
    sha256 of every template on both sides), or nothing. Rows already there are not copied again, so a
    second run copies nothing. A user of the same name with other templates in DST stops it (exit 7)
    before anything is written. Passwords in URLs are never shown.
    In Python: facer_cli.service.copy_store(src, dst).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from facer_cli.cli.output.store import store_copy_view
    from facer_cli.cli.output.text import print_json
    from facer_cli.service.store_copy import CopyProgress, copy_store

    settings = settings_for(ctx)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    tasks: dict[str, TaskID] = {}

    def update(progress: CopyProgress) -> None:
        if progress.stage not in tasks:
            tasks[progress.stage] = bar.add_task(progress.description, total=progress.total)
        bar.update(tasks[progress.stage], completed=progress.done, total=progress.total)

    with bar:
        result = copy_store(source, destination, settings, on_progress=update)
    if json_output:
        print_json(result.to_dict())
    else:
        console.print(store_copy_view(result))
