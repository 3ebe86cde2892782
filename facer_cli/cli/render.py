"""Rich tables made from the same dataclasses the JSON is made from."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rich.table import Table
from rich.text import Text

from facer_cli.aggregate import Template
from facer_cli.compare import Band, Comparison
from facer_cli.reports import FrameReport

BAND_STYLE = {Band.MATCH: "bold green", Band.UNCERTAIN: "bold yellow", Band.NO_MATCH: "bold red"}


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def frames_table(frames: Sequence[FrameReport], template: Template | None = None, title: str | None = None) -> Table:
    """One row per face (or per unreadable file): measurements, decision and reason."""
    table = Table(title=title, header_style="bold", show_lines=False)
    for name, justify in (
        ("file", "left"), ("face", "right"), ("det", "right"), ("yaw", "right"), ("pitch", "right"),
        ("roll", "right"), ("sharp", "right"), ("quality", "right"), ("decision", "left"), ("reason", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")
    if template is not None:
        table.add_column("template", overflow="fold")
    for index, frame in enumerate(frames):
        name = Path(frame.source).name or frame.source
        if frame.error is not None or not frame.faces:
            row = [name, "–", "", "", "", "", "", "", Text("rejected", "red"), frame.reason or "no face"]
            if template is not None:
                row.append("")
            table.add_row(*row)
            continue
        for face in frame.faces:
            decision = Text("accepted", "green") if face.accepted else Text("rejected" if face.is_subject else "ignored", "red" if face.is_subject else "dim")
            row = [
                name if face.index == 1 else "",
                str(face.index),
                _num(face.det_score, ".2f"),
                _num(face.yaw, "+.1f"),
                _num(face.pitch, "+.1f"),
                _num(face.roll, "+.1f"),
                _num(face.sharpness, ".0f"),
                _num(face.quality, ".2f"),
                decision,
                face.reason,
            ]
            if template is not None:
                row.append(_template_role(template, index) if face.is_subject else "")
            table.add_row(*row)
    return table


def _template_role(template: Template, index: int) -> Text:
    if index in template.used:
        return Text("kept", "green")
    if index in template.outlier_cosines:
        return Text(f"outlier (cos {template.outlier_cosines[index]:.2f})", "red")
    return Text("")


def frames_summary(frames: Sequence[FrameReport]) -> str:
    faces = sum(len(frame.faces) for frame in frames)
    accepted = sum(frame.accepted for frame in frames)
    errors = sum(frame.error is not None for frame in frames)
    no_face = sum(frame.error is None and not frame.faces for frame in frames)
    parts = [f"{len(frames)} image(s)", f"{faces} face(s)", f"{accepted} accepted"]
    if no_face:
        parts.append(f"{no_face} without a face")
    if errors:
        parts.append(f"{errors} unreadable")
    return ", ".join(parts)


def template_summary(template: Template) -> str:
    return (
        f"template: {template.dimension}-d from {len(template.used)} of {template.frames_seen} frame(s) "
        f"({len(template.accepted)} accepted, {len(template.outliers)} dropped as outliers), "
        f"mean quality {template.mean_quality:.2f}"
    )


def comparison_text(comparison: Comparison) -> Text:
    text = Text()
    text.append(f"similarity {comparison.similarity:.4f}  ")
    text.append(comparison.band.value.replace("_", " ").upper(), BAND_STYLE[comparison.band])
    text.append(f"  (match ≥ {comparison.threshold_high:g}, no match < {comparison.threshold_low:g})")
    return text
