"""Inputs to frames: files on disk, uploads held in memory, cameras — and "image or .npy → vector".

Every front end turns its input into an `InputFile` (a name and the bytes, read
on demand) or a camera source, and gets `Frames` back from here, so the CLI, the
HTTP service and the Python API read, decode and judge inputs the same way.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from facer_cli.engine.reports import FrameReport
from facer_cli.errors import ImageError, InputError, NoFaceError, VectorError
from facer_cli.files.npy import max_npy_bytes
from facer_cli.files.reading import read_regular_file
from facer_cli.files.vectors import looks_like_npy, vector_from_bytes
from facer_cli.sources.image_paths import image_paths
from facer_cli.sources.images import decode_image

if TYPE_CHECKING:
    from facer_cli.engine.face_engine import FaceEngine
    from facer_cli.liveness import LivenessResult
    from facer_cli.service.capture import Capture, CaptureProgress
    from facer_cli.service.liveness import LiveCheck
    from facer_cli.settings import Settings
    from facer_cli.sources.camera import Camera, Source


@dataclass
class InputFile:
    """An image or `.npy` by name: a file on disk (`path`) or bytes held in memory (`data`)."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    @classmethod
    def from_path(cls, path: Path | str) -> "InputFile":
        return cls(str(path), path=Path(path))

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> "InputFile":
        # An upload's name is the client's: keep its last part only.
        return cls(PurePath(name.replace("\\", "/")).name or "upload", data=data)

    def read(self, max_bytes: int, error: type[InputError] = ImageError) -> bytes:
        """The bytes: of a regular file only (no FIFO, device or folder), and at most `max_bytes`."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return read_regular_file(self.path, max_bytes, error)


@dataclass
class Frames:
    """Analysed frames and where they came from."""

    frames: list[FrameReport]
    source: str
    explicit_images: bool = False  # images named or found in folders, not a camera
    capture: "Capture | None" = None
    liveness: "LivenessResult | None" = None  # the challenge these frames answered, if one was asked

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"source": self.source, "frames": [frame.to_dict() for frame in self.frames]}
        if self.capture is not None:
            data["capture"] = self.capture.to_dict()
        if self.liveness is not None:
            data["liveness"] = self.liveness.to_dict()
        return data


def describe_images(names: Sequence[str], limit: int = 5) -> str:
    short = [PurePath(name).name or name for name in names]
    shown = ", ".join(short[:limit]) + (f" and {len(short) - limit} more" if len(short) > limit else "")
    return f"images: {shown}"


@dataclass(frozen=True)
class Limits:
    """How much of an input facer reads and decodes (the max_file_bytes and max_image_pixels settings)."""

    max_bytes: int
    max_pixels: int

    @classmethod
    def of(cls, settings: "Settings") -> "Limits":
        return cls(settings.max_file_bytes, settings.max_image_pixels)


def analyze_input(
    engine: "FaceEngine", item: InputFile, limits: Limits, *, all_faces: bool = False, strict: bool = False
) -> FrameReport:
    """Read, decode and analyse one image. An unusable file is a report with `error` set, or, with
    `strict`, the `ImageError` itself (the HTTP service fails the request on a broken upload)."""
    try:
        image = decode_image(item.read(limits.max_bytes), item.name, limits.max_pixels)
    except ImageError as exc:
        if strict:
            raise
        return FrameReport(source=item.name, error=str(exc))
    return engine.analyze(image, item.name, all_faces=all_faces)


def cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def worker_count(workers: int, images: int) -> int:
    """Threads for `images` images: the `workers` setting (0: one per core), never more than the
    cores or the images. Decoding runs one image at a time (`facer_cli.sources.images`), so beyond two or
    three threads only the models' share of the work spreads further."""
    available = cores()
    return max(1, min(workers or available, available, images))


def frames_from_files(
    engine: "FaceEngine",
    items: Sequence[InputFile],
    limits: Limits,
    *,
    all_faces: bool = False,
    strict: bool = False,
    on_progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> Frames:
    """Read, decode and analyse every item, in `worker_count(workers, …)` threads over the one engine
    (ONNX Runtime and OpenCV release the GIL, so one image decodes while another runs the models).
    Frames come back in input order, as the sequential loop gives them, with the same numbers;
    `on_progress(1)` is called per image in that order. With `strict`, the first unusable item in
    input order raises its error and the items not yet started are dropped."""
    count = worker_count(workers, len(items))
    frames: list[FrameReport] = []

    def analyse(item: InputFile) -> FrameReport:
        return analyze_input(engine, item, limits, all_faces=all_faces, strict=strict)

    if count == 1:
        for item in items:
            frames.append(analyse(item))
            if on_progress is not None:
                on_progress(1)
    else:
        pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="facer-frames")
        try:
            for future in [pool.submit(analyse, item) for item in items]:
                frames.append(future.result())
                if on_progress is not None:
                    on_progress(1)
        finally:
            # After an error or Ctrl-C: nothing more starts; at most `count` images finish unseen.
            pool.shutdown(wait=False, cancel_futures=True)
    source = ("uploaded " if items and items[0].path is None else "") + describe_images([i.name for i in items])
    return Frames(frames, source, explicit_images=True)


def files_of(paths: Iterable[Path | str], per_folder: int | None) -> list[InputFile]:
    """The image files that `paths` name, by the one folder policy (`facer_cli.sources.image_paths`)."""
    return [InputFile.from_path(path) for path in image_paths(paths, per_folder)]


def frames_from_camera(
    engine: "FaceEngine",
    source: "Source | None",
    settings: "Settings",
    on_progress: "Callable[[CaptureProgress], None] | None" = None,
    camera: "Camera | None" = None,
    live: "LiveCheck | None" = None,
) -> Frames:
    """Analyse camera/video/stream frames until `max_frames` are accepted (see `facer_cli.sources.camera`); with
    `live`, until its liveness challenge is decided (the frames of the challenge make the template)."""
    from facer_cli.service.capture import capture_frames
    from facer_cli.sources.camera import Camera

    camera = camera or Camera.from_settings(source, settings)
    if live is not None:
        from facer_cli.service.liveness import capture_live

        capture, result = capture_live(engine, camera, live, on_progress)
        return Frames(capture.frames, f"camera: {camera.description}", capture=capture, liveness=result)
    capture = capture_frames(engine, camera, settings.max_frames, on_progress)
    return Frames(capture.frames, f"camera: {camera.description}", capture=capture)


def frames_from_burst(
    engine: "FaceEngine", items: Sequence[tuple[InputFile, float]], limits: Limits, live: "LiveCheck"
) -> Frames:
    """Uploaded frames with their timestamps (ms), answering a liveness challenge: decoded and analysed in
    time order until the challenge is decided; a file that is not a usable image fails the request."""
    from facer_cli.service.liveness import check_burst

    def analysed() -> Iterable[tuple[np.ndarray, FrameReport, float]]:
        for item, timestamp_ms in sorted(items, key=lambda pair: pair[1]):
            image = decode_image(item.read(limits.max_bytes), item.name, limits.max_pixels)
            yield image, engine.analyze(image, f"{item.name} @{timestamp_ms / 1000:.2f}s"), timestamp_ms

    frames, result = check_burst(engine, analysed(), live)
    return Frames(frames, f"uploaded burst: {len(items)} frame(s)", liveness=result)


def frames_for_step(
    engine: "FaceEngine", items: Sequence[tuple[InputFile, float]], limits: Limits, live: "LiveCheck"
) -> list[FrameReport]:
    """Uploaded frames with their timestamps (ms, the server's clock) answering the current step of a
    challenge revealed one step at a time: decoded and analysed in time order; the frames that answered the
    step (`service.liveness.answer_step`). A file that is not a usable image fails the request."""
    from facer_cli.service.liveness import answer_step

    def analysed() -> Iterable[tuple[np.ndarray, FrameReport, float]]:
        for item, timestamp_ms in sorted(items, key=lambda pair: pair[1]):
            image = decode_image(item.read(limits.max_bytes), item.name, limits.max_pixels)
            yield image, engine.analyze(image, f"{item.name} @{timestamp_ms / 1000:.2f}s"), timestamp_ms

    return answer_step(analysed(), live)


def vector_or_face(engine: "FaceEngine", item: InputFile, limits: Limits) -> tuple[np.ndarray, FrameReport | None]:
    """The one "image or .npy → vector" rule: a `.npy` (by suffix or magic bytes) is a template as it
    is; an image gives its accepted subject's embedding, else `NoFaceError` saying why."""
    npy_named = item.name.lower().endswith(".npy")
    data = item.read(
        max_npy_bytes() if npy_named else engine.settings.max_file_bytes, VectorError if npy_named else ImageError
    )
    if looks_like_npy(item.name, data):
        return vector_from_bytes(data, item.name), None
    frame = analyze_input(engine, InputFile(item.name, data=data), limits, strict=True)
    if not frame.accepted or frame.embedding is None:
        raise NoFaceError(f"{item.name}: no usable face ({frame.reason.removeprefix(item.name + ': ')})")
    return frame.embedding, frame
