"""`facer enroll`, `facer verify` and `facer capture`: thin skins over `facer_cli.enrollment`."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Callable, List, Optional

import typer
from rich.live import Live
from rich.table import Table

from facer_cli.cli.app import (
    DetSizeOption, DetThresholdOption, JsonOption, ModelOption, PitchOption, QualityOption, YawOption,
    app, console, err_console, print_json, settings_for,
)
from facer_cli.cli.compare_cmd import BAND_EXIT
from facer_cli.cli.render import comparison_text, frames_table, template_summary
from facer_cli.api import get_engine
from facer_cli.camera import CaptureProgress
from facer_cli.compare import Comparison, save_vector
from facer_cli.engine import FaceEngine
from facer_cli.enrollment import (
    Frames, capture, check_enrollable, enroll, frames_from_camera,
    frames_from_images, prepare_verify, verify,
)
from facer_cli.errors import InputError, TooFewFramesError
from facer_cli.settings import Settings
from facer_cli.store import Store

# Options of the commands that use the store or a camera.
DbOption = Annotated[
    Optional[Path],
    typer.Option("--db", help="SQLite database (default: FACER_DB, else facer.db in the per-user data folder).", dir_okay=False),
]
CameraOption = Annotated[
    bool,
    typer.Option(
        "--camera",
        help="Capture from a camera instead of images. The one argument after it, if any, is the source: "
        "a camera index (default: camera_index), a video file or a stream URL.",
    ),
]
SourcesArgument = Annotated[
    Optional[List[str]],
    typer.Argument(help="Images and folders; with --camera, the camera index, video file or stream URL.", show_default=False),
]
MaxFramesOption = Annotated[Optional[int], typer.Option("--max-frames", help="Accepted camera frames to collect.", rich_help_panel="Settings")]
MinFramesOption = Annotated[Optional[int], typer.Option("--min-valid-frames", help="Fewest usable frames that make a template.", rich_help_panel="Settings")]


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


def progress_view(progress: CaptureProgress) -> Table:
    stats = progress.stats
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("source", progress.source)
    table.add_row("frames read", f"{stats.read} ({stats.warmup} warm-up dropped, {stats.spaced} skipped for spacing)")
    table.add_row("analysed", str(progress.analysed))
    table.add_row("accepted", f"{progress.accepted} of {progress.max_frames}")
    if progress.last is not None:
        decision = "[green]accepted[/]" if progress.last.accepted else f"[red]rejected[/]: {progress.last_reason}"
        table.add_row("last frame", f"{progress.last.source} — {decision}")
    table.add_row("elapsed", f"{progress.elapsed_s:.1f} s")
    return table


def read_frames(engine: FaceEngine, settings: Settings, camera: bool, sources: list[str] | None, show_live: bool) -> Frames:
    """Analyse the images, or the camera's frames with a live display (on a terminal, not with --json)."""
    source = camera_source(camera, sources)
    if not camera:
        return frames_from_images(engine, [Path(s) for s in sources or []], settings)
    live = Live(console=err_console, refresh_per_second=8, transient=True) if show_live and err_console.is_terminal else None
    update: Callable[[CaptureProgress], None] | None = None
    if live is not None:
        def update(progress: CaptureProgress) -> None:
            live.update(progress_view(progress))
    with live or nullcontext():
        return frames_from_camera(engine, source, settings, on_progress=update)


def capture_line(frames: Frames) -> str | None:
    if frames.capture is None:
        return None
    c = frames.capture
    s = c.stats
    return (
        f"{frames.source}: {s.read} frame(s) read, {s.warmup} warm-up dropped, {s.spaced} skipped for spacing, "
        f"{len(c.frames)} analysed, {c.accepted} accepted; stopped: {s.stopped or 'done'} ({s.clock} clock)"
    )


def show_frames(frames: Frames, template=None, title: str | None = None) -> None:
    console.print(frames_table(frames.frames, template, title=title))
    line = capture_line(frames)
    if line:
        console.print(line)


def explain_failure(frames: Frames, json_output: bool) -> None:
    """Too few usable frames: the per-frame table says why (the error line follows on stderr)."""
    if not json_output and frames.frames:
        show_frames(frames)


@app.command("enroll")
def enroll_command(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The person's name (any text, at most 128 characters).")],
    sources: SourcesArgument = None,
    camera: CameraOption = False,
    replace: Annotated[bool, typer.Option("--replace", help="The user exists: replace their template(s) with this one.")] = False,
    add: Annotated[bool, typer.Option("--add", help="The user exists: add this as another template of the same person.")] = False,
    db: DbOption = None,
    json_output: JsonOption = False,
    max_frames: MaxFramesOption = None,
    min_valid_frames: MinFramesOption = None,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
    detection_threshold: DetThresholdOption = None,
    pose_yaw_limit: YawOption = None,
    pose_pitch_limit: PitchOption = None,
    min_quality_score: QualityOption = None,
) -> None:
    """Enroll a person from images, folders or a camera: per-frame table, then the template kept in the store.

    Exit 0 enrolled, 4 too few usable frames, 7 the user exists (use --replace or --add).
    """
    if replace and add:
        raise typer.BadParameter("give --replace or --add, not both")
    mode = "replace" if replace else "add" if add else "new"
    settings = settings_for(ctx)
    camera_source(camera, sources)  # usage errors before anything loads
    with Store.open(settings) as store:
        name = check_enrollable(store, user, mode)
        engine = get_engine(settings)
        frames = read_frames(engine, settings, camera, sources, show_live=not json_output)
        try:
            result = enroll(store, engine, name, frames, settings=settings, mode=mode)
        except TooFewFramesError:
            explain_failure(frames, json_output)
            raise
    if json_output:
        print_json(result.to_dict())
        return
    show_frames(frames, result.template, title=f"enroll {name}")
    console.print(template_summary(result.template))
    verb = {"new": "enrolled", "replace": "re-enrolled (old templates replaced)", "add": "added a template to"}[mode]
    console.print(f"{verb} [bold]{name}[/]: template {result.stored.id}, model {result.stored.model}, in {store.path}")


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="The enrolled person to check against.")],
    sources: SourcesArgument = None,
    camera: CameraOption = False,
    db: DbOption = None,
    json_output: JsonOption = False,
    max_frames: MaxFramesOption = None,
    min_valid_frames: MinFramesOption = None,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
    detection_threshold: DetThresholdOption = None,
    pose_yaw_limit: YawOption = None,
    pose_pitch_limit: PitchOption = None,
    min_quality_score: QualityOption = None,
) -> None:
    """Is this the enrolled person? Exit 0 match, 1 no match, 3 uncertain, 4 no usable probe,
    5 unknown user, 6 store error, 9 enrolled with another model. The attempt is recorded."""
    settings = settings_for(ctx)
    camera_source(camera, sources)
    with Store.open(settings) as store:
        store.templates(user, with_vectors=False)  # unknown user: fail before the models load
        engine = get_engine(settings)
        name = prepare_verify(store, user, engine)
        frames = read_frames(engine, settings, camera, sources, show_live=not json_output)
        try:
            result = verify(store, engine, name, frames, settings=settings)
        except TooFewFramesError:
            explain_failure(frames, json_output)
            raise
    v = result.verification
    if json_output:
        print_json(result.to_dict())
    else:
        show_frames(frames, result.probe, title=f"verify {name}")
        console.print("probe " + template_summary(result.probe))
        console.print(comparison_text(Comparison(v.similarity, v.band, v.threshold_high, v.threshold_low)))
        console.print(
            f"best of {v.templates_compared} template(s) of [bold]{name}[/] (template {v.template_id}); "
            f"attempt {v.attempt_id} recorded"
        )
    raise typer.Exit(BAND_EXIT[v.band])


@app.command("capture")
def capture_command(
    ctx: typer.Context,
    sources: SourcesArgument = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Write the template here as a 1-D float32 .npy (norm 1).", dir_okay=False)] = ...,
    camera: CameraOption = False,
    json_output: JsonOption = False,
    max_frames: MaxFramesOption = None,
    min_valid_frames: MinFramesOption = None,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
    detection_threshold: DetThresholdOption = None,
    pose_yaw_limit: YawOption = None,
    pose_pitch_limit: PitchOption = None,
    min_quality_score: QualityOption = None,
) -> None:
    """Make a template from a camera, a video or images and save it as .npy (no store involved).

    Like enroll, at least min_valid_frames frames must be usable. Exit 0 written, 4 too few usable frames.
    """
    settings = settings_for(ctx)
    camera_source(camera, sources)
    if not out.parent.is_dir():
        raise InputError(f"cannot write {out}: folder {out.parent} does not exist")
    engine = get_engine(settings)
    frames = read_frames(engine, settings, camera, sources, show_live=not json_output)
    try:
        result = capture(engine, frames, settings=settings)
    except TooFewFramesError:
        explain_failure(frames, json_output)
        raise
    try:
        save_vector(out, result.vector)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from None
    result.out = str(out)
    if json_output:
        print_json(result.to_dict())
        return
    show_frames(frames, result.template, title="capture")
    console.print(template_summary(result.template))
    console.print(f"template written to {out} (model {result.model})")

