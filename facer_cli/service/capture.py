"""Driving the engine over a camera: `capture_frames` analyses frames until `max_frames` are
accepted, a watcher (a liveness challenge) says stop, or the stream ends, reporting progress through
a callback (the CLI draws a live display from it; the Python API passes none).

Above both the camera (`facer_cli.sources.camera`) and the liveness checker, so neither imports
the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

from facer_cli.engine.reports import FrameReport
from facer_cli.sources.camera import Camera, CameraStats, Frame

if TYPE_CHECKING:
    from facer_cli.engine.face_engine import FaceEngine
    from facer_cli.liveness import FrameCue, LivenessProgress


@dataclass
class CaptureProgress:
    """What a live display shows after each analysed frame."""

    source: str
    stats: CameraStats
    analysed: int
    accepted: int
    max_frames: int
    last: FrameReport | None
    elapsed_s: float
    liveness: "LivenessProgress | None" = None  # with a liveness challenge: the step to show
    cue: "FrameCue | None" = None  # and what the checker measured on the last frame

    @property
    def last_decision(self) -> str:
        if self.last is None:
            return ""
        return "accepted" if self.last.accepted else "rejected"

    @property
    def last_reason(self) -> str:
        return "" if self.last is None or self.last.accepted else self.last.reason


@dataclass
class Capture:
    """The analysed frames of one capture and how it went."""

    source: str
    frames: list[FrameReport]
    stats: CameraStats
    max_frames: int

    @property
    def accepted(self) -> int:
        return sum(frame.accepted for frame in self.frames)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "max_frames": self.max_frames,
            "analysed": len(self.frames),
            "accepted": self.accepted,
            **self.stats.to_dict(),
        }


ProgressCallback = Callable[[CaptureProgress], None]


class FrameWatcher(Protocol):
    """Looks at each analysed frame as it comes (a liveness challenge does), may end the capture, and
    says what a live display should show of it."""

    liveness: "LivenessProgress | None"
    cue: "FrameCue | None"

    def watch(self, frame: Frame, report: FrameReport) -> None: ...

    def stop_reason(self) -> str | None: ...


def capture_frames(
    engine: "FaceEngine",
    camera: Camera,
    max_frames: int | None,
    on_progress: ProgressCallback | None = None,
    watcher: FrameWatcher | None = None,
) -> Capture:
    """Analyse the camera's frames until `max_frames` are accepted (None: no such limit), the `watcher`
    says stop, the stream ends or it times out."""
    frames: list[FrameReport] = []
    accepted = 0
    started = time.monotonic()
    with camera:
        for frame in camera.frames():
            report = engine.analyze(frame.image, frame.name)
            frames.append(report)
            accepted += report.accepted
            if watcher is not None:
                watcher.watch(frame, report)
            if on_progress is not None:
                on_progress(
                    CaptureProgress(
                        source=camera.description,
                        stats=camera.stats,
                        analysed=len(frames),
                        accepted=accepted,
                        max_frames=len(frames) if max_frames is None else max_frames,
                        last=report,
                        elapsed_s=time.monotonic() - started,
                        liveness=None if watcher is None else watcher.liveness,
                        cue=None if watcher is None else watcher.cue,
                    )
                )
            stop = watcher.stop_reason() if watcher is not None else None
            if stop is None and max_frames is not None and accepted >= max_frames:
                stop = f"{max_frames} frame(s) accepted"
            if stop is not None:
                camera.stop(stop)
                break
    limit = len(frames) if max_frames is None else max_frames
    return Capture(source=camera.description, frames=frames, stats=camera.stats, max_frames=limit)
