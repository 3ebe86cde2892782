"""`facer inspect`: per-frame decisions for images and folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import numpy as np
import typer
from rich.progress import Progress

from facer_cli.aggregate import Template
from facer_cli.api import get_engine, template_from_frames
from facer_cli.cli.app import (
    DetSizeOption, DetThresholdOption, JsonOption, ModelOption, PitchOption, QualityOption, YawOption,
    app, console, err_console, print_json, settings_for,
)
from facer_cli.cli.render import frames_summary, frames_table, template_summary
from facer_cli.engine import FaceEngine
from facer_cli.errors import FacerError, InputError
from facer_cli.reports import FrameReport
from facer_cli.sources import image_files

PROGRESS_FROM = 5  # show a progress bar from this many images on


def analyze_with_progress(engine: FaceEngine, paths: list[Path], all_faces: bool, quiet: bool) -> list[FrameReport]:
    if quiet or len(paths) < PROGRESS_FROM:
        return [engine.analyze_path(p, all_faces=all_faces) for p in paths]
    frames = []
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("analysing", total=len(paths))
        for path in paths:
            frames.append(engine.analyze_path(path, all_faces=all_faces))
            progress.advance(task)
    return frames


def try_template(frames: list[FrameReport], engine: FaceEngine) -> Template | None:
    """The template these frames would make: at least two accepted, most of them kept.

    Frames of several people (most dropped as outliers) form no template.
    """
    if sum(frame.accepted for frame in frames) < 2:
        return None
    try:
        template = template_from_frames(frames, engine.settings, min_valid_frames=1)
    except FacerError:
        return None
    return template if 2 * len(template.used) > len(template.accepted) else None


@app.command("inspect")
def inspect_command(
    ctx: typer.Context,
    paths: Annotated[List[Path], typer.Argument(help="Images and folders (searched recursively).")],
    json_output: JsonOption = False,
    export: Annotated[Optional[Path], typer.Option("--export", help="Save each image's subject embedding to this .npz, keyed by path.", dir_okay=False)] = None,
    all_faces: Annotated[bool, typer.Option("--all-faces", help="Measure and embed every face, not only the subject.")] = False,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
    detection_threshold: DetThresholdOption = None,
    pose_yaw_limit: YawOption = None,
    pose_pitch_limit: PitchOption = None,
    min_quality_score: QualityOption = None,
) -> None:
    """Show, frame by frame and face by face, what facer measures and why each frame is used or not."""
    settings = settings_for(ctx)
    files = image_files(paths)
    engine = get_engine(settings)
    frames = analyze_with_progress(engine, files, all_faces, quiet=json_output)
    template = try_template(frames, engine)
    if export is not None:
        export_embeddings(export, frames)
    if json_output:
        print_json({
            "frames": [frame.to_dict() for frame in frames],
            "template": None if template is None else {
                **template.to_dict(),
                "kept": [frames[i].source for i in template.used],
                "outliers": [frames[i].source for i in template.outliers],
            },
            "model": engine.fingerprint,
        })
    else:
        console.print(frames_table(frames, template))
        console.print(frames_summary(frames))
        if template is not None:
            console.print(template_summary(template))
        if export is not None:
            console.print(f"embeddings saved to {export}")
    if not any(frame.faces for frame in frames):
        raise typer.Exit(4)


def export_embeddings(path: Path, frames: list[FrameReport]) -> None:
    vectors = {frame.source: frame.embedding for frame in frames if frame.embedding is not None}
    if not vectors:
        raise InputError("nothing to export: no image had a face")
    try:
        np.savez(path, **vectors)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
