"""`facer inspect`: per-frame decisions for images and folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from facer_cli.cli.app import console, err_console, settings_for
from facer_cli.cli.options import (
    DetSizeOption,
    DetThresholdOption,
    ForceOption,
    JsonOption,
    ModelOption,
    PitchOption,
    QualityOption,
    VerboseOption,
    YawOption,
)
from facer_cli.cli.output.text import literal, print_json
from facer_cli.cli.output.views import inspect_view

PROGRESS_FROM = 5  # show a progress bar from this many images on


def inspect_command(
    ctx: typer.Context,
    paths: Annotated[
        List[Path],
        typer.Argument(
            readable=False, help="Images and folders (searched recursively; all their images).", show_default=False
        ),
    ],
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
    export: Annotated[
        Optional[Path],
        typer.Option("--export", help="Save each image's subject embedding to this .npz, keyed by path."),
    ] = None,
    force: ForceOption = False,
    all_faces: Annotated[
        bool, typer.Option("--all-faces", help="Measure and embed every face, not only the subject.")
    ] = False,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
    detection_threshold: DetThresholdOption = None,
    pose_yaw_limit: YawOption = None,
    pose_pitch_limit: PitchOption = None,
    min_quality_score: QualityOption = None,
) -> None:
    """Show, frame by frame and face by face, what facer measures and why each frame is used or not.

    Exit 0, or 4 when no image held any face. In Python: Facer(settings).inspect(paths).
    """
    from rich.progress import Progress

    from facer_cli.service import Facer

    facer = Facer(settings_for(ctx))
    _ = facer.engine  # load the models before the progress bar starts
    if json_output:
        result = facer.inspect(paths, all_faces=all_faces)
    else:
        with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
            task = progress.add_task("analysing", total=None)
            result = facer.inspect(paths, all_faces=all_faces, on_progress=lambda n: progress.advance(task, n))
    written = None
    if export is not None:
        written = export_embeddings(export, result.frames, force)
    if json_output:
        print_json({**result.to_dict(), "export": written})
    else:
        console.print(inspect_view(result, verbose))
        if written:
            console.print(literal(f"embeddings saved to {written}"))
    if not any(frame.faces for frame in result.frames):
        raise typer.Exit(4)


def export_embeddings(path: Path, frames: list, force: bool) -> str:
    """Each frame's subject embedding in one `.npz`, keyed by its source (0600, atomic)."""
    import io

    import numpy as np

    from facer_cli.errors import InputError
    from facer_cli.files.writing import with_suffix, write_private

    vectors = {frame.source: frame.embedding for frame in frames if frame.embedding is not None}
    if not vectors:
        raise InputError("nothing to export: no image had a face")
    buffer = io.BytesIO()
    np.savez(buffer, **vectors)
    return str(write_private(with_suffix(path, ".npz"), buffer.getvalue(), overwrite=force))
