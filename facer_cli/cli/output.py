"""Every result rendered in one place: a Rich view for people, JSON for programs.

Both come from the same result dataclass (`to_dict()` is the JSON). Every dynamic
value — user names, file names, messages — goes into `Text` objects built by
`literal()`, which never interprets markup and shows control characters visibly,
so no input can restyle, split or rewrite the terminal.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from datetime import datetime
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from facer_cli.engine.reports import FaceReport, FrameReport
    from facer_cli.evaluation import Evaluation
    from facer_cli.evaluation.liveness import LivenessEvaluation, Rate
    from facer_cli.liveness import FrameCue, LivenessResult
    from facer_cli.service import (
        CaptureResult,
        CheckResult,
        CompareResult,
        DemoResult,
        DoctorInfo,
        EnrollResult,
        ExportResult,
        Frames,
        IdentifyResult,
        ImportResult,
        InspectResult,
        UserList,
        VerifyResult,
    )
    from facer_cli.settings import LoadedSettings
    from facer_cli.store import Removal, UserDetails, UserSummary
    from facer_cli.templates.aggregate import Template
    from facer_cli.templates.matching import Comparison

BAND_STYLE = {"match": "bold green", "uncertain": "bold yellow", "no_match": "bold red"}
# A camera run with more frames than this shows rejections by reason (all rows with --verbose).
SUMMARY_FROM = 12
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def literal(value: Any, style: str = "") -> Text:
    """Any value as text shown exactly: no markup, control characters as visible escapes."""
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))
    return Text(text, style=style)


class ShortName:
    """A file or user name that keeps its start and its end when the column is narrow
    (`alex_lac…moire_3.png`): the part that tells photos apart is often at the end."""

    def __init__(self, value: Any, style: str = ""):
        self.text = literal(value, style)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        length = self.text.cell_len
        return Measurement(min(length, 9), length)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        text = self.text
        if text.cell_len > width >= 3:
            plain = text.plain
            tail = (width - 1) // 2 + (width - 1) % 2
            head = width - 1 - tail
            text = Text(plain[:head] + "…" + plain[len(plain) - tail :], style=text.style)
        yield text


def print_json(data: Any) -> None:
    # allow_nan=False: a NaN or infinity would make invalid JSON; facer's results never hold one.
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def local_time(value: str | None) -> str:
    """An ISO 8601 time as local time with its zone (tables); "–" when unset."""
    if not value:
        return "–"
    try:
        moment = datetime.fromisoformat(value).astimezone()
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def short_reason(reason: str) -> str:
    """ "yaw +31° beyond ±25°; blurred: sharpness 41 < 80" → "yaw, blurred": the table's short form.

    Each reason's leading words; a reason that starts with a number keeps what comes before its colon
    ("2 people in view: one person at a time" → "2 people in view")."""
    parts = []
    for part in reason.split("; "):
        if part[:1].isdigit():
            head = part.split(":", 1)[0].strip()
        else:
            head = re.split(r"[\d+\-−±<>(:]", part, maxsplit=1)[0].strip()
        parts.append(head or part)
    return ", ".join(dict.fromkeys(parts))


def _file_name(source: str) -> str:
    return PurePath(source).name or source


# -- frames -------------------------------------------------------------------
def frames_table(
    frames: Sequence["FrameReport"],
    template: "Template | None" = None,
    title: str | None = None,
    verbose: bool = False,
    liveness: "LivenessResult | None" = None,
) -> Table:
    """One row per face (or per unreadable file): measurements, then the decision and why.

    The decision, its reason and the frame's role in the template share the last column, so the
    table fits 80 columns; the reason is short unless `verbose` (`--json` always has it in full).
    With a liveness challenge, each frame's first row also shows the step it was at and the parallax
    residual measured on it (against the frontal frame, in inter-ocular distances)."""
    table = Table(
        title=title and literal(title), header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    table.add_column("file", min_width=9)
    for column in ("#", "det", "yaw", "pitch", "roll", "sharp", "qual"):
        table.add_column(column, justify="right", no_wrap=True)
    cues = liveness.cues if liveness is not None else None
    if cues is not None:
        table.add_column("step", no_wrap=True)
        table.add_column("plx", justify="right", no_wrap=True)
    table.add_column("decision", ratio=1, min_width=15, overflow="fold" if verbose else "ellipsis")
    for index, frame in enumerate(frames):
        name: ShortName | str = ShortName(_file_name(frame.source))
        live_cells: list[str] = []
        if cues is not None and liveness is not None:
            live_cells = _cue_cells(liveness, cues[index] if index < len(cues) else None)
        if frame.error is not None or not frame.faces:
            reason = (frame.reason or "no face").removeprefix(frame.source + ": ")
            table.add_row(name, "–", "", "", "", "", "", "", *live_cells, literal(f"rejected: {reason}", "red"))
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
    return [f"{cue.step} {move}".strip(), _num(cue.residual, ".3f")]


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


def rejections_table(frames: Sequence["FrameReport"], title: str | None = None) -> Table:
    """Frames by decision: how many were accepted and how many rejected for each reason."""
    counts = Counter("accepted" if f.accepted else short_reason(f.reason or "no face") for f in frames)
    table = Table(title=title and literal(title), header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("frames", justify="right")
    table.add_column("decision")
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


# -- one view per result --------------------------------------------------------
def inspect_view(result: "InspectResult", verbose: bool = False) -> Group:
    parts: list[RenderableType] = [
        frames_table(result.frames, result.template, verbose=verbose),
        Text(frames_summary(result.frames)),
    ]
    if result.template is not None:
        parts.append(Text(template_summary(result.template)))
    return Group(*parts)


def compare_view(result: "CompareResult", verbose: bool = False) -> Group:
    parts: list[RenderableType] = []
    if result.frames:
        parts.append(frames_table(result.frames, verbose=verbose))
    parts.append(comparison_text(result.comparison))
    return Group(*parts)


def enroll_view(result: "EnrollResult", store_path: str, verbose: bool = False) -> Group:
    verb = {"new": "enrolled", "replace": "re-enrolled (old templates replaced)", "add": "added a template to"}
    line = Text(f"{verb[result.mode]} ")
    line.append(literal(result.user, "bold"))
    line.append(literal(f": template {result.stored.id}, model {result.stored.model}, in {store_path}"))
    parts: list[RenderableType] = [
        frames_view(result.frames, result.template, title=f"enroll {result.user}", verbose=verbose),
        Text(template_summary(result.template)),
        line,
    ]
    parts += lookalike_lines(result.lookalikes)
    return Group(*parts)


def verify_view(result: "VerifyResult", verbose: bool = False) -> Group:
    line = Text(f"best of {result.templates_compared} template(s) of ")
    line.append(literal(result.user, "bold"))
    line.append(f" (template {result.template_id}); attempt {result.attempt_id} recorded")
    return Group(
        frames_view(result.frames, result.probe, title=f"verify {result.user}", verbose=verbose),
        Text(template_summary(result.probe, "probe template")),
        comparison_text(result.comparison),
        line,
    )


DECISION_STYLE = {"identified": "bold green", "unknown": "bold red", "ambiguous": "bold yellow"}


def identify_view(result: "IdentifyResult", verbose: bool = False) -> Group:
    """Frames, the probe, the candidates (best first) and the decision with its reason."""
    table = Table(
        title=f"top {len(result.candidates)} of {result.gallery_size} template(s)",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("#", justify="right")
    table.add_column("user", min_width=9, max_width=40)
    table.add_column("similarity", justify="right")
    table.add_column("template", justify="right")
    for rank, candidate in enumerate(result.candidates, start=1):
        style = "green" if rank == 1 and result.decision == "identified" else ""
        table.add_row(
            str(rank),
            ShortName(candidate.name if candidate.name is not None else f"user {candidate.user_id}", style),
            f"{candidate.similarity:.4f}",
            str(candidate.template_id),
        )
    line = Text()
    if result.decision == "identified" and result.user is not None:
        line.append("IDENTIFIED", DECISION_STYLE["identified"])
        line.append(" as ")
        line.append(literal(result.user, "bold"))
    else:
        line.append(result.decision.upper(), DECISION_STYLE[result.decision])
    line.append(
        f"  (threshold {result.threshold:g}, margin {result.margin:g}"
        + (f", {result.frames_needed} frames" if result.frames_needed > 1 else "")
        + ")"
    )
    parts: list[RenderableType] = [
        frames_view(result.frames, result.probe, title="identify", verbose=verbose),
        Text(template_summary(result.probe, "probe template")),
    ]
    if result.candidates:
        parts.append(table)
    parts += [line, literal(result.reason), Text(f"attempt {result.attempt_id} recorded", "dim")]
    return Group(*parts)


def capture_view(result: "CaptureResult", verbose: bool = False) -> Group:
    return Group(
        frames_view(result.frames, result.template, title="capture", verbose=verbose),
        Text(template_summary(result.template)),
        literal(f"template written to {result.out} (model {result.model})"),
    )


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
            _num(t.outliers, "d"),
            _num(t.mean_quality, ".2f"),
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
                _num(a.similarity, ".4f"),
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
    if removal.erasure_pending:
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


def doctor_view(info: "DoctorInfo") -> Table:
    data = info.to_dict()
    table = Table(show_header=False, title="facer doctor", box=box.SIMPLE, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, version in data["versions"].items():
        table.add_row(name, literal(version))
    table.add_row("model pack", literal(f"{data['pack']} ({data['pack_folder']})"))
    table.add_row("fingerprint", literal(data["fingerprint"]))
    for task, file in data["files"].items():
        table.add_row(f"  {task}", literal(f"{file['path']}\n  sha256 {file['sha256']}"))
    table.add_row("modules", ", ".join(data["modules"]))
    for module, why in data["skipped_modules"].items():
        table.add_row(f"  not loaded: {module}", literal(why))
    table.add_row("pose from", data["pose_source"] or "– (require_pose off)")
    table.add_row("provider", f"{data['provider']} (available: {', '.join(data['available_providers'])})")
    table.add_row("detector size", f"{data['det_size']}×{data['det_size']}")
    table.add_row(
        "load",
        f"{data['load_seconds']:.2f} s (warm-up {data['warmup_seconds']:.2f} s, total {data['total_seconds']:.2f} s)",
    )
    gallery = data.get("gallery")
    if gallery and "templates" in gallery:
        table.add_row(
            "identify gallery",
            literal(
                f"{gallery['templates']} template(s) of this model; identify_threshold {gallery['identify_threshold']:g} "
                f"calibrated for {gallery['calibrated_for']}"
            ),
        )
        if gallery["warning"]:
            table.add_row("  warning", literal(gallery["warning"], "bold yellow"))
    elif gallery:
        table.add_row("identify gallery", literal(gallery["error"], "yellow"))
    return table


def demo_view(result: "DemoResult", verbose: bool = False) -> Group:
    parts: list[RenderableType] = [
        Text.assemble(
            ("1. enroll ", "bold"),
            literal(result.user),
            " from yaoming.jpg (one photo for the demo; a real enrollment takes 3 or more)",
        ),
        frames_table(result.enrolled.frames.frames, result.enrolled.template, verbose=verbose),
    ]
    for number, check in enumerate(result.checks, start=2):
        expected = (
            "Yao Ming cut from the team photo players.jpg: should match"
            if check.expected == "match"
            else "someone else: should not match"
        )
        parts.append(Text.assemble((f"{number}. verify ", "bold"), literal(check.photo), f" ({expected})"))
        parts.append(frames_table(check.result.frames.frames, check.result.probe, verbose=verbose))
        parts.append(comparison_text(check.result.comparison))
    verdict = "as expected" if result.ok else "NOT as expected: run `facer doctor`"
    parts.append(
        Text(
            f"\nfacer told them apart {verdict}. The demo's store was temporary and is gone.",
            "bold green" if result.ok else "bold red",
        )
    )
    parts.append(Text("Next, with your own photos:", "bold"))
    steps = Table.grid(padding=(0, 2))
    steps.add_column(no_wrap=True)
    steps.add_column(style="dim")
    for command, what in result.next_steps:
        steps.add_row("  " + command, what)
    parts.append(steps)
    return Group(*parts)


def config_view(loaded: "LoadedSettings", descriptions: dict[str, str]) -> Group:
    values = loaded.settings.as_dict()
    table = Table(
        title=literal(f"config file: {loaded.config_file or 'none found'}"),
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("setting", no_wrap=True)
    table.add_column("value", overflow="fold", max_width=28)
    table.add_column("from", overflow="fold", max_width=18)
    for name, value in values.items():
        shown = "(set)" if name == "api_key" and value is not None else repr(value)
        table.add_row(name, literal(shown), literal(loaded.origins[name]))
    return Group(
        table,
        literal(f"database: {loaded.settings.db_path}"),
        Text("what each setting means: facer.toml.example, or `facer config show --verbose`", "dim"),
    )


def config_meanings(descriptions: dict[str, str]) -> Table:
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("setting", no_wrap=True)
    table.add_column("meaning", overflow="fold")
    for name, text in descriptions.items():
        table.add_row(name, literal(text))
    return table


# -- evaluate ---------------------------------------------------------------------
SHOWN_FAILURES = 5


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def _rate_cell(rate: float | None, count: int, total: int) -> str:
    return "–" if rate is None else f"{_pct(rate)} ({count}/{total})"


def _ci_cell(ci: tuple[float, float] | None) -> str:
    return "–" if ci is None else f"{_pct(ci[0])} – {_pct(ci[1])}"


def _scores_cell(summary: Any) -> str:
    if summary.min is None:
        return "–"
    text = f"{summary.min:.3f} / {summary.mean:.3f} / {summary.max:.3f}"
    return text + (f" ({summary.no_score} without score)" if summary.no_score else "")


def _metric_rows(m: Any) -> list[tuple[str, str]]:
    current = m.current
    g, i = current.genuine, current.impostor
    rows = [
        ("pairs (genuine / impostor)", f"{m.pairs} ({m.genuine.count} / {m.impostor.count})"),
        ("accuracy", _rate_cell(current.accuracy, g.match + i.no_match - i.no_score, g.total + i.total)),
        ("FAR: impostor ≥ high", _rate_cell(current.far, i.match, i.total)),
        ("  FAR 95% interval", _ci_cell(current.far_ci)),
        ("FRR: genuine < low or no face", _rate_cell(current.frr, g.no_match, g.total)),
        ("  FRR 95% interval", _ci_cell(current.frr_ci)),
        ("uncertain: genuine", _rate_cell(current.genuine_uncertain, g.uncertain, g.total)),
        ("uncertain: impostor", _rate_cell(current.impostor_uncertain, i.uncertain, i.total)),
        ("pairs without a score (g / i)", f"{g.no_score} / {i.no_score}"),
        (
            "EER (threshold)",
            f"– ({m.eer.note})" if m.eer.rate is None else f"{_pct(m.eer.rate)} ({m.eer.threshold:.4f})",
        ),
    ]
    for point in m.tar_at_far:
        cell = f"{_pct(point.tar)} (≥ {point.threshold:.4f})" if point.supported else f"– ({point.note})"
        rows.append((f"TAR @ FAR {point.far:g}", cell))
    best = m.best
    rows.append(("best-accuracy threshold", "–" if best is None else f"{best.threshold:.4f} ({_pct(best.accuracy)})"))
    r = m.recommendation
    high = "–"
    if r.threshold_high is not None and r.far_at_high is not None and r.far_ci_at_high is not None:
        high = (
            f"{r.threshold_high:.4f} (FAR {_pct(r.far_at_high)}, ≤ {_pct(r.far_ci_at_high[1])} at 95%, "
            f"TAR {_pct(r.tar_at_high)})" + ("" if r.far_supported else " *")
        )
    rows.append((f"high for FAR ≤ {r.target_far:g}", high))
    low = "–"
    if r.threshold_low is not None and r.frr_at_low is not None and r.frr_ci_at_low is not None:
        low = f"{r.threshold_low:.4f} (FRR {_pct(r.frr_at_low)}, ≤ {_pct(r.frr_ci_at_low[1])} at 95%)" + (
            "" if r.frr_supported else " *"
        )
    rows.append((f"low for FRR ≤ {r.target_frr:g}", low))
    rows.append(("genuine scores min / mean / max", _scores_cell(m.genuine)))
    rows.append(("impostor scores min / mean / max", _scores_cell(m.impostor)))
    return rows


def evaluation_view(result: "Evaluation") -> list[RenderableType | str]:
    """Tables and lines to print, in order; plain strings are facer.toml lines (printed unwrapped)."""
    dataset = result.dataset
    genuine, impostor = dataset.pair_counts
    what = (
        f"{len(dataset.identities)} identities (folders)"
        if dataset.kind == "folders"
        else f"{genuine + impostor} pairs (CSV)"
    )
    parts: list[RenderableType | str] = [
        literal(f"{dataset.source}: {result.images} images, {what}, model {result.model}")
    ]
    if dataset.ignored:
        parts.append(Text(f"ignored {len(dataset.ignored)} file(s) outside identity folders", "yellow"))
    if result.unusable:
        unusable = Table(
            title=f"{len(result.unusable)} image(s) without a usable face: their pairs count as rejected",
            header_style="bold",
            title_style="yellow",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        unusable.add_column("image", overflow="fold")
        unusable.add_column("reason", overflow="fold")
        for item in result.unusable:
            unusable.add_row(literal(item.path), literal(item.reason))
        parts.append(unusable)
    figures = Table(
        title=f"at cosine_threshold_high {result.threshold_high:g} / cosine_threshold_low {result.threshold_low:g}",
        header_style="bold",
    )
    figures.add_column("figure")
    columns = [_metric_rows(p.metrics) for p in result.protocols]
    for p in result.protocols:
        figures.add_column(p.label, overflow="fold")
    for index, (name, _) in enumerate(columns[0]):
        figures.add_row(name, *[column[index][1] for column in columns])
    parts.append(figures)
    for p in result.protocols:
        if p.enroll is not None:
            e = p.enroll
            line = f"enroll: {e.templates} template(s) of {e.k} image(s) from {len(e.identities)} identities"
            if e.skipped:
                line += f"; {len(e.skipped)} with ≤ {e.k} images are probes only ({', '.join(e.skipped)})"
            parts.append(literal(line))
            for failure in e.failures[:SHOWN_FAILURES]:
                parts.append(literal(f"  template of {failure.identity} not built: {failure.reason}", "yellow"))
            if len(e.failures) > SHOWN_FAILURES:
                parts.append(
                    Text(
                        f"  and {len(e.failures) - SHOWN_FAILURES} more templates not built (--json lists them)",
                        "yellow",
                    )
                )
    source = result.recommended_from
    recommendation = source.metrics.recommendation
    for note in recommendation.notes:
        parts.append(literal(f"* {note}", "yellow"))
    toml = recommendation.toml()
    if toml:
        parts.append(
            Text(
                f"facer.toml, from the {source.label} protocol (FAR ≤ {result.target_far:g}, FRR ≤ {result.target_frr:g}"
                ", each within its 95% upper bound):",
                "bold",
            )
        )
        parts.extend(toml.splitlines())
    if not recommendation.high_line or not recommendation.low_line:
        missing = [
            name
            for name, shown in (
                ("cosine_threshold_high", recommendation.high_line),
                ("cosine_threshold_low", recommendation.low_line),
            )
            if not shown
        ]
        parts.append(
            Text(
                f"no {' or '.join(missing)} to paste: these pairs do not support the target (see * above)",
                "bold yellow",
            )
        )
    if result.identify is not None:
        parts.extend(identify_evaluation_view(result.identify))
    parts.append(
        Text(
            f"{result.images} images in {result.embed_seconds:.1f} s "
            f"({result.images_per_second:.1f} images/s, {result.workers} worker(s))",
            "dim",
        )
    )
    return parts


def identify_evaluation_view(outcome: Any) -> list[RenderableType | str]:
    """The identify protocol's table, notes and facer.toml lines."""
    mated, non_mated = outcome.mated, outcome.non_mated
    counts = outcome.counts(outcome.threshold, outcome.margin)
    m, n = counts["mated"], counts["non_mated"]
    table = Table(
        title=f"identify (1:N) at identify_threshold {outcome.threshold:g} / identify_margin {outcome.margin:g}",
        header_style="bold",
    )
    table.add_column("figure")
    table.add_column("value", overflow="fold")
    rows = [
        ("gallery", f"{outcome.templates} template(s) of k={outcome.k} image(s), {len(outcome.enrolled)} identities"),
        (
            "searches (mated / non-mated)",
            f"{len(mated)} / {len(non_mated)} ({len(outcome.kept_out)} identities kept out)",
        ),
        ("rank-1 identification rate", _rate_cell(outcome.rank1, sum(s.best == s.mate for s in mated), len(mated))),
        (
            "FPIR: stranger named",
            _rate_cell(outcome.fpir(outcome.threshold), n["identified"] + n["ambiguous"], len(non_mated)),
        ),
        (
            "FNIR: mate missed at rank 1",
            _rate_cell(
                outcome.fnir(outcome.threshold),
                len(mated) - sum(s.best == s.mate and s.best_score >= outcome.threshold for s in mated),
                len(mated),
            ),
        ),
        (
            "ambiguous (all searches)",
            _rate_cell(
                outcome.ambiguous_rate(outcome.threshold, outcome.margin),
                m["ambiguous"] + n["ambiguous"],
                len(mated) + len(non_mated),
            ),
        ),
        (
            "mated: right / wrong / unknown / ambiguous",
            f"{m['identified_right']} / {m['identified_wrong']} / {m['unknown']} / {m['ambiguous']}",
        ),
        ("non-mated: named / unknown / ambiguous", f"{n['identified']} / {n['unknown']} / {n['ambiguous']}"),
    ]
    for point in outcome.fnir_at_fpir:
        rows.append(
            (
                f"FNIR @ FPIR {point.fpir:g}",
                f"{_pct(point.fnir)} (≥ {point.threshold:.4f})"
                if point.supported
                else f"– ({point.to_dict()['note']})",
            )
        )
    for name, value in rows:
        table.add_row(name, value)
    parts: list[RenderableType | str] = [table]
    for failure in outcome.failures:
        parts.append(literal(f"  template of {failure} not built: its images are non-mated searches", "yellow"))
    for note in outcome.notes:
        parts.append(literal(f"* {note}", "yellow"))
    toml = outcome.toml()
    if toml:
        parts.append(Text(f"facer.toml, from the identify protocol (FPIR ≤ {outcome.target_fpir:g}):", "bold"))
        parts.extend(toml.splitlines())
    return parts


def print_all(console: Console, parts: Iterable[RenderableType | str]) -> None:
    for part in parts:
        if isinstance(part, str):  # facer.toml lines: never wrapped, so they paste as they are
            console.print(part, soft_wrap=True, markup=False, highlight=False)
        else:
            console.print(part)


# -- evaluate --liveness ----------------------------------------------------------
def _pad_cell(rate: "Rate") -> str:
    """ "3.57 % (1/28) [0.09-18.35 %]": the rate, the counts and the 95 % Clopper-Pearson interval."""
    if rate.rate is None:
        return "–"
    return f"{rate.rate:.2%} ({rate.errors}/{rate.total}) [{rate.low:.2%}–{rate.high:.2%}]"


def liveness_evaluation_view(result: "LivenessEvaluation") -> list[RenderableType | str]:
    """Per-video outcomes, APCER per attack kind and BPCER with their intervals, and the trade-off."""
    live, attacks = len(result.live), len(result.videos) - len(result.live)
    parts: list[RenderableType | str] = [
        literal(
            f"{result.folder}: {live} live and {attacks} attack video(s), frames every {result.frame_interval_ms:g} ms, "
            f"parallax threshold {result.threshold:g} IOD (liveness_parallax_min)"
        )
    ]
    videos = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("video", "kind", "challenge", "parallax", "verdict"):
        videos.add_column(column, overflow="fold" if column in ("video", "verdict") else "ellipsis")
    for v in result.videos:
        expected = v.live == (v.kind == "live")
        verdict = literal(("live" if v.live else f"not live: {v.reason}"), "green" if expected else "bold red")
        videos.add_row(ShortName(v.path), literal(v.kind), " ".join(v.challenge), _num(v.parallax, ".3f"), verdict)
    parts.append(videos)
    current = result.current
    figures = Table(title="ISO/IEC 30107-3, with 95 % Clopper–Pearson intervals", header_style="bold")
    figures.add_column("figure")
    figures.add_column("rate (errors/videos) [95 % CI]")
    figures.add_row("BPCER: live refused", _pad_cell(current.bpcer))
    for kind, rate in current.apcer.items():
        figures.add_row(f"APCER {kind}: attacks accepted", _pad_cell(rate))
    if len(current.apcer) > 1:
        worst = current.apcer_max
        figures.add_row("APCER, worst kind", "–" if worst is None else f"{worst:.2%}")
    parts.append(figures)
    sweep = Table(title="trade-off over the parallax threshold", header_style="bold", box=box.SIMPLE_HEAD)
    sweep.add_column("threshold", justify="right")
    sweep.add_column("BPCER", justify="right")
    kinds = list(current.apcer)
    for kind in kinds:
        sweep.add_column(f"APCER {kind}", justify="right")
    for point in result.tradeoff:
        mark = " ←" if point.threshold == result.threshold else ""
        sweep.add_row(
            f"{point.threshold:.3f}{mark}",
            _rate_cell(point.bpcer.rate, point.bpcer.errors, point.bpcer.total),
            *[_rate_cell(point.apcer[k].rate, point.apcer[k].errors, point.apcer[k].total) for k in kinds],
        )
    parts.append(sweep)
    parts.append(
        Text(
            "A video is accepted at a threshold when it made every move in time as one face and its parallax "
            "statistic reaches it; with few videos the intervals, not the rates, say what is known.",
            "dim",
        )
    )
    return parts
