"""`facer enroll`, `facer verify` and `facer capture`: parse, call `Facer`, render."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable, Optional

import typer

from facer_cli.cli.app import console, err_console, settings_for
from facer_cli.cli.bulk_cmd import BatchOption, DryRunOption, ManifestOption, ReportOption, batch_command
from facer_cli.cli.compare_cmd import BAND_EXIT
from facer_cli.cli.errors import UNCERTAIN_NEXT
from facer_cli.cli.options import (
    AddOption,
    AllowDifferentFaceOption,
    AllowLookalikeOption,
    AllowPathNameOption,
    CameraOption,
    DbOption,
    DetSizeOption,
    DetThresholdOption,
    ForceOption,
    JsonOption,
    LivenessOption,
    MaxFramesOption,
    MinFramesOption,
    ModelOption,
    PitchOption,
    QualityOption,
    ReplaceOption,
    SourcesArgument,
    VerboseOption,
    YawOption,
    enroll_mode,
)
from facer_cli.cli.output.frames import frames_view
from facer_cli.cli.output.text import literal, print_json
from facer_cli.cli.output.views import capture_view, enroll_view, verify_view
from facer_cli.errors import LivenessError, TooFewFramesError

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

    from facer_cli.liveness import LivenessProgress
    from facer_cli.service import Facer, Frames
    from facer_cli.service.capture import CaptureProgress
    from facer_cli.settings import Settings


def camera_source(camera: bool, sources: list[str] | None) -> str | None:
    """With --camera: the SRC after it (or None: camera_index). Without: None, and images are required."""
    sources = sources or []
    if camera:
        if len(sources) > 1:
            raise typer.BadParameter(
                f"--camera takes one source (camera index, video file or URL), got {len(sources)}: {' '.join(sources)}"
            )
        return sources[0] if sources else None
    if not sources:
        raise typer.BadParameter("give images or folders, or --camera [SRC]")
    return None


def liveness_wanted(settings: "Settings", camera: bool, flag: bool | None) -> bool:
    """--liveness/--no-liveness, else the liveness setting; a usage error (exit 2) with images."""
    from facer_cli.service.liveness_policy import wanted

    if not camera and flag:
        raise typer.BadParameter("--liveness needs --camera: a still image cannot answer a head-turn challenge")
    if not camera and flag is None and settings.liveness == "required":
        raise typer.BadParameter(
            'the liveness setting is "required": capture with --camera, or pass --no-liveness for this run'
        )
    return wanted(settings, camera, flag)


def liveness_overrides(flag: bool | None) -> dict[str, str]:
    """--no-liveness turns the liveness setting off for this run (so a "required" setting too, as its
    error says); the service then asks for no challenge."""
    return {"liveness": "off"} if flag is False else {}


HEADLINES = {
    "straight": "Look STRAIGHT at the camera",
    "left": "Turn your head to your LEFT",
    "right": "Turn your head to your RIGHT",
    "blink": "BLINK",
}


def instruction_view(
    live: "LivenessProgress", move: str | None, yaw: float | None, residual: float | None
) -> "RenderableType":
    """The current instruction, big and clear: the move, the step, progress toward it and the time left."""
    from rich.panel import Panel
    from rich.text import Text

    if live.done:
        headline = Text(
            "LIVE" if live.live else "NOT LIVE", style="bold white on green" if live.live else "bold white on red"
        )
    else:
        headline = Text(f"  {HEADLINES.get(move or '', live.instruction).upper()}  ", style="bold black on yellow")
    width = 24
    filled = round(width * max(0.0, min(1.0, live.progress)))
    body = Text.assemble(
        headline,
        "\n\n",
        (f"step {live.step} of {live.steps}  ", "bold"),
        ("█" * filled, "green"),
        ("░" * (width - filled), "dim"),
        f" {live.progress:4.0%}   ",
        (f"{live.remaining_s:.1f} s left", "bold red" if live.remaining_s < 1.5 else "bold"),
        "\n",
        (
            f"yaw {'–' if yaw is None else format(yaw, '+.0f') + '°'}   "
            f"parallax {'–' if residual is None else format(residual, '.3f')}",
            "dim",
        ),
    )
    return Panel(body, title="liveness", expand=False)


def progress_view(progress: "CaptureProgress") -> "RenderableType":
    from rich.console import Group

    if progress.liveness is not None:
        live = progress.liveness
        cue = progress.cue
        return Group(
            instruction_view(live, live.move, cue.yaw if cue else None, cue.residual if cue else None),
            _capture_table(progress),
        )
    return _capture_table(progress)


def _capture_table(progress: "CaptureProgress") -> "Table":
    from rich.table import Table

    stats = progress.stats
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("source", literal(progress.source))
    table.add_row("frames read", f"{stats.read} ({stats.warmup} warm-up dropped, {stats.spaced} skipped for spacing)")
    table.add_row("analysed", str(progress.analysed))
    table.add_row(
        "accepted",
        f"{progress.accepted}" if progress.liveness is not None else f"{progress.accepted} of {progress.max_frames}",
    )
    if progress.last is not None:
        decision = (
            literal("accepted", "green")
            if progress.last.accepted
            else literal(f"rejected: {progress.last_reason}", "red")
        )
        table.add_row("last frame", literal(f"{progress.last.source} — ") + decision)
    table.add_row("elapsed", f"{progress.elapsed_s:.1f} s")
    return table


def read_frames(
    facer: "Facer", camera: bool, sources: list[str] | None, show_live: bool, liveness: bool = False
) -> "Frames":
    """The images (a folder gives its first max_images), or the camera's frames with a live display
    (with `liveness`, the challenge's instructions)."""
    from rich.live import Live

    source = camera_source(camera, sources)
    if not camera:
        note_left_out(sources or [], facer.settings.max_images)
        return facer.frames_from_paths([Path(s) for s in sources or []], per_folder=facer.settings.max_images)
    live = (
        Live(console=err_console, refresh_per_second=8, transient=True)
        if show_live and err_console.is_terminal
        else None
    )
    update: Callable[[CaptureProgress], None] | None = None
    if live is not None:

        def update(progress: "CaptureProgress") -> None:
            live.update(progress_view(progress))

    with live or nullcontext():
        return facer.frames_from_camera(source, on_progress=update, liveness=liveness)


def note_left_out(sources: list[str], per_folder: int) -> None:
    """A folder holding more images than a template takes from one: say which were left out, and how to take more."""
    from facer_cli.sources.image_paths import left_out

    for folder, count, images in left_out(sources, per_folder):
        names = ", ".join(image.name for image in images[:5]) + (" …" if len(images) > 5 else "")
        err_console.print("[bold yellow]note:[/] ", end="")
        err_console.print(
            f"{folder} holds {count} images; the first {per_folder} are used and {len(images)} left out ({names}): "
            f"the max_images setting caps each folder (max_images = {count} in facer.toml, or FACER_MAX_IMAGES={count})",
            markup=False,
            soft_wrap=True,
        )


class FrameReader:
    """The frame source handed to the service, which calls it once its store checks have passed (so
    the camera opens only when the command can succeed); keeps what it read for `explain_failure`."""

    def __init__(self, facer: "Facer", camera: bool, sources: list[str] | None, show_live: bool, liveness: bool):
        self.args = (facer, camera, sources, show_live, liveness)
        self.frames: "Frames | None" = None

    def __call__(self) -> "Frames":
        self.frames = read_frames(*self.args)
        return self.frames


def explain_failure(frames: "Frames | None", json_output: bool, verbose: bool) -> None:
    """Too few usable frames: the per-frame table says why (the error line follows on stderr)."""
    if not json_output and frames is not None and frames.frames:
        console.print(frames_view(frames, verbose=verbose))


def explain_not_live(error: LivenessError, json_output: bool, verbose: bool) -> None:
    """Not live: every frame with its step and cues, and the verdict (the error line follows on stderr);
    with --json, the frames and the liveness result on stdout (the shape of a result's frames)."""
    from facer_cli.service import Frames

    frames = error.frames
    if not isinstance(frames, Frames):
        return
    if json_output:
        print_json(frames.to_dict())
    else:
        console.print(frames_view(frames, verbose=verbose))


def enroll_command(
    ctx: typer.Context,
    user: Annotated[
        Optional[str], typer.Argument(help="The person's name (not with --batch).", show_default=False)
    ] = None,
    sources: SourcesArgument = None,
    camera: CameraOption = False,
    replace: ReplaceOption = False,
    add: AddOption = False,
    allow_lookalike: AllowLookalikeOption = False,
    allow_different_face: AllowDifferentFaceOption = False,
    allow_path_name: AllowPathNameOption = False,
    batch: BatchOption = None,
    manifest: ManifestOption = None,
    dry_run: DryRunOption = False,
    report: ReportOption = None,
    db: DbOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
    max_frames: MaxFramesOption = None,
    min_valid_frames: MinFramesOption = None,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
    detection_threshold: DetThresholdOption = None,
    pose_yaw_limit: YawOption = None,
    pose_pitch_limit: PitchOption = None,
    min_quality_score: QualityOption = None,
    liveness_flag: LivenessOption = None,
) -> None:
    """Enroll a person from images, folders or a camera; or everyone of a folder or CSV (--batch).

    Exit 0 enrolled (or skipped), 4 too few usable frames, 7 exists or a look-alike, 13 not live,
    17 some people of a batch refused. Exit codes and options: docs/exit-codes.md, docs/commands.md.
    In Python: Facer(settings).enroll(user, paths), .enroll_batch(folder).
    """
    from facer_cli.service import Facer

    if batch is not None or manifest is not None:
        if batch is not None and manifest is not None:
            raise typer.BadParameter("give --batch DIR or --manifest FILE.csv, not both")
        if user is not None or sources or camera or add:
            raise typer.BadParameter("--batch and --manifest take no name, images, --camera or --add")
        facer = Facer(settings_for(ctx))
        code = batch_command(
            facer,
            batch if batch is not None else manifest,  # type: ignore[arg-type]
            replace=replace,
            dry_run=dry_run,
            allow_lookalike=allow_lookalike,
            json_output=json_output,
            report=report,
            verbose=verbose,
        )
        raise typer.Exit(code)
    if user is None:
        raise typer.BadParameter("give the person's name, or --batch DIR / --manifest FILE.csv")
    if dry_run or report is not None:
        raise typer.BadParameter("--dry-run and --report go with --batch or --manifest")
    mode = enroll_mode(replace, add)
    camera_source(camera, sources)  # usage errors before anything loads
    facer = Facer(settings_for(ctx, **liveness_overrides(liveness_flag)))
    liveness = liveness_wanted(facer.settings, camera, liveness_flag)
    reader = FrameReader(facer, camera, sources, not json_output, liveness)
    with facer.open_store("create") as store:
        try:
            result = facer.enroll(
                user,
                reader,
                mode=mode,
                allow_lookalike=allow_lookalike,
                allow_different_face=allow_different_face,
                store=store,
            )
        except TooFewFramesError:
            explain_failure(reader.frames, json_output, verbose)
            raise
        except LivenessError as error:
            explain_not_live(error, json_output, verbose)
            raise
        path = store.location
    if json_output:
        print_json(result.to_dict())
    else:
        console.print(enroll_view(result, path, verbose))


def verify_command(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The enrolled person to check against.", show_default=False)],
    sources: SourcesArgument = None,
    camera: CameraOption = False,
    db: DbOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
    max_frames: MaxFramesOption = None,
    min_valid_frames: MinFramesOption = None,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
    detection_threshold: DetThresholdOption = None,
    pose_yaw_limit: YawOption = None,
    pose_pitch_limit: PitchOption = None,
    min_quality_score: QualityOption = None,
    liveness_flag: LivenessOption = None,
) -> None:
    """Is this the enrolled person? The attempt is recorded in the store's audit log.

    Exit 0 match, 1 no match, 3 uncertain, 4 no usable probe, 5 unknown user, 6 store error,
    9 enrolled with another model, 13 not live (--liveness), 14 locked out after repeated liveness
    failures. In Python: Facer(settings).verify(user, paths).
    """
    from facer_cli.service import Facer

    camera_source(camera, sources)
    facer = Facer(settings_for(ctx, **liveness_overrides(liveness_flag)))
    liveness = liveness_wanted(facer.settings, camera, liveness_flag)
    reader = FrameReader(facer, camera, sources, not json_output, liveness)
    with facer.open_store("write") as store:
        try:
            result = facer.verify(user, reader, store=store)
        except TooFewFramesError:
            explain_failure(reader.frames, json_output, verbose)
            raise
        except LivenessError as error:
            explain_not_live(error, json_output, verbose)
            raise
    if json_output:
        print_json(result.to_dict())
    else:
        console.print(verify_view(result, verbose))
        if result.band.value == "uncertain":
            console.print(literal(UNCERTAIN_NEXT))
    raise typer.Exit(BAND_EXIT[result.band.value])


def capture_command(
    ctx: typer.Context,
    sources: SourcesArgument = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Write the template here as a 1-D float32 .npy (norm 1); .npy is added when missing.",
            show_default=False,
        ),
    ] = ...,  # type: ignore[assignment]
    force: ForceOption = False,
    camera: CameraOption = False,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
    max_frames: MaxFramesOption = None,
    min_valid_frames: MinFramesOption = None,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
    detection_threshold: DetThresholdOption = None,
    pose_yaw_limit: YawOption = None,
    pose_pitch_limit: PitchOption = None,
    min_quality_score: QualityOption = None,
    liveness_flag: LivenessOption = None,
) -> None:
    """Make a template from a camera, a video or images and save it as .npy (no store involved).

    The template rule of verify: min_valid_frames usable frames, or all of fewer named images.
    Exit 0 written, 4 too few usable frames, 10 the file cannot be written, 13 not live (--liveness).
    In Python: Facer(settings).capture(paths, out=...); over HTTP: POST /token/generate.
    """
    from facer_cli.files.writing import with_suffix
    from facer_cli.service import Facer

    camera_source(camera, sources)
    target = with_suffix(out, ".npy")
    if target.exists() and not force:  # before the camera runs; written atomically after
        from facer_cli.errors import OutputExistsError

        raise OutputExistsError(f"{target} exists; refusing to overwrite it")
    facer = Facer(settings_for(ctx, **liveness_overrides(liveness_flag)))
    liveness = liveness_wanted(facer.settings, camera, liveness_flag)
    frames = read_frames(facer, camera, sources, show_live=not json_output, liveness=liveness)
    try:
        result = facer.capture(frames, out=target, overwrite=force)
    except TooFewFramesError:
        explain_failure(frames, json_output, verbose)
        raise
    except LivenessError as error:
        explain_not_live(error, json_output, verbose)
        raise
    if json_output:
        print_json(result.to_dict())
    else:
        console.print(capture_view(result, verbose))
