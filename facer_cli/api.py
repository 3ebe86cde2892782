"""The Python API: what the CLI and the HTTP service call, usable on its own.

    >>> from facer_cli import FaceEngine, load_settings, generate_token_from_images
    >>> token = generate_token_from_images(["a.jpg", "b.jpg", "c.jpg"])
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from facer_cli.aggregate import Template, build_template, template_from_embeddings
from facer_cli.engine import ENGINE_SETTINGS, FaceEngine
from facer_cli.reports import FrameReport
from facer_cli.settings import Settings, default_settings
from facer_cli.sources import image_files


@lru_cache(maxsize=4)
def _cached_engine(engine_settings_json: str) -> FaceEngine:
    return FaceEngine(Settings.model_validate_json(engine_settings_json))


def get_engine(settings: Settings | None = None) -> FaceEngine:
    """An engine for these settings, loaded once per process and reused.

    Only the settings the engine itself reads (`ENGINE_SETTINGS`) pick the engine:
    read aggregation, band, source and store settings from `settings`, not from
    `engine.settings`.
    """
    settings = settings or default_settings()
    fields = Settings.model_fields
    key = Settings.model_validate(
        {name: getattr(settings, name) if name in ENGINE_SETTINGS else fields[name].default for name in fields}
    )
    return _cached_engine(key.model_dump_json())


def analyze_files(engine: FaceEngine, paths: Iterable[Path | str], all_faces: bool = False) -> list[FrameReport]:
    return [engine.analyze_path(path, all_faces=all_faces) for path in paths]


def template_from_frames(frames: Sequence[FrameReport], settings: Settings, min_valid_frames: int | None = None) -> Template:
    needed = settings.min_valid_frames if min_valid_frames is None else min_valid_frames
    return build_template(frames, needed, settings.outlier_cosine_threshold)


def generate_token_from_embeddings(
    embeddings: Sequence[np.ndarray] | np.ndarray, weights: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """Weighted mean of the embeddings (unit-normalised first), L2-renormalised (float32, norm 1)."""
    vector, _ = template_from_embeddings(embeddings, weights)
    return vector


def generate_token_from_images(paths: Sequence[Path | str], settings: Settings | None = None) -> np.ndarray:
    """Template of the given images: filters, outlier rejection, quality-weighted mean.

    With explicit images, min(min_valid_frames, number of images) must be usable, so
    one photo makes a template. Raises `TooFewFramesError` otherwise.
    """
    settings = settings or default_settings()
    engine = get_engine(settings)
    frames = analyze_files(engine, image_files(paths))
    return template_from_frames(frames, settings, min(settings.min_valid_frames, len(frames))).vector


def generate_token_from_directory(path: Path | str, max_images: int = 5, settings: Settings | None = None) -> np.ndarray:
    """Template of the first `max_images` images of a folder (sorted by name)."""
    settings = settings or default_settings()
    engine = get_engine(settings)
    frames = analyze_files(engine, image_files([path], limit=max_images))
    return template_from_frames(frames, settings).vector


def generate_token_from_camera(
    max_frames: int = 5, source: int | str | None = None, settings: Settings | None = None
) -> np.ndarray:
    """Template of `max_frames` accepted frames from a camera, a video file or a stream URL.

    `source`: a camera index (default: the `camera_index` setting), a video file path or a
    stream URL. Drops `camera_warmup_frames` at open, keeps frames `frame_interval_ms` apart,
    gives up after `camera_timeout_s`, and always releases the device. At least
    min(`min_valid_frames`, `max_frames`) frames must be usable, else `TooFewFramesError`;
    a source that cannot be opened raises `SourceError`.
    """
    from facer_cli.camera import Camera, capture_frames
    from facer_cli.settings import with_overrides

    settings = with_overrides(settings or default_settings(), max_frames=max_frames)
    capture = capture_frames(get_engine(settings), Camera.from_settings(source, settings), settings.max_frames)
    return template_from_frames(capture.frames, settings, min(settings.min_valid_frames, max_frames)).vector
