"""`facer users list|show|remove|rename|export|import|check`: the store, person by person."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from facer_cli.cli.app import console, settings_for
from facer_cli.cli.options import (
    AddOption,
    AllowDifferentFaceOption,
    AllowLookalikeOption,
    AllowPathNameOption,
    DbOption,
    ForceOption,
    JsonOption,
    ReplaceOption,
    UserArgument,
    enroll_mode,
    setting_option,
)
from facer_cli.cli.output.text import literal, print_json
from facer_cli.cli.output.users import (
    check_view,
    export_view,
    import_view,
    removal_view,
    rename_view,
    user_view,
    users_view,
)

if TYPE_CHECKING:
    from facer_cli.service import Facer

users_app = typer.Typer(
    help="List, show, remove, rename, export and import enrolled users; check the store.", no_args_is_help=True
)


def can_prompt() -> bool:
    """A confirmation needs a person at a terminal; scripts pass --yes."""
    return sys.stdin.isatty()


def _facer(ctx: typer.Context) -> "Facer":
    from facer_cli.service import Facer

    return Facer(settings_for(ctx))


@users_app.command("list")
def users_list(ctx: typer.Context, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Every user: templates, frames used, models and dates. In Python: Facer(settings).users()."""
    facer = _facer(ctx)
    with facer.open_store("read") as store:
        result = facer.users(store=store)
        path = store.location
    if json_output:
        print_json(result.to_dict())
    else:
        console.print(users_view(result, path))


@users_app.command("show")
def users_show(
    ctx: typer.Context,
    user: UserArgument,
    attempts: Annotated[int, typer.Option("--attempts", min=0, max=1000, help="Latest verify attempts to list.")] = 10,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """One user's templates (how each was made) and their latest verify attempts.
    In Python: Facer(settings).user(name)."""
    details = _facer(ctx).user(user, attempts=attempts)
    if json_output:
        print_json(details.to_dict())
    else:
        console.print(user_view(details))


@users_app.command("remove")
def users_remove(
    ctx: typer.Context,
    user: UserArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete a user with every template and per-frame sample (the audit log keeps no embeddings).

    Their bytes are wiped from the database files before it reports success, unless another
    process is reading the store: then it says that erasure is pending, and the next facer
    command on the store finishes it. Asks first unless --yes (exit 2 without a terminal);
    exit 11 when declined. In Python: Facer(settings).remove_user(name).
    """
    from facer_cli.errors import CancelledError, UsageError

    facer = _facer(ctx)
    with facer.open_store("write") as store:
        store.templates(user, with_vectors=False)  # unknown user: say so before asking
        if not yes:
            if not can_prompt():
                raise UsageError(
                    f"removing {user.strip()!r} needs a confirmation and there is no terminal to ask; pass --yes"
                )
            if not typer.confirm(f"remove {user.strip()!r} and all their templates?"):
                raise CancelledError(f"{user.strip()!r} was not removed")
        removal = facer.remove_user(user, store=store)
    if json_output:
        print_json(removal.to_dict())
    else:
        console.print(removal_view(removal))


@users_app.command("rename")
def users_rename(
    ctx: typer.Context,
    old: UserArgument,
    new: Annotated[str, typer.Argument(help="The new name.", show_default=False)],
    allow_path_name: AllowPathNameOption = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Give a user another name (templates and audit history follow). In Python: Facer(settings).rename_user(old, new)."""
    summary = _facer(ctx).rename_user(old, new)
    if json_output:
        print_json(summary.to_dict())
    else:
        console.print(rename_view(old, summary))


@users_app.command("export")
def users_export(
    ctx: typer.Context,
    user: UserArgument,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Write the template here as a 1-D float32 .npy (.npy is added when missing).",
            show_default=False,
        ),
    ],
    template: Annotated[
        Optional[int], typer.Option("--template", help="Which template (see `users show`; default: the newest).")
    ] = None,
    force: ForceOption = False,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Write one of a user's templates to a .npy file, and print the model fingerprint it needs on import.
    The file is never encrypted, even from an encrypted store (it says so).
    In Python: Facer(settings).export_template(name, out)."""
    from facer_cli.store.crypto import encryption_info

    facer = _facer(ctx)
    result = facer.export_template(user, out, template_id=template, overwrite=force)
    if json_output:
        print_json({**result.to_dict(), "encrypted": False})
    else:
        console.print(export_view(result))
        if encryption_info(facer.settings)["enabled"]:
            console.print(
                literal(
                    f"{result.out} is not encrypted (float32 values in the clear, unlike the store): keep it "
                    "private, and delete it when done",
                    "yellow",
                )
            )


@users_app.command("import")
def users_import(
    ctx: typer.Context,
    user: UserArgument,
    file: Annotated[
        Path, typer.Argument(readable=False, help="A .npy template (1-D float vector).", show_default=False)
    ],
    fingerprint: Annotated[
        Optional[str],
        typer.Option("--fingerprint", help="The model that made it (as `users export` or `facer doctor` print it)."),
    ] = None,
    current_model: Annotated[
        bool,
        typer.Option("--current-model", help="It was made by the model facer is set to use (its size is checked)."),
    ] = False,
    trust_fingerprint: Annotated[
        bool,
        typer.Option(
            "--trust-fingerprint",
            help="Store it under a fingerprint facer cannot check (not the current model's: another version "
            "of a pack, or free text); `users list` marks such templates unverified.",
        ),
    ] = False,
    replace: ReplaceOption = False,
    add: AddOption = False,
    allow_lookalike: AllowLookalikeOption = False,
    allow_different_face: AllowDifferentFaceOption = False,
    allow_path_name: AllowPathNameOption = False,
    model_name: Annotated[
        Optional[str], setting_option("model_name", "--model", help="With --current-model: the model pack.", shown=True)
    ] = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Store a .npy template for a user. facer must know which model made it: --fingerprint FP or --current-model.
    A template of the current model that matches another enrolled person stops with exit 7 (--allow-lookalike),
    as does one for --add or --replace that does not match the user's own (--allow-different-face).
    In Python: Facer(settings).import_template(name, file, fingerprint=...)."""
    mode = enroll_mode(replace, add)
    if fingerprint is not None and not fingerprint.strip():
        raise typer.BadParameter("the model fingerprint is empty: give --fingerprint FP or --current-model")
    if bool(fingerprint) == current_model:
        raise typer.BadParameter(
            f"cannot know which model made {file}: give --fingerprint FP (printed by `facer users export`) "
            "or --current-model (made by the model facer is set to use), one of them"
        )
    result = _facer(ctx).import_template(
        user,
        file,
        fingerprint=fingerprint,
        mode=mode,
        trust_fingerprint=trust_fingerprint,
        allow_lookalike=allow_lookalike,
        allow_different_face=allow_different_face,
    )
    if json_output:
        print_json(result.to_dict())
    else:
        console.print(import_view(result, str(file)))


@users_app.command("check")
def users_check(ctx: typer.Context, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Check the database file for damage (SQLite quick_check over the whole file). Exit 0 ok, 6 damaged.
    In Python: Facer(settings).check_store()."""
    result = _facer(ctx).check_store()
    if json_output:
        print_json(result.to_dict())
    else:
        console.print(check_view(result))
