"""`facer compare A B`: two templates (images or .npy vectors), one similarity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from facer_cli.api import get_engine
from facer_cli.cli.app import (
    EXIT_NO_MATCH, EXIT_UNCERTAIN, DetSizeOption, JsonOption, ModelOption, app, console, print_json, settings_for,
)
from facer_cli.cli.render import comparison_text, frames_table
from facer_cli.compare import Band, Comparison, load_vector
from facer_cli.errors import NoFaceError
from facer_cli.reports import FrameReport
from facer_cli.settings import Settings

BAND_EXIT = {Band.MATCH: 0, Band.NO_MATCH: EXIT_NO_MATCH, Band.UNCERTAIN: EXIT_UNCERTAIN}


def template_of(path: Path, settings: Settings) -> tuple[np.ndarray, FrameReport | None]:
    """A `.npy` vector as it is, or the accepted subject of an image."""
    if path.suffix.lower() == ".npy":
        return load_vector(path), None
    frame = get_engine(settings).analyze_path(path)
    if not frame.accepted:
        raise NoFaceError(f"{path}: no usable face ({frame.reason.removeprefix(str(path) + ': ')})")
    return frame.embedding, frame


@app.command("compare")
def compare_command(
    ctx: typer.Context,
    a: Annotated[Path, typer.Argument(help="An image or a .npy template.")],
    b: Annotated[Path, typer.Argument(help="An image or a .npy template.")],
    json_output: JsonOption = False,
    model_name: ModelOption = None,
    det_size: DetSizeOption = None,
) -> None:
    """Cosine similarity of two faces or templates, and the band: exit 0 match, 1 no match, 3 uncertain, 4 unusable input."""
    settings = settings_for(ctx)
    vector_a, frame_a = template_of(a, settings)
    vector_b, frame_b = template_of(b, settings)
    comparison = Comparison.of(vector_a, vector_b, settings)
    frames = [frame for frame in (frame_a, frame_b) if frame is not None]
    if json_output:
        print_json({"a": str(a), "b": str(b), **comparison.to_dict(), "frames": [f.to_dict() for f in frames]})
    else:
        if frames:
            console.print(frames_table(frames))
        console.print(comparison_text(comparison))
    raise typer.Exit(BAND_EXIT[comparison.band])
