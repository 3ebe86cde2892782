"""The view of `facer store copy`: each table's rows in the source, copied, already there and found
by the verification, and the line that sums it up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from facer_cli.cli.output.text import literal

if TYPE_CHECKING:
    from facer_cli.service import CopyResult

# Each table as the view names it.
TABLE_NAMES = {
    "users": "users",
    "templates": "templates",
    "samples": "samples (frames)",
    "attempts": "verify attempts",
    "lookalikes": "look-alikes",
    "identifications": "identify log",
}


def copy_summary(result: "CopyResult") -> str:
    """ "12 rows copied, 0 already there" (the first line of the view)."""
    return f"{result.copied} rows copied, {result.already_there} already there"


def store_copy_view(result: "CopyResult") -> Group:
    title = literal(f"{result.source} → {result.destination}")
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, highlight=False)
    table.add_column("table")
    for heading in ("in source", "copied", "already there", "verified"):
        table.add_column(heading, justify="right")
    for counts in result.tables:
        verified = str(counts.verified) + (f" ({counts.left_out} left out)" if counts.left_out else "")
        table.add_row(
            TABLE_NAMES[counts.table], str(counts.source), str(counts.copied), str(counts.already_there), verified
        )
    summary = Text.assemble((copy_summary(result), "bold"), f" in {result.seconds:.1f} s")
    check = Text.assemble(
        ("verified", "green"),
        ": every row of the source is in the destination; the templates' sha256 ",
        (result.templates_sha256[:16], "bold"),
        "… is the same on both",
    )
    lines: list[RenderableType] = [table, summary, check]
    left_out = sum(counts.left_out for counts in result.tables)
    if left_out:
        lines.append(Text(f"{left_out} look-alike row(s) name users the source no longer holds: left out", "yellow"))
    return Group(*lines)
