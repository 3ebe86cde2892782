"""The views of `facer users`: the list, one user's templates and attempts, remove, rename,
export, import and check; and the look-alike lines an enrollment or an import recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from facer_cli.cli.output.text import ShortName, literal, local_time, number

if TYPE_CHECKING:
    from facer_cli.service import CheckResult, ExportResult, ImportResult, UserList
    from facer_cli.store import Removal, UserDetails, UserSummary


def users_view(result: "UserList", store_path: str) -> Table:
    table = Table(
        title=literal(f"{len(result.users)} user(s) in {store_path}"),
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("user", min_width=9, max_width=40)
    table.add_column("templates", justify="right", no_wrap=True)
    table.add_column("frames", justify="right", no_wrap=True)
    table.add_column("model", no_wrap=True, overflow="ellipsis", max_width=40)
    table.add_column("enrolled", no_wrap=True)
    table.add_column("last verified", no_wrap=True)
    for u in result.users:
        table.add_row(
            ShortName(u.name),
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
    table = Table(title="templates", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("id", "created", "model", "dim", "frames used/seen", "outliers", "quality", "source"):
        table.add_column(column, overflow="fold" if column == "source" else "ellipsis")
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
        attempts = Table(title="latest verify attempts", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("when", "similarity", "band", "live", "frames used/seen", "source"):
            attempts.add_column(column, overflow="fold" if column in ("source", "live") else "ellipsis")
        for a in details.attempts:
            live = "–" if a.live is None else "yes" if a.live else f"no: {a.liveness_reason or ''}"
            attempts.add_row(
                local_time(a.created),
                number(a.similarity, ".4f"),
                a.band.replace("_", " "),
                literal(live),
                f"{a.frames_used}/{a.frames_seen}",
                literal(a.source or ""),
            )
        parts.append(attempts)
    else:
        parts.append(Text("no verify attempts yet"))
    if details.lookalikes:
        looks = Table(title="look-alikes (enrolled anyway)", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("user", "similarity", "when"):
            looks.add_column(column)
        for other in details.lookalikes:
            looks.add_row(ShortName(other.user), f"{other.similarity:.4f}", local_time(other.created))
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
    return literal(f"{result.db}: {result.check}, {result.users} user(s)")
