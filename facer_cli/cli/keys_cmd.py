"""`facer keys add|list|revoke`: the named, scoped API keys of `facer serve`, in the store."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from facer_cli.cli.app import console, settings_for
from facer_cli.cli.options import DbOption, JsonOption
from facer_cli.cli.output.text import print_json

keys_app = typer.Typer(
    help="API keys of facer serve: add a kiosk or admin key, list them, revoke one (no restart needed).",
    no_args_is_help=True,
)

KeyName = Annotated[str, typer.Argument(help="The key's name, e.g. the kiosk's: door-1.", show_default=False)]


class Scope(str, Enum):
    KIOSK = "kiosk"
    ADMIN = "admin"


@keys_app.command("add")
def keys_add(
    ctx: typer.Context,
    name: KeyName,
    scope: Annotated[
        Scope,
        typer.Option(
            "--scope",
            help="kiosk: verify and identify only; admin: also enroll, remove, list, show and export.",
        ),
    ] = Scope.KIOSK,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Add an API key and print its token, once: the store keeps only a salted hash of it.

    A running facer serve accepts it within seconds. In Python:
    ApiKeys(settings).add(name, scope) (facer_cli.service.keys)."""
    from facer_cli.cli.output.keys import new_key_view
    from facer_cli.service.keys import ApiKeys

    new = ApiKeys(settings_for(ctx)).add(name, scope.value)
    if json_output:
        print_json(new.to_dict())
    else:
        console.print(new_key_view(new))


@keys_app.command("list")
def keys_list(ctx: typer.Context, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Every API key, active and revoked: name, scope, created, revoked (never a token or a hash).
    In Python: ApiKeys(settings).list()."""
    from facer_cli.cli.output.keys import keys_view
    from facer_cli.service.keys import ApiKeys

    result = ApiKeys(settings_for(ctx)).list()
    if json_output:
        print_json(result.to_dict())
    else:
        console.print(keys_view(result))


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, name: KeyName, db: DbOption = None, json_output: JsonOption = False) -> None:
    """Revoke the active API key of this name: a running facer serve refuses it within seconds.
    Its row stays in the list; a new key may then take the name. In Python: ApiKeys(settings).revoke(name)."""
    from facer_cli.cli.output.keys import revoke_view
    from facer_cli.service.keys import ApiKeys

    key = ApiKeys(settings_for(ctx)).revoke(name)
    if json_output:
        print_json(key.to_dict())
    else:
        console.print(revoke_view(key))
