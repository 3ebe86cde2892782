"""The views of `facer users`: the list, one user's templates and attempts, remove, rename,
export, import and check; and the look-alike lines an enrollment or an import recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text

from facer_cli.cli.output.text import (
    DECISION,
    FIXED,
    KEY,
    SHORT,
    WRAP,
    Column,
    FitTable,
    literal,
    local_time,
    number,
)

if TYPE_CHECKING:
    from facer_cli.service import CheckResult, ExportResult, ImportResult, UserList
    from facer_cli.store import Removal, UserDetails, UserSummary


def users_view(result: "UserList", store_path: str) -> FitTable:
    """One row per user. Narrower than the table, columns go in this order: last verified, model
    (first shortened down to 12 characters), enrolled, frames, templates; the user stays."""
    table = FitTable(
        [
            Column("user", KEY),
            Column("templates", FIXED, drop=5, justify="right"),
            Column("frames", FIXED, drop=4, justify="right"),
            Column("model", SHORT, drop=2, min_width=12),
            Column("enrolled", FIXED, drop=3),
            Column("last verified", FIXED, drop=1),
        ],
        title=literal(f"{len(result.users)} user(s) in {store_path}"),
    )
    for u in result.users:
        table.add_row(
            literal(u.name),
            str(u.templates),
            str(u.frames),
            literal(", ".join(m + (" (unverified)" if m in u.unverified_models else "") for m in u.models)),
            local_time(u.created)[:16],
            local_time(u.last_verified)[:16],
        )
    return table


def user_view(details: "UserDetails") -> Group:
    u = details.user
    head = literal(u.name, "bold")
    head.append(
        f": enrolled {local_time(u.created)}, updated {local_time(u.updated)}, "
        f"last verified {local_time(u.last_verified)}"
    )
    # Narrower than a table, columns go in this order. Templates: dim, outliers, quality, created,
    # model, frames used/seen (id and source stay). Attempts: frames used/seen, key, source,
    # similarity (when, band and live stay). Look-alikes: when (user and similarity stay).
    table = FitTable(
        [
            Column("id", KEY, justify="right"),
            Column("created", FIXED, drop=4),
            Column("model", SHORT, drop=5, min_width=12),
            Column("dim", FIXED, drop=1, justify="right"),
            Column("frames used/seen", FIXED, drop=6, justify="right"),
            Column("outliers", FIXED, drop=2, justify="right"),
            Column("quality", FIXED, drop=3, justify="right"),
            Column("source", WRAP, min_width=30),
        ],
        title="templates",
    )
    for t in details.templates:
        frames = "–" if t.frames_used is None else f"{t.frames_used}/{t.frames_seen}"
        table.add_row(
            str(t.id),
            local_time(t.created),
            literal(t.model),
            str(t.dimension),
            frames,
            number(t.outliers, "d"),
            number(t.mean_quality, ".2f"),
            literal(t.source or ""),
        )
    parts: list[RenderableType] = [head, table]
    if details.attempts:
        attempts = FitTable(
            [
                Column("when", KEY),
                Column("similarity", FIXED, drop=4, justify="right"),
                Column("band", DECISION),
                Column("live", DECISION),
                Column("frames used/seen", FIXED, drop=1, justify="right"),
                Column("key", SHORT, drop=2, min_width=8),
                Column("source", WRAP, drop=3),
            ],
            title="latest verify attempts",
        )
        for a in details.attempts:
            live = "–" if a.live is None else "yes" if a.live else f"no: {a.liveness_reason or ''}"
            attempts.add_row(
                local_time(a.created),
                number(a.similarity, ".4f"),
                a.band.replace("_", " "),
                literal(live),
                f"{a.frames_used}/{a.frames_seen}",
                literal(a.key_name or "–"),
                literal(a.source or ""),
            )
        parts.append(attempts)
    else:
        parts.append(Text("no verify attempts yet"))
    if details.lookalikes:
        looks = FitTable(
            [Column("user", KEY), Column("similarity", FIXED, justify="right"), Column("when", FIXED, drop=1)],
            title="look-alikes (enrolled anyway)",
        )
        for other in details.lookalikes:
            looks.add_row(literal(other.user), f"{other.similarity:.4f}", local_time(other.created))
        parts.append(looks)
    return Group(*parts)


def removal_view(removal: "Removal") -> Text:
    text = f"removed {removal.user!r}: {removal.templates} template(s), {removal.samples} sample(s)"
    if removal.erasure_pending and removal.erasure_note:
        text += f"; erasure pending: {removal.erasure_note}"
    elif removal.erasure_pending:
        text += (
            "; erasure pending: another process is reading the store, so their embeddings' bytes stay in "
            "the database files until the next facer command on it wipes them"
        )
    return literal(text)


def rename_view(old: str, summary: "UserSummary") -> Text:
    return literal(f"renamed {old.strip()!r} to {summary.name!r}")


def export_view(result: "ExportResult") -> Group:
    t = result.template
    return Group(
        literal(f"template {t.id} of {t.user!r} written to {result.out} (model {t.model})"),
        literal(f"import it with: facer users import NAME {result.out} --fingerprint {t.model}"),
    )


def import_view(result: "ImportResult", file: str) -> Group:
    stored = result.stored
    parts: list[RenderableType] = [
        literal(f"imported {file} as template {stored.id} of {stored.user!r} (model {stored.model})")
    ]
    parts += lookalike_lines(result.lookalikes)
    return Group(*parts)


def lookalike_lines(lookalikes: list[dict]) -> list[RenderableType]:
    """The look-alikes an enrollment or import recorded (`--allow-lookalike`)."""
    return [
        literal(f"recorded as a look-alike of {other['user']!r} ({other['similarity']:.2f})", "yellow")
        for other in lookalikes
    ]


def check_view(result: "CheckResult") -> Text:
    text = literal(f"{result.db}: {result.check}, {result.users} user(s)")
    crypto = result.encryption or {}
    mixed = crypto.get("templates_encrypted") and (crypto.get("templates_plain") or crypto.get("samples_plain"))
    if crypto:
        text.append("\n")
        text.append_text(
            literal(
                f"encryption: {'on (key ' + str(crypto['key_fingerprint']) + ')' if crypto['enabled'] else 'off'}; "
                f"templates {crypto['templates_encrypted']} encrypted, {crypto['templates_plain']} in the clear; "
                f"samples {crypto['samples_encrypted']} encrypted, {crypto['samples_plain']} in the clear"
            )
        )
    given = crypto.get("key_fingerprint")
    others = [fp for fp in crypto.get("store_keys", []) if fp != given]
    if others:
        text.append("\n")
        text.append_text(
            literal(
                f"the store's templates are encrypted with the key {', '.join(others)}, "
                + (f"not the key given ({given})" if given else "and no key is given")
                + ": they cannot be read",
                "bold red",
            )
        )
    if mixed:
        text.append("\n")
        text.append_text(
            literal(
                "partly encrypted (an interrupted facer store encrypt): every row reads; run facer store "
                "encrypt again to finish",
                "yellow",
            )
        )
    for pair in result.name_collisions:
        text.append("\n")
        text.append_text(
            literal(
                f"{pair['user']!r} looks like the enrolled user {pair['looks_like']!r} (both enrolled before names "
                "were compared by how they look): rename one of them (facer users rename)",
                "yellow",
            )
        )
    return text
