"""Liveness in the product: which challenge a run asks, frames checked as they are analysed, the lockout.

The core (`facer_cli.liveness`) decides from `LivenessFrame`s; here the frames a camera or an HTTP burst
gives are analysed once by the engine (`FaceEngine.analyze`, for the template) and the same analysis is
fed to the checker (`frame_from_report`), so the face that answered the challenge is the face whose
frames make the template: the capture ends when the challenge is decided, and the template is built
from the challenge's own frames.

Which runs ask for a challenge, the audit fields and the lockout: `service.liveness_policy`.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np

from facer_cli.errors import ConfigError
from facer_cli.liveness import Challenge, FrameCue, LivenessChecker, LivenessProgress, LivenessResult
from facer_cli.liveness.runner import frame_from_report

if TYPE_CHECKING:
    from facer_cli.engine.face_engine import FaceEngine
    from facer_cli.engine.reports import FrameReport
    from facer_cli.service.capture import Capture, CaptureProgress
    from facer_cli.settings import Settings
    from facer_cli.sources.camera import Camera, Frame

# The turn targets are drawn from liveness_turn_deg to this many degrees more (the core's 18-25°).
TURN_SPREAD_DEG = 7.0


def challenge_for(settings: "Settings", rng: random.Random | None = None) -> Challenge:
    """A fresh random challenge under the settings (the operating system's secure source by default)."""
    low = settings.liveness_turn_deg
    return Challenge.random(
        rng,
        blink=settings.liveness_blink,
        turn_range=(low, low + TURN_SPREAD_DEG),
        time_limit_s=settings.liveness_step_s,
    )


def require_landmarks_106(engine: "FaceEngine") -> None:
    if engine.pose_source != "landmark_2d_106":
        raise ConfigError(
            "liveness needs the 106-point 2-D landmark model (2d106det) for head pose and parallax; this engine "
            f"estimates pose with {engine.pose_source or 'no landmark model'}: set allowed_modules to "
            "detection, landmark_2d_106, recognition"
        )


class LiveCheck:
    """One challenge, fed with frames the engine has analysed."""

    def __init__(self, engine: "FaceEngine", settings: "Settings", challenge: Challenge | None = None):
        require_landmarks_106(engine)
        self.engine = engine
        self.challenge = challenge if challenge is not None else challenge_for(settings)
        self.checker = LivenessChecker(self.challenge, parallax_min_residual=settings.liveness_parallax_min)

    @property
    def done(self) -> bool:
        return self.checker.done

    def update(self, image: np.ndarray, report: "FrameReport", timestamp_ms: float, index: int) -> LivenessProgress:
        return self.checker.update(frame_from_report(self.engine, image, report, timestamp_ms, index))

    def carry(self, image: np.ndarray, report: "FrameReport", timestamp_ms: float, index: int) -> None:
        self.checker.carry(frame_from_report(self.engine, image, report, timestamp_ms, index))

    @property
    def last_cue(self) -> FrameCue | None:
        return self.checker.cues[-1] if self.checker.cues else None

    def result(self) -> LivenessResult:
        return self.checker.result()


def capture_live(
    engine: "FaceEngine",
    camera: "Camera",
    check: LiveCheck,
    on_progress: "Callable[[CaptureProgress], None] | None" = None,
) -> tuple["Capture", LivenessResult]:
    """Analyse the camera's frames and run the challenge over them until it is decided (or the stream
    ends, or the camera times out): every frame of the challenge is kept for the template."""
    from facer_cli.service.capture import capture_frames

    capture = capture_frames(engine, camera, None, on_progress, watcher=ChallengeWatcher(check))
    return capture, check.result()


class ChallengeWatcher:
    """The challenge as a `capture.FrameWatcher`: each frame goes to the checker; it stops the capture
    once the challenge is decided."""

    def __init__(self, check: LiveCheck):
        self.check = check
        self.liveness: LivenessProgress | None = None
        self.cue: FrameCue | None = None

    def watch(self, frame: "Frame", report: "FrameReport") -> None:
        self.liveness = self.check.update(frame.image, report, frame.timestamp_ms, frame.index)
        self.cue = self.check.last_cue

    def stop_reason(self) -> str | None:
        if not self.check.done or self.liveness is None:
            return None
        return "liveness decided: " + ("live" if self.liveness.live else "not live")


def check_burst(
    engine: "FaceEngine", images: Iterable[tuple[np.ndarray, "FrameReport", float]], check: LiveCheck
) -> tuple[list["FrameReport"], LivenessResult]:
    """Run the challenge over analysed frames (image, report, timestamp in ms) in time order; the frames
    up to the decision are kept."""
    kept = []
    for index, (image, report, timestamp_ms) in enumerate(images):
        kept.append(report)
        check.update(image, report, timestamp_ms, index)
        if check.done:
            break
    return kept, check.result()


def answer_step(items: Iterable[tuple[np.ndarray, "FrameReport", float]], check: LiveCheck) -> list["FrameReport"]:
    """Analysed frames (image, report, timestamp in ms on the server's clock), in time order, fed to a challenge
    revealed one step at a time; the frames that answered its current step. Frames after the step was done
    were taken before the next one was known: they answer nothing, but the motion, face and mirror checks
    run through them (`LivenessChecker.carry`)."""
    kept = []
    step = check.checker.step_index
    for image, report, timestamp_ms in items:
        if check.done or check.checker.step_index != step:
            check.carry(image, report, timestamp_ms, len(check.checker.cues))
        else:
            kept.append(report)
            check.update(image, report, timestamp_ms, len(check.checker.cues))
    return kept
