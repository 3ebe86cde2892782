"""Cameras, video files and stream URLs as frame sources (OpenCV opens all three alike).

`Camera` yields frames — BGR pixels, a timestamp and the frame's index in the
stream — after dropping `camera_warmup_frames` right after opening, keeping
frames at least `frame_interval_ms` apart (on the stream's own clock when it
has one, so a video file gives the same frames every run), and stopping at the
end of the stream or after `camera_timeout_s`. The device is released however
the loop ends, Ctrl-C included. Frames live in memory only.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import cv2
import numpy as np

from facer_cli.errors import SourceError

if TYPE_CHECKING:
    from facer_cli.settings import Settings

Source = int | str

# FFmpeg (inside OpenCV) prints its own lines, e.g. "[tcp @ 0x…] Connection refused", when a stream
# cannot be opened; facer says it in one line. Read by OpenCV when it first uses FFmpeg; a value the
# user set is kept.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def parse_source(source: Source | None, default_index: int = 0) -> Source:
    """A camera index (int, or a string of digits), a video file path or a stream URL."""
    if source is None or (isinstance(source, str) and not source.strip()):
        return default_index
    if isinstance(source, int):
        if source < 0:
            raise SourceError(f"camera index {source} is negative")
        return source
    text = str(source).strip()
    if text.isdigit():
        return int(text)
    return text


def is_url(source: Source) -> bool:
    return isinstance(source, str) and "://" in source


def describe_source(source: Source) -> str:
    if isinstance(source, int):
        return f"camera {source}"
    return source


def short_label(source: Source) -> str:
    """What each frame is called in tables: "camera 0", the video's file name, or the URL."""
    if isinstance(source, int) or is_url(source):
        return describe_source(source)
    return Path(source).name


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV prints its own multi-line warnings when a device fails to open; we say it in one line."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def open_capture(source: Source) -> cv2.VideoCapture:
    """Open the source or raise `SourceError` naming it."""
    if isinstance(source, str) and not is_url(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise SourceError(f"{source}: no such video file (give a camera index, a video file or a stream URL)")
        if not path.is_file():
            raise SourceError(f"{source}: is a folder, not a video file")
        source = str(path)
    with _quiet_opencv():
        capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        capture.release()
        if isinstance(source, int):
            raise SourceError(f"cannot open camera {source}: no such camera, or another program is using it")
        if is_url(source):
            raise SourceError(f"cannot open stream {source}: unreachable, or not a stream OpenCV can read")
        raise SourceError(f"cannot open video {source}: not a video file OpenCV can read")
    return capture


@dataclass
class Frame:
    """One frame kept from a source: pixels (BGR), when it was taken, and its index in the stream."""

    image: np.ndarray = field(repr=False)
    timestamp_ms: float
    index: int
    label: str

    @property
    def name(self) -> str:
        return f"{self.label} #{self.index} @{self.timestamp_ms / 1000:.2f}s"


@dataclass
class CameraStats:
    read: int = 0  # frames read from the source
    warmup: int = 0  # dropped right after opening
    spaced: int = 0  # skipped: closer than frame_interval_ms to the previous kept frame
    kept: int = 0  # handed on
    clock: str = "stream"  # "stream" (the source's timestamps) or "wall" (the computer's clock)
    stopped: str = ""  # why reading stopped
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return {**self.__dict__, "elapsed_s": round(self.elapsed_s, 3)}


class Camera:
    """A camera index, video file or stream URL as an iterator of spaced frames.

    >>> with Camera("clip.mp4", warmup_frames=5, interval_ms=200) as camera:
    ...     for frame in camera.frames():
    ...         ...
    """

    def __init__(
        self,
        source: Source | None = None,
        *,
        warmup_frames: int = 5,
        interval_ms: float = 200.0,
        timeout_s: float | None = 30.0,
        default_index: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.source = parse_source(source, default_index)
        self.label = short_label(self.source)
        self.warmup_frames = warmup_frames
        self.interval_ms = interval_ms
        self.timeout_s = timeout_s
        self.stats = CameraStats()
        self._clock = clock
        self._capture: cv2.VideoCapture | None = None
        self._opened_at = 0.0

    @classmethod
    def from_settings(cls, source: Source | None, settings: "Settings") -> "Camera":
        return cls(
            source,
            warmup_frames=settings.camera_warmup_frames,
            interval_ms=settings.frame_interval_ms,
            timeout_s=settings.camera_timeout_s or None,
            default_index=settings.camera_index,
        )

    @property
    def description(self) -> str:
        return describe_source(self.source)

    def open(self) -> "Camera":
        if self._capture is None:
            self._capture = open_capture(self.source)
            self._opened_at = self._clock()
        return self

    def release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
            self.stats.elapsed_s = self._clock() - self._opened_at

    @property
    def is_open(self) -> bool:
        return self._capture is not None

    def __enter__(self) -> "Camera":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def stop(self, why: str) -> None:
        """Note why the consumer stopped reading (e.g. enough frames accepted)."""
        self.stats.stopped = why

    def frames(self) -> Iterator[Frame]:
        """Kept frames, in order; releases the source when the loop ends however it ends."""
        self.open()
        capture = self._capture
        assert capture is not None
        stats = self.stats
        last_stream_ms = -1.0
        last_kept_ms: float | None = None
        try:
            while True:
                if self.timeout_s and self._clock() - self._opened_at > self.timeout_s:
                    stats.stopped = f"timeout after {self.timeout_s:g} s"
                    return
                if not capture.grab():
                    stats.stopped = "end of stream" if stats.read else "no frame could be read"
                    if not stats.read:
                        raise SourceError(f"{self.description}: opened, but no frame could be read from it")
                    return
                index = stats.read
                stats.read += 1
                # The stream's clock while it runs forward; the wall clock once it does not (live
                # cameras often report 0). Decided during warm-up, before any frame is kept.
                stream_ms = capture.get(cv2.CAP_PROP_POS_MSEC)
                if stats.clock == "stream" and (stream_ms > last_stream_ms if index else stream_ms >= 0):
                    timestamp = last_stream_ms = stream_ms
                else:
                    stats.clock = "wall"
                    timestamp = (self._clock() - self._opened_at) * 1000.0
                if index < self.warmup_frames:
                    stats.warmup += 1
                    continue
                if last_kept_ms is not None and timestamp - last_kept_ms < self.interval_ms:
                    stats.spaced += 1
                    continue
                ok, image = capture.retrieve()
                if not ok or image is None:
                    stats.stopped = "the source stopped giving frames"
                    return
                last_kept_ms = timestamp
                stats.kept += 1
                yield Frame(image=image, timestamp_ms=timestamp, index=index, label=self.label)
        finally:
            self.release()
