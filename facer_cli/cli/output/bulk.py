"""The views of the bulk commands: `enroll --batch`'s per-person table and summary, `identify --each`'s
per-file table, and `identify --all-faces`'s per-face table with each face's box."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text

from facer_cli.cli.output.text import DECISION, FIXED, KEY, WRAP, Column, FitTable, literal, short_reason

if TYPE_CHECKING:
    from facer_cli.service.bulk import BatchResult, EachAnswer, FacesResult

STATUS_STYLE = {"enrolled": "green", "skipped": "dim", "refused": "red", "lookalike": "yellow"}
ANSWER_STYLE = {"identified": "green", "unknown": "yellow", "ambiguous": "yellow", "no_probe": "red", "rejected": "dim"}


def batch_view(result: "BatchResult", verbose: bool = False) -> Group:
    """One row per person (its outcome and why), then the counts."""
    table = FitTable(
        [
            Column("person", KEY),
            Column("outcome", FIXED),
            Column("photos", FIXED, drop=2, justify="right"),
            Column("used", FIXED, drop=1, justify="right"),
            Column("why", WRAP, drop=3),
        ],
        title="dry run: nothing stored" if result.dry_run else "batch enrollment",
    )
    for o in result.outcomes:
        why = o.reason if verbose else short_reason(o.reason)
        if o.photo_reasons and (verbose or o.status == "refused"):
            why += "; " + "; ".join(f"{Path(p).name}: {short_reason(r)}" for p, r in o.photo_reasons)
        table.add_row(
            literal(o.name), literal(o.status, STATUS_STYLE[o.status]), str(o.photos), str(o.used), literal(why)
        )
    counts = ", ".join(f"{result.count(s)} {s}" for s in ("enrolled", "skipped", "refused", "lookalike"))
    verb = "would be " if result.dry_run else ""
    summary = Text(f"{len(result.outcomes)} people: {counts}" + (f" ({verb}enrolled)" if result.dry_run else ""))
    return Group(table, summary)


def each_view(answers: "list[EachAnswer]", verbose: bool = False) -> Group:
    """One row per file: the decision, the person, similarity and margin."""
    table = FitTable(
        [
            Column("file", WRAP),
            Column("decision", FIXED),
            Column("user", KEY),
            Column("similarity", FIXED, drop=2, justify="right"),
            Column("margin", FIXED, drop=1, justify="right"),
            Column("why", DECISION if verbose else WRAP, drop=0 if verbose else 3),
        ],
        title="identify, file by file",
    )
    for a in answers:
        table.add_row(
            literal(Path(a.file).name),
            literal(a.decision, ANSWER_STYLE.get(a.decision, "")),
            literal(a.user or ""),
            "" if a.similarity is None else f"{a.similarity:.4f}",
            "" if a.margin is None else f"{a.margin:.4f}",
            literal(a.reason if verbose else "" if a.decision == "identified" else short_reason(a.reason)),
        )
    counts: dict[str, int] = {}
    for a in answers:
        counts[a.decision] = counts.get(a.decision, 0) + 1
    summary = Text(f"{len(answers)} file(s): " + ", ".join(f"{n} {d}" for d, n in counts.items()))
    return Group(table, summary)


def faces_view(result: "FacesResult", verbose: bool = False) -> Group:
    """One row per face: its box, decision, the person and why."""
    table = FitTable(
        [
            Column("face", FIXED, justify="right"),
            Column("box", FIXED, drop=2),
            Column("decision", FIXED),
            Column("user", KEY),
            Column("similarity", FIXED, drop=1, justify="right"),
            Column("why", WRAP, drop=3),
        ],
        title=f"{Path(result.source).name}: {len(result.faces)} face(s), {result.gallery_size} template(s) searched",
    )
    for f in result.faces:
        x1, y1, x2, y2 = f.box
        table.add_row(
            str(f.face),
            f"{x1:.0f},{y1:.0f}–{x2:.0f},{y2:.0f}",
            literal(f.decision, ANSWER_STYLE.get(f.decision, "")),
            literal(f.user or ""),
            "" if f.similarity is None else f"{f.similarity:.4f}",
            literal(f.reason if verbose else "" if f.decision == "identified" else short_reason(f.reason)),
        )
    parts: list[RenderableType] = [table]
    named = result.named
    parts.append(Text(f"named: {', '.join(named)}" if named else "nobody identified"))
    return Group(*parts)
