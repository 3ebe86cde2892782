"""The views of `facer keys`: a new key and its token (shown once), the list, a revocation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text

from facer_cli.cli.output.text import FIXED, KEY, Column, FitTable, literal, local_time

if TYPE_CHECKING:
    from facer_cli.service.keys import KeyList, NewKey
    from facer_cli.store.records import ApiKey


def new_key_view(new: "NewKey") -> Group:
    """The key's name and scope, then its token alone on a line (to copy), and that it is not kept."""
    head = literal(f"added the {new.key.scope} key {new.key.name!r}; its token, shown this once:")
    note = Text("The store keeps only its hash: copy it now into the client's X-API-Key header.", style="dim")
    return Group(head, Text(new.token, no_wrap=True, overflow="ignore"), note)


def keys_view(result: "KeyList") -> RenderableType:
    """One row per key, active and revoked (never a token or a hash)."""
    settings_line = (
        literal("the api_key setting is also an admin key (named api_key in the logs)") if result.settings_key else None
    )
    if not result.keys:
        text = Text("no API keys in the store")
        if settings_line is not None:
            text.append("\n")
            text.append_text(settings_line)
        return text
    table = FitTable(
        [
            Column("name", KEY),
            Column("scope", FIXED),
            Column("created", FIXED, drop=2),
            Column("revoked", FIXED, drop=1),
        ],
        title=literal(f"{sum(k.active for k in result.keys)} active key(s), {len(result.keys)} in all"),
    )
    for key in result.keys:
        table.add_row(
            literal(key.name),
            key.scope,
            local_time(key.created)[:16],
            "–" if key.revoked is None else local_time(key.revoked)[:16],
        )
    return table if settings_line is None else Group(table, settings_line)


def revoke_view(key: "ApiKey") -> Text:
    return literal(
        f"revoked the {key.scope} key {key.name!r}: refused from now on (by a running server within seconds)"
    )
