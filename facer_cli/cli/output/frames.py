"""The per-frame tables and the lines beside them that several views share.

One row per face with its measurements and decision (or a count per decision for long camera
runs), the capture and liveness lines, the frames and template summaries, and a comparison's
similarity with its band.
"""

from __future__ import annotations

from collections import Counter
from pathlib import PurePath
from typing import TYPE_CHECKING, Sequence

from rich.console import Group, RenderableType
from rich.text import Text

from facer_cli.cli.output.text import DECISION, FIXED, KEY, Column, FitTable, literal, number, short_reason

if TYPE_CHECKING:
    from facer_cli.engine.reports import FaceReport, FrameReport
    from facer_cli.liveness import FrameCue, LivenessResult
    from facer_cli.service import Frames
    from facer_cli.templates.aggregate import Template
    from facer_cli.templates.matching import Comparison

BAND_STYLE = {"match": "bold green", "uncertain": "bold yellow", "no_match": "bold red"}
# A camera run with more frames than this shows rejections by reason (all rows with --verbose).
SUMMARY_FROM = 12


def _file_name(source: str) -> str:
    return PurePath(source).name or source


def frames_table(
    frames: Sequence["FrameReport"],
    template: "Template | None" = None,
    title: str | None = None,
    verbose: bool = False,
    liveness: "LivenessResult | None" = None,
) -> FitTable:
    """One row per face (or per unreadable file): measurements, then the decision and why.

    The decision, its reason and the frame's role in the template share the last column; the
    reason is short unless `verbose` (`--json` always has it in full). With a liveness challenge,
    each frame's first row also shows the step it was at and the parallax residual measured on it
    (against the frontal frame, in inter-ocular distances).

    The file (or camera frame label, `clip.mp4 #17 @1.17s`) and the decision always show, whole.
    Narrower than the table, columns go in this order: roll, pitch, det, sharp, #, plx, qual, yaw,
    step."""
    table = FitTable(
        [
            Column("file", KEY),
            Column("#", FIXED, drop=5, justify="right"),
            Column("det", FIXED, drop=3, justify="right"),
            Column("yaw", FIXED, drop=8, justify="right"),
            Column("pitch", FIXED, drop=2, justify="right"),
            Column("roll", FIXED, drop=1, justify="right"),
            Column("sharp", FIXED, drop=4, justify="right"),
            Column("qual", FIXED, drop=7, justify="right"),
        ]
        + (
            [Column("step", FIXED, drop=9), Column("plx", FIXED, drop=6, justify="right")]
            if liveness is not None and liveness.cues is not None
            else []
        )
        + [Column("decision", DECISION, min_width=24)],
        title=title and literal(title),
        collapse_padding=True,
    )
    cues = liveness.cues if liveness is not None else None
    for index, frame in enumerate(frames):
        name = literal(_file_name(frame.source))
        live_cells: list[str] = []
        if cues is not None and liveness is not None:
            live_cells = _cue_cells(liveness, cues[index] if index < len(cues) else None)
        if frame.error is not None or not frame.faces:
            reason = (frame.reason or "no face").removeprefix(frame.source + ": ")
            table.add_row(name, "–", "", "", "", "", "", "", *live_cells, literal(f"rejected: {reason}", "red"))
            continue
        for face in frame.faces:
            table.add_row(
                name if face.index == 1 else None,
                str(face.index),
                number(face.det_score, ".2f"),
                number(face.yaw, "+.1f"),
                number(face.pitch, "+.1f"),
                number(face.roll, "+.1f"),
                number(face.sharpness, ".0f"),
                number(face.quality, ".2f"),
                *(live_cells if face.index == 1 else ["" for _ in live_cells]),
                _decision(face, template, index, verbose),
            )
    return table


def _cue_cells(liveness: "LivenessResult", cue: "FrameCue | None") -> list[str]:
    """The step column ("2 right") and the parallax residual of one frame."""
    if cue is None:
        return ["", ""]
    steps = liveness.challenge.steps
    move = steps[cue.step - 1].move if 0 < cue.step <= len(steps) else ""
    return [f"{cue.step} {move}".strip(), number(cue.residual, ".3f")]


def liveness_line(result: "LivenessResult") -> Text:
    """ "liveness: LIVE (parallax 0.069 IOD, 2 of 2 steps in 1.0 s)" or "liveness: NOT LIVE: <why>"."""
    text = Text("liveness: ")
    done = f"{result.steps_done} of {len(result.challenge.steps)} steps in {result.elapsed_ms / 1000:.1f} s"
    parallax = "" if result.parallax is None else f"parallax {result.parallax:.3f} IOD, "
    if result.live:
        text.append("LIVE", "bold green")
        text.append(f" ({parallax}{done}, {len(result.cues)} frames)")
    else:
        text.append("NOT LIVE", "bold red")
        text.append(": ")
        text.append(literal(result.reason))
        text.append(f" ({parallax}{done})")
    moves = " → ".join(step.move for step in result.challenge.steps)
    text.append(f"; challenge: {moves}", "dim")
    return text


def _decision(face: "FaceReport", template: "Template | None", index: int, verbose: bool) -> Text:
    if not face.is_subject:
        return Text("ignored: not the subject", "dim")
    if not face.accepted:
        return literal(f"rejected: {face.reason if verbose else short_reason(face.reason)}", "red")
    text = Text("accepted", "green")
    if template is not None and index in template.used:
        text.append(" · kept", "green")
    elif template is not None and index in template.outlier_cosines:
        text.append(f" · outlier (cos {template.outlier_cosines[index]:.2f})", "bold red")
    return text


def rejections_table(frames: Sequence["FrameReport"], title: str | None = None) -> FitTable:
    """Frames by decision: how many were accepted and how many rejected for each reason."""
    counts = Counter("accepted" if f.accepted else short_reason(f.reason or "no face") for f in frames)
    table = FitTable(
        [Column("frames", FIXED, justify="right"), Column("decision", DECISION)], title=title and literal(title)
    )
    for reason, count in counts.most_common():
        table.add_row(str(count), literal(reason, "green" if reason == "accepted" else "red"))
    return table


def frames_view(
    frames: "Frames", template: "Template | None" = None, title: str | None = None, verbose: bool = False
) -> Group:
    """The per-frame table (a summary by reason for long camera runs, unless verbose) and the capture line."""
    parts: list[RenderableType] = []
    if frames.liveness is not None:  # every frame of a challenge, with its step and cues
        parts.append(frames_table(frames.frames, template, title=title, verbose=verbose, liveness=frames.liveness))
    elif frames.capture is not None and len(frames.frames) > SUMMARY_FROM and not verbose:
        parts.append(
            rejections_table(
                frames.frames,
                title=f"{title or 'frames'}: {len(frames.frames)} frames by decision (every frame with --verbose)",
            )
        )
    else:
        parts.append(frames_table(frames.frames, template, title=title, verbose=verbose))
    line = capture_line(frames)
    if line:
        parts.append(literal(line))
    if frames.liveness is not None:
        parts.append(liveness_line(frames.liveness))
    return Group(*parts)


def capture_line(frames: "Frames") -> str | None:
    if frames.capture is None:
        return None
    c = frames.capture
    s = c.stats
    return (
        f"{frames.source}: {s.read} frame(s) read, {s.warmup} warm-up dropped, {s.spaced} skipped for spacing, "
        f"{len(c.frames)} analysed, {c.accepted} accepted; stopped: {s.stopped or 'done'} ({s.clock} clock)"
    )


def frames_summary(frames: Sequence["FrameReport"]) -> str:
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


def template_summary(template: "Template", prefix: str = "template") -> str:
    return (
        f"{prefix}: {template.dimension}-d from {len(template.used)} of {template.frames_seen} frame(s) "
        f"({len(template.accepted)} accepted, {len(template.outliers)} dropped as outliers), "
        f"mean quality {template.mean_quality:.2f}"
    )


def comparison_text(comparison: "Comparison") -> Text:
    text = Text()
    text.append(f"similarity {comparison.similarity:.4f}  ")
    text.append(comparison.band.label.upper(), BAND_STYLE[comparison.band.value])
    text.append(f"  (match ≥ {comparison.threshold_high:g}, no match < {comparison.threshold_low:g})")
    return text
