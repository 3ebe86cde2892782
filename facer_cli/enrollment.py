"""Enroll, verify and capture: the functions every front end calls.

Frames come in (from images, a folder, a camera or a video), the engine has
already judged each one; these functions build the template, talk to the store
and return dataclasses that both the Rich tables and the `--json` output are
made from. Nothing here prints.

    >>> from facer_cli import Store, load_settings
    >>> from facer_cli.api import get_engine
    >>> from facer_cli.enrollment import frames_from_images, enroll, verify
    >>> settings = load_settings().settings
    >>> engine = get_engine(settings)
    >>> with Store.open(settings) as store:
    ...     frames = frames_from_images(engine, ["a.jpg", "b.jpg", "c.jpg"], settings)
    ...     enroll(store, engine, "alice", frames, settings=settings)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from facer_cli.aggregate import Template
from facer_cli.api import template_from_frames
from facer_cli.camera import Camera, Capture, ProgressCallback, Source, capture_frames
from facer_cli.engine import FaceEngine
from facer_cli.errors import TooFewFramesError, UserExistsError
from facer_cli.reports import FrameReport
from facer_cli.settings import Settings
from facer_cli.sources import image_files
from facer_cli.store import Store, StoredTemplate, Verification, validate_user_name
from facer_cli.store.store import Mode

# -- frames in -------------------------------------------------------------
@dataclass
class Frames:
    """Analysed frames and where they came from."""

    frames: list[FrameReport]
    source: str
    explicit_images: bool = False  # images named or found in folders, not a camera
    capture: Capture | None = None

    def to_dict(self) -> dict:
        data = {"source": self.source, "frames": [frame.to_dict() for frame in self.frames]}
        if self.capture is not None:
            data["capture"] = self.capture.to_dict()
        return data


def collect_images(paths: Iterable[Path | str], max_images: int) -> list[Path]:
    """Files named directly, all of them and in the order given; from each folder the first
    `max_images` images (sorted by path, recursively)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        found.extend(image_files([path], limit=max_images) if path.is_dir() else image_files([path]))
    return found


def describe_images(files: Sequence[Path], limit: int = 5) -> str:
    names = [file.name for file in files]
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return f"images: {shown}"


def frames_from_images(engine: FaceEngine, paths: Iterable[Path | str], settings: Settings) -> Frames:
    files = collect_images(paths, settings.max_images)
    return Frames([engine.analyze_path(file) for file in files], describe_images(files), explicit_images=True)


def frames_from_camera(
    engine: FaceEngine,
    source: Source | None,
    settings: Settings,
    on_progress: ProgressCallback | None = None,
    camera: Camera | None = None,
) -> Frames:
    """Analyse camera/video/stream frames until `max_frames` are accepted (see `facer_cli.camera`)."""
    camera = camera or Camera.from_settings(source, settings)
    capture = capture_frames(engine, camera, settings.max_frames, on_progress)
    return Frames(capture.frames, f"camera: {camera.description}", capture=capture)


def needed_frames(frames: Frames, settings: Settings, strict: bool) -> int:
    """`min_valid_frames`; for a probe from explicit images, at most one per image (one photo can verify)."""
    if strict or not frames.explicit_images:
        return settings.min_valid_frames
    return max(1, min(settings.min_valid_frames, len(frames.frames)))


def build_template(frames: Frames, settings: Settings, strict: bool = True) -> Template:
    needed = needed_frames(frames, settings, strict)
    try:
        return template_from_frames(frames.frames, settings, min_valid_frames=needed)
    except TooFewFramesError as exc:
        if frames.capture is not None and frames.capture.stats.stopped:
            raise TooFewFramesError(f"{exc}; capture stopped: {frames.capture.stats.stopped}") from None
        raise


def template_details(template: Template, frames: Sequence[FrameReport]) -> dict:
    return {
        **template.to_dict(),
        "kept": [frames[i].source for i in template.used],
        "outliers": [frames[i].source for i in template.outliers],
    }


# -- enroll ------------------------------------------------------------------
@dataclass
class EnrollResult:
    user: str
    mode: str
    template: Template
    stored: StoredTemplate
    frames: Frames

    def to_dict(self) -> dict:
        return {
            "user": self.user,
            "mode": self.mode,
            "template_id": self.stored.id,
            "model": self.stored.model,
            "created": self.stored.created,
            "template": template_details(self.template, self.frames.frames),
            **self.frames.to_dict(),
        }


def check_enrollable(store: Store, user: str, mode: Mode) -> str:
    """Fail before any frame is captured when enrolling would fail anyway (the store re-checks)."""
    name = validate_user_name(user)
    store.check_writable(f"enroll {name!r}")
    if mode == "new" and store.exists(name):
        count = len(store.templates(name, with_vectors=False))
        raise UserExistsError(
            f"{name!r} is already enrolled ({count} template(s)); pass --replace to replace "
            "the old template(s) or --add to add another one"
        )
    return name


def enroll(
    store: Store, engine: FaceEngine, user: str, frames: Frames, *, settings: Settings, mode: Mode = "new"
) -> EnrollResult:
    """Build the template (at least `min_valid_frames` usable frames) and store it with its samples."""
    name = validate_user_name(user)
    template = build_template(frames, settings, strict=True)
    stored = store.enroll(name, template, frames.frames, model=engine.fingerprint, source=frames.source, mode=mode)
    return EnrollResult(name, mode, template, stored, frames)


# -- verify ------------------------------------------------------------------
@dataclass
class VerifyResult:
    user: str
    verification: Verification
    probe: Template
    frames: Frames

    @property
    def band(self):
        return self.verification.band

    def to_dict(self) -> dict:
        return {
            **self.verification.to_dict(),
            "probe": template_details(self.probe, self.frames.frames),
            **self.frames.to_dict(),
        }


def prepare_verify(store: Store, user: str, engine: FaceEngine) -> str:
    """Unknown user or a model mismatch, before any frame is captured."""
    name = validate_user_name(user)
    store.check_verifiable(name, engine.fingerprint)
    store.check_writable(f"record a verify attempt for {name!r}")  # the audit row must be writable
    return name


def verify(store: Store, engine: FaceEngine, user: str, frames: Frames, *, settings: Settings) -> VerifyResult:
    """Build a probe the same way as an enrollment (explicit images: min(min_valid_frames, images)
    must be usable), compare it with every template of the user, keep the best and record the
    attempt. No usable probe: the attempt is recorded as "no_probe" and `TooFewFramesError` raised."""
    name = prepare_verify(store, user, engine)
    try:
        probe = build_template(frames, settings, strict=False)
    except TooFewFramesError:
        store.record_failed_attempt(
            name, model=engine.fingerprint, source=frames.source, frames_seen=len(frames.frames),
            frames_used=sum(frame.accepted for frame in frames.frames),
        )
        raise
    verification = store.verify(
        name, probe.vector, model=engine.fingerprint, settings=settings, source=frames.source,
        frames_seen=probe.frames_seen, frames_used=len(probe.used),
    )
    return VerifyResult(name, verification, probe, frames)


# -- capture -----------------------------------------------------------------
@dataclass
class CaptureResult:
    """A template for a `.npy` file, and how it was made."""

    template: Template
    frames: Frames
    model: str
    out: str | None = None

    @property
    def vector(self) -> np.ndarray:
        return self.template.vector

    def to_dict(self) -> dict:
        return {
            "out": self.out,
            "model": self.model,
            "template": template_details(self.template, self.frames.frames),
            **self.frames.to_dict(),
        }


def capture(engine: FaceEngine, frames: Frames, *, settings: Settings) -> CaptureResult:
    """A template from frames, held to the enrollment rule (at least `min_valid_frames`)."""
    return CaptureResult(build_template(frames, settings, strict=True), frames, engine.fingerprint)


# -- templates from elsewhere ------------------------------------------------
def current_model(settings: Settings) -> tuple[str, int | None]:
    """Fingerprint and template dimension of the model pack the settings choose, without
    loading it (hashes its files and reads the recognition model's graph)."""
    import onnx

    from facer_cli.modelpack import locate_pack

    pack = locate_pack(settings)
    try:
        graph = onnx.load(str(pack.files["recognition"].path), load_external_data=False).graph
        dimension = graph.output[0].type.tensor_type.shape.dim[-1].dim_value or None
    except Exception:  # the engine reports an unreadable model when it loads it
        dimension = None
    return pack.fingerprint, dimension


def import_template(
    store: Store, user: str, path: Path | str, *, model: str, dimension: int | None = None, mode: Mode = "new"
) -> StoredTemplate:
    """A `.npy` vector (validated like `compare`'s inputs: 1-D, numeric, finite, non-zero, no pickles)
    stored as a template of `model`."""
    from facer_cli.compare import load_vector
    from facer_cli.errors import VectorError

    vector = load_vector(path)
    if dimension is not None and vector.shape[0] != dimension:
        raise VectorError(f"{path}: {vector.shape[0]} values, but model {model} makes {dimension}-d templates")
    return store.import_vector(user, vector, model=model, source=f"import: {Path(path).name}", mode=mode)
