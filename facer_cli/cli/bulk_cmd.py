"""`facer enroll --batch DIR | --manifest FILE.csv`, `facer identify --each` and `facer identify --all-faces`:
many people, many probes, every face of a photo. Parse, call `Facer`, render."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from facer_cli.cli.app import console, err_console
from facer_cli.cli.errors import EXIT_AMBIGUOUS, EXIT_BATCH_INCOMPLETE, EXIT_IDENTIFIED, EXIT_UNKNOWN_PERSON
from facer_cli.cli.output.text import literal, message_line, print_json

if TYPE_CHECKING:
    from facer_cli.service import Facer
    from facer_cli.service.bulk import EachAnswer

EXIT_NO_PROBE = 4

BatchOption = Annotated[Optional[Path], typer.Option("--batch", help="Everyone of DIR/<name>/.", show_default=False)]
ManifestOption = Annotated[Optional[Path], typer.Option("--manifest", help="Everyone of a CSV.", show_default=False)]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Check; store nothing.")]
ReportOption = Annotated[Optional[Path], typer.Option("--report", help="CSV: one row a person.", show_default=False)]
EachOption = Annotated[bool, typer.Option("--each", help="One answer per image file.")]
AllFacesOption = Annotated[bool, typer.Option("--all-faces", help="Every face of one photo.")]
CsvOption = Annotated[bool, typer.Option("--csv", help="With --each: print CSV.")]


def _progress(show: bool, label: str, total: int | None) -> "tuple[object, object]":
    """A Rich progress bar on stderr with counts and an ETA on a terminal; nothing animated otherwise."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not (show and err_console.is_terminal),
    )
    task = progress.add_task(label, total=total)
    return progress, task


def batch_command(
    facer: "Facer",
    source: Path,
    *,
    replace: bool,
    dry_run: bool,
    allow_lookalike: bool,
    json_output: bool,
    report: Path | None,
    verbose: bool,
) -> int:
    """Run the batch; print the table (or JSON); write the report; the exit code."""
    import time

    from rich.progress import Progress

    from facer_cli.service.bulk import BatchResult, people_from_folder, people_from_manifest

    people = people_from_folder(source) if source.is_dir() else people_from_manifest(source)
    _ = facer.engine  # one model load, before the bar starts
    started = time.perf_counter()
    outcomes = []
    progress, task = _progress(not json_output, "enrolling", None)
    assert isinstance(progress, Progress)
    try:
        with progress:
            steps = facer.enroll_batch(people, replace=replace, dry_run=dry_run, allow_lookalike=allow_lookalike)
            for step in steps:
                progress.update(task, total=step.photos_total, completed=step.photos_done)  # type: ignore[arg-type]
                if step.outcome is not None:
                    outcomes.append(step.outcome)
                    if not json_output and not err_console.is_terminal and verbose:
                        err_console.print(literal(f"{step.outcome.name}: {step.outcome.status}"))
    except KeyboardInterrupt:
        # What was decided before Ctrl-C, so a stopped run is not a blank: then the usual line and 130.
        partial = BatchResult(outcomes, dry_run, facer.model, time.perf_counter() - started)
        say_interrupted(partial, len(people), report, json_output)
        raise
    result = BatchResult(outcomes, dry_run, facer.model, time.perf_counter() - started)
    if report is not None:
        write_report(report, result)
    if json_output:
        print_json(result.to_dict())
    else:
        from facer_cli.cli.output.bulk import batch_view

        console.print(batch_view(result, verbose))
        if report is not None:
            console.print(literal(f"report written to {report}"))
    return 0 if result.complete else EXIT_BATCH_INCOMPLETE


def say_interrupted(partial: object, people: int, report: Path | None, json_output: bool) -> None:
    """After Ctrl-C: the people decided so far (the report and JSON of them too), and how to go on."""
    from facer_cli.service.bulk import STATUSES, BatchResult

    assert isinstance(partial, BatchResult)
    if report is not None:
        write_report(report, partial)
    if json_output:
        print_json({**partial.to_dict(), "interrupted": True, "people_total": people})
    counts = ", ".join(f"{partial.count(status)} {status}" for status in STATUSES if partial.count(status))
    going_on = (
        "nothing was stored (dry run)"
        if partial.dry_run
        else "each person enrolled is stored whole; run the same command again to go on (those enrolled are skipped)"
    )
    written = f"; the report of those is in {report}" if report is not None else ""
    decided = f"{len(partial.outcomes)} of {people} people decided" + (f" ({counts})" if counts else "")
    message_line(err_console, "stopped:", f"{decided}; {going_on}{written}")


def write_report(path: Path, result: object) -> None:
    """The CSV report for the people behind the export: one row per person, written atomically."""
    from facer_cli.files.writing import write_private
    from facer_cli.service.bulk import REPORT_COLUMNS, BatchResult, report_rows

    assert isinstance(result, BatchResult)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(REPORT_COLUMNS)
    writer.writerows(report_rows(result))
    write_private(path, buffer.getvalue().encode("utf-8"), overwrite=True)


def each_exit(answers: "list[EachAnswer]") -> int:
    """0 every file identified; else 4 when a file gave no usable face, 16 when one was ambiguous, 15 unknown."""
    decisions = {a.decision for a in answers}
    if "no_probe" in decisions:
        return EXIT_NO_PROBE
    if "ambiguous" in decisions:
        return EXIT_AMBIGUOUS
    if "unknown" in decisions:
        return EXIT_UNKNOWN_PERSON
    return EXIT_IDENTIFIED


def each_command(facer: "Facer", sources: list[str], *, json_output: bool, csv_output: bool, verbose: bool) -> int:
    from rich.progress import Progress

    from facer_cli.sources.image_paths import image_paths

    total = len(image_paths(sources, None))
    _ = facer.engine
    answers = []
    progress, task = _progress(not (json_output or csv_output), "identifying", total)
    assert isinstance(progress, Progress)
    with progress:
        for answer in facer.identify_each(sources):
            answers.append(answer)
            progress.advance(task)  # type: ignore[arg-type]
    if json_output:
        print_json([a.to_dict() for a in answers])
    elif csv_output:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["file", "decision", "user", "similarity", "margin", "reason"])
        for a in answers:
            d = a.to_dict()
            writer.writerow([d["file"], d["decision"], d["user"] or "", d["similarity"], d["margin"], d["reason"]])
        print(buffer.getvalue(), end="")
    else:
        from facer_cli.cli.output.bulk import each_view

        console.print(each_view(answers, verbose))
    return each_exit(answers)


def faces_command(facer: "Facer", sources: list[str], *, json_output: bool, verbose: bool) -> int:
    """0 when a face is identified, 16 when none is and one is ambiguous, 15 when all are unknown, 4 when no
    face passes the gates."""
    from facer_cli.errors import UsageError

    if len(sources) != 1:
        raise UsageError(f"all faces: give one photo, not {len(sources)}")
    result = facer.identify_faces(sources[0])
    if json_output:
        print_json(result.to_dict())
    else:
        from facer_cli.cli.output.bulk import faces_view

        console.print(faces_view(result, verbose))
    decisions = {f.decision for f in result.faces}
    if "identified" in decisions:
        return EXIT_IDENTIFIED
    if "ambiguous" in decisions:
        return EXIT_AMBIGUOUS
    if "unknown" in decisions:
        return EXIT_UNKNOWN_PERSON
    return EXIT_NO_PROBE
