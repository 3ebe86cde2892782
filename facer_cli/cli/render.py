"""Rich tables made from the same dataclasses the JSON is made from."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from facer_cli.aggregate import Template
from facer_cli.compare import Band, Comparison
from facer_cli.reports import FaceReport, FrameReport

BAND_STYLE = {Band.MATCH: "bold green", Band.UNCERTAIN: "bold yellow", Band.NO_MATCH: "bold red"}


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def frames_table(frames: Sequence[FrameReport], template: Template | None = None, title: str | None = None) -> Table:
    """One row per face (or per unreadable file): measurements, then the decision and why.

    The decision, its reason and the frame's role in the template share the last
    column, so the table stays readable in an 80-column terminal.
    """
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("file", overflow="fold", max_width=28)
    for name in ("#", "det", "yaw", "pitch", "roll", "sharp", "qual"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("decision", ratio=1)
    for index, frame in enumerate(frames):
        name = Path(frame.source).name or frame.source
        if frame.error is not None or not frame.faces:
            reason = (frame.reason or "no face").removeprefix(frame.source + ": ")
            table.add_row(name, "–", "", "", "", "", "", "", Text(f"rejected: {reason}", "red"))
            continue
        for face in frame.faces:
            table.add_row(
                name if face.index == 1 else "",
                str(face.index),
                _num(face.det_score, ".2f"),
                _num(face.yaw, "+.1f"),
                _num(face.pitch, "+.1f"),
                _num(face.roll, "+.1f"),
                _num(face.sharpness, ".0f"),
                _num(face.quality, ".2f"),
                _decision(face, template, index),
            )
    return table


def _decision(face: FaceReport, template: Template | None, index: int) -> Text:
    if not face.is_subject:
        return Text("ignored: not the subject", "dim")
    if not face.accepted:
        return Text(f"rejected: {face.reason}", "red")
    text = Text("accepted", "green")
    if template is not None and index in template.used:
        text.append(" · kept", "green")
    elif template is not None and index in template.outlier_cosines:
        text.append(f" · outlier (cos {template.outlier_cosines[index]:.2f})", "bold red")
    return text


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
