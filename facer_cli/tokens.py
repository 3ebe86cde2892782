"""The original SDK's functions, over the service layer: a template ("token") from images,
a folder, a camera or embeddings.

    >>> from facer_cli import generate_token_from_images
    >>> token = generate_token_from_images(["a.jpg", "b.jpg", "c.jpg"])   # float32, norm 1

Settings default to the defaults alone; pass `load_settings().settings` for facer.toml
and FACER_* variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from facer_cli.service import Facer
from facer_cli.settings import Settings, with_overrides
from facer_cli.sources.camera import Source
from facer_cli.templates.aggregate import template_from_embeddings


def generate_token_from_embeddings(
    embeddings: Sequence[np.ndarray] | np.ndarray, weights: Sequence[float] | np.ndarray | None = None
) -> np.ndarray:
    """Weighted mean of the embeddings (unit-normalised first), L2-renormalised (float32, norm 1)."""
    vector, _ = template_from_embeddings(embeddings, weights)
    return vector


def generate_token_from_images(paths: Sequence[Path | str], settings: Settings | None = None) -> np.ndarray:
    """Template of the given images (folders: their first `max_images`), as `facer capture` makes it:
    min(min_valid_frames, number of images) must be usable. Raises `TooFewFramesError` otherwise."""
    return Facer(settings).capture(paths).vector


def generate_token_from_directory(
    path: Path | str, max_images: int = 5, settings: Settings | None = None
) -> np.ndarray:
    """Template of the first `max_images` images of a folder (sorted by path)."""
    return Facer(with_overrides(settings or Settings(), max_images=max_images)).capture([path]).vector


def generate_token_from_camera(
    max_frames: int = 5, source: Source | None = None, settings: Settings | None = None
) -> np.ndarray:
    """Template of `max_frames` accepted frames from a camera, a video file or a stream URL.

    `source`: a camera index (default: the `camera_index` setting), a video file path or a
    stream URL. Drops `camera_warmup_frames` at open, keeps frames `frame_interval_ms` apart,
    gives up after `camera_timeout_s`, and always releases the device. At least `min_valid_frames`
    frames must be usable, else `TooFewFramesError`; a source that cannot be opened raises `SourceError`.
    """
    facer = Facer(with_overrides(settings or Settings(), max_frames=max_frames))
    return facer.capture(facer.frames_from_camera(source)).vector
