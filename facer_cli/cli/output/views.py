"""One view per command result: inspect, compare, enroll, verify, identify, capture, doctor, demo
and config (the users commands' views are in `users`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from facer_cli.cli.output.frames import comparison_text, frames_summary, frames_table, frames_view, template_summary
from facer_cli.cli.output.text import ShortName, literal
from facer_cli.cli.output.users import lookalike_lines
from facer_cli.store.urls import describe_db

if TYPE_CHECKING:
    from facer_cli.service import (
        CaptureResult,
        CompareResult,
        DemoResult,
        DoctorInfo,
        EnrollResult,
        IdentifyResult,
        InspectResult,
        VerifyResult,
    )
    from facer_cli.settings import LoadedSettings


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


def doctor_view(info: "DoctorInfo") -> Table:
    data = info.to_dict()
    table = Table(show_header=False, title="facer doctor", box=box.SIMPLE, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, version in data["versions"].items():
        table.add_row(name, literal(version))
    table.add_row("model pack", literal(f"{data['pack']} ({data['pack_folder']})"))
    table.add_row("fingerprint", literal(data["fingerprint"]))
    licence = data.get("model_licence", "")
    warn = licence.startswith(("non-commercial", "unknown"))
    table.add_row("licence", literal(licence, "bold yellow" if warn else ""))
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
    if gallery and "backend" in gallery:
        store = gallery["backend"] if "db" not in gallery else f"{gallery['backend']}: {gallery['db']}"
        if "server_version" in gallery:
            store += f" (server {gallery['server_version']}, schema version {gallery['schema_version']})"
        table.add_row("store", literal(store))
    if gallery and "templates" not in gallery:
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
        steps.add_row(literal("  " + command), literal(what))  # literal: `pip install 'facer[server]'`
    parts.append(steps)
    return Group(*parts)


def config_view(loaded: "LoadedSettings", shown: "dict[str, str]", changed_only: bool = False) -> Group:
    """`shown`: each setting to show, its value as facer.toml spells it."""
    config_file = f"config file: {loaded.config_file or 'none found'}"
    table = Table(title=literal(config_file), header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("setting", no_wrap=True)
    table.add_column("value", overflow="fold", max_width=48)
    table.add_column("from", overflow="fold", max_width=18)
    for name, value in shown.items():
        table.add_row(name, literal(value), literal(loaded.origins[name]))
    parts: list[RenderableType] = [table] if shown else []
    if changed_only:
        parts.append(
            Text(
                f"{len(shown)} setting(s) differ from the built-in defaults"
                if shown
                else "every setting has its built-in default"
            )
        )
    parts += [
        literal(config_file),  # again below the table, which scrolls its title away
        literal(f"database: {describe_db(loaded.settings.db, loaded.settings.db_path)}"),
        Text("what each setting means: facer.toml.example, or `facer config show --verbose`", "dim"),
    ]
    return Group(*parts)


def config_meanings(descriptions: dict[str, str]) -> Table:
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("setting", no_wrap=True)
    table.add_column("meaning", overflow="fold")
    for name, text in descriptions.items():
        table.add_row(name, literal(text))
    return table
