"""`facer store copy SRC DST`: the store as a whole — copied into another, on either backend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facer_cli.cli.app import console, err_console, settings_for
from facer_cli.cli.options import DbOption, JsonOption

store_app = typer.Typer(
    help="The store as a whole: copy it into another (an SQLite file or a PostgreSQL database); "
    "encrypt, decrypt or rekey it.",
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


def _crypto_report(store: object, action: str, count: int, json_output: bool, extra: dict | None = None) -> None:
    from facer_cli.cli.output.text import literal, print_json

    state = store.encryption()  # type: ignore[attr-defined]
    body = {"db": store.location, "action": action, "rewritten": count, **(extra or {}), "encryption": state}  # type: ignore[attr-defined]
    if json_output:
        print_json(body)
        return
    console.print(literal(f"{store.location}: {action}: {count} value(s) rewritten"))  # type: ignore[attr-defined]
    console.print(
        literal(
            f"templates {state['templates_encrypted']} encrypted, {state['templates_plain']} in the clear; "
            f"samples {state['samples_encrypted']} encrypted, {state['samples_plain']} in the clear; "
            f"key {state['key_fingerprint'] or '(none)'}"
        )
    )


@store_app.command("encrypt")
def store_encrypt(ctx: typer.Context, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Encrypt a store's templates and samples in place with the master key (FACER_KEY or key_file).

    Each user is one transaction: their values sealed, read back and checked, then committed. An
    interrupted run leaves a store that reads (partly encrypted: users check says so); run it again
    to finish: it resumes with the users not yet done. The identify sidecar files are erased: the
    next identify writes one sealed with a key of the store. See docs/security.md.
    """
    from facer_cli.store.contract import open_store

    settings = settings_for(ctx)
    with open_store(settings, "write") as store:
        count = store.convert_users(True)
        _crypto_report(store, "encrypted", count, json_output)


@store_app.command("decrypt")
def store_decrypt(ctx: typer.Context, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Decrypt a store in place (to move away from encryption), one user per transaction, and delete
    the data keys and the identify sidecar's key (its sidecar is written in the clear again). Needs
    the master key. Resumable as encrypt is."""
    from facer_cli.store.contract import open_store

    settings = settings_for(ctx)
    with open_store(settings, "write") as store:
        count = store.convert_users(False)
        _crypto_report(store, "decrypted", count, json_output)


@store_app.command("rekey")
def store_rekey(
    ctx: typer.Context,
    new_key_file: Annotated[
        Path,
        typer.Option(
            "--new-key-file",
            help="The new master key's file (32 bytes or their base64, mode 0600, yours).",
            show_default=False,
        ),
    ],
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Rotate the master key: every user's data key (and the identify sidecar's key) unwrapped with
    the current key and wrapped with the new one, in one transaction. No template is rewritten, no
    one re-enrolled, and the identify sidecar stays valid. Then point
    key_file (or FACER_KEY) at the new key, and destroy the old one: copies of the store made before
    (backups, dumps) then need the old key."""
    from facer_cli.store.contract import open_store
    from facer_cli.store.crypto import read_key_file

    settings = settings_for(ctx)
    new = read_key_file(new_key_file)
    with open_store(settings, "write") as store:
        old = store.encryption()["key_fingerprint"]
        count = store.rekey(new)
        _crypto_report(
            store, f"rekeyed {old} -> {new.fingerprint}", 0, json_output, {"keys_rewrapped": count, "old_key": old}
        )
