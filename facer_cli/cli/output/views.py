"""One view per command result: inspect, compare, enroll, verify, identify, capture, doctor, demo
and config (the users commands' views are in `users`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from facer_cli.cli.output.frames import comparison_text, frames_summary, frames_table, frames_view, template_summary
from facer_cli.cli.output.text import DECISION, FIXED, KEY, WRAP, Column, FieldList, FitTable, literal
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
    # Narrower than the table, the template column goes, then the rank; user and similarity stay.
    table = FitTable(
        [
            Column("#", FIXED, drop=2, justify="right"),
            Column("user", KEY),
            Column("similarity", FIXED, justify="right"),
            Column("template", FIXED, drop=1, justify="right"),
        ],
        title=f"top {len(result.candidates)} of {result.gallery_size} template(s)",
    )
    for rank, candidate in enumerate(result.candidates, start=1):
        style = "green" if rank == 1 and result.decision == "identified" else ""
        table.add_row(
            str(rank),
            literal(candidate.name if candidate.name is not None else f"user {candidate.user_id}", style),
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


def doctor_view(info: "DoctorInfo") -> FieldList:
    """What facer runs on, one line per fact: the name whole, the value beside it wrapped at spaces;
    a path or sha256 too wide to stand beside the names goes whole on the line below (each model
    file is named inside the pack's folder)."""
    data = info.to_dict()
    table = FieldList(title="facer doctor")
    for name, version in data["versions"].items():
        table.add_row(name, literal(version))
    folder = data["pack_folder"]
    table.add_row("model pack", literal(data["pack"]))
    if folder:
        table.add_row("  folder", literal(folder))
    table.add_row("fingerprint", literal(data["fingerprint"]))
    licence = data.get("model_licence", "")
    warn = licence.startswith(("non-commercial", "unknown"))
    table.add_row("licence", literal(licence, "bold yellow" if warn else ""))
    for task, file in data["files"].items():
        path = str(file["path"])
        inside = folder and path.startswith(str(folder).rstrip("/") + "/")
        shown = path[len(str(folder).rstrip("/")) + 1 :] if inside else path
        table.add_row(f"  {task}", Text.assemble(literal(shown), "\n", literal(f"sha256 {file['sha256']}")))
    table.add_row("modules", ", ".join(data["modules"]))
    for module, why in data["skipped_modules"].items():
        table.add_row("  not loaded", literal(f"{module}: {why}"))
    table.add_row("pose from", data["pose_source"] or "– (require_pose off)")
    table.add_row("provider", f"{data['provider']} (available: {', '.join(data['available_providers'])})")
    if data.get("provider_note"):
        table.add_row("  warning", literal(data["provider_note"], "bold yellow"))
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
        if "encryption" in gallery:
            table.add_row("encryption", literal(encryption_line(gallery["encryption"])))
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
    # No column is dropped: the setting and where it came from stay whole, the value wraps at spaces
    # (a word of it wider than what is left of the line is shortened with "…").
    table = FitTable(
        [Column("setting", KEY), Column("value", WRAP), Column("from", DECISION)], title=literal(config_file)
    )
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


def config_meanings(descriptions: dict[str, str]) -> FitTable:
    table = FitTable([Column("setting", KEY), Column("meaning", WRAP)])
    for name, text in descriptions.items():
        table.add_row(name, literal(text))
    return table


def encryption_line(info: dict[str, Any]) -> str:
    """Encryption at rest in one line: on with the key's fingerprint, or off; and what is sealed."""
    if info.get("error"):
        return str(info["error"])
    said = f"on (key {info['key_fingerprint']})" if info.get("enabled") else "off (no key)"
    if "templates_encrypted" in info:
        said += f"; templates: {info['templates_encrypted']} encrypted, {info['templates_plain']} in the clear"
    others = [fp for fp in info.get("store_keys", []) if fp != info.get("key_fingerprint")]
    if others:
        said += f"; the store's key is {', '.join(others)}: its templates cannot be read"
    return said
