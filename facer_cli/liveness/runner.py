"""Driving the checker with the engine: image → `LivenessFrame`, and a whole camera attempt.

The only place that reaches into the engine's models for liveness (its detector, its landmark
model and its recognizer), so a change there is one change here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from facer_cli.engine.pose import pose_from_landmarks_2d106
from facer_cli.liveness.challenge import Challenge
from facer_cli.liveness.checker import LivenessChecker, LivenessFrame, LivenessProgress, LivenessResult
from facer_cli.liveness.geometry import aligned_face

if TYPE_CHECKING:
    from facer_cli.engine.face_engine import FaceEngine
    from facer_cli.engine.reports import FrameReport
    from facer_cli.sources.camera import Camera

ProgressCallback = Callable[[LivenessProgress, LivenessFrame], None]


def require_landmarks_106(engine: FaceEngine) -> None:
    """The parallax and blink cues are defined on 2d106det's points; refuse a pack without them."""
    if engine.pose_source != "landmark_2d_106":
        raise ValueError(f"liveness needs the 106-point 2-D landmark model; this pack gives {engine.pose_source}")


def landmarks_106(engine: FaceEngine, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The 106 landmarks of the face in `box`, image pixels."""
    return np.asarray(engine.landmarks(image, box), dtype=np.float64)[:, :2]


def frame_from_report(
    engine: FaceEngine, image: np.ndarray, report: FrameReport, timestamp_ms: float, index: int = 0
) -> LivenessFrame:
    """The `LivenessFrame` of a frame the engine has already analysed (`FaceEngine.analyze`): its subject's
    box, pose and embedding are reused, only the 106 landmarks are computed again (`analyze` keeps none).
    The same subject as `observe`: the largest confident face; a frame without one has no face."""
    subject = report.subject
    if subject is None or subject.det_score < engine.settings.detection_threshold or subject.embedding is None:
        return LivenessFrame(timestamp_ms=timestamp_ms, index=index)
    points = landmarks_106(engine, image, subject.box)
    yaw, pitch, roll = subject.yaw, subject.pitch, subject.roll
    if yaw is None:  # require_pose off: the engine measured no pose
        head = pose_from_landmarks_2d106(points, (image.shape[1], image.shape[0]))
        yaw, pitch, roll = head.yaw, head.pitch, head.roll
    return LivenessFrame(
        timestamp_ms=timestamp_ms,
        box=subject.box,
        landmarks=points,
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        embedding=subject.embedding,
        index=index,
        face=aligned_face(image, points),
    )


def observe(engine: FaceEngine, image: np.ndarray, timestamp_ms: float, index: int = 0) -> LivenessFrame:
    """Detect the subject (the largest confident face, as `FaceEngine.analyze` picks it) and measure it."""
    boxes, keypoints = engine.detector.detect(image)
    confident = [i for i in range(len(boxes)) if boxes[i, 4] >= engine.settings.detection_threshold]
    if not confident:
        return LivenessFrame(timestamp_ms=timestamp_ms, index=index)
    subject = max(confident, key=lambda i: (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1]))
    box = (float(boxes[subject, 0]), float(boxes[subject, 1]), float(boxes[subject, 2]), float(boxes[subject, 3]))
    points = landmarks_106(engine, image, box)
    head = pose_from_landmarks_2d106(points, (image.shape[1], image.shape[0]))
    return LivenessFrame(
        timestamp_ms=timestamp_ms,
        box=box,
        landmarks=points,
        yaw=head.yaw,
        pitch=head.pitch,
        roll=head.roll,
        embedding=engine.embed(image, keypoints[subject]),
        index=index,
        face=aligned_face(image, points),
    )


def check_frames(
    engine: FaceEngine,
    frames: Iterable[tuple[np.ndarray, float]],
    challenge: Challenge,
    on_progress: ProgressCallback | None = None,
    checker: LivenessChecker | None = None,
) -> LivenessResult:
    """Run the challenge over (image, timestamp in ms) pairs until it is decided or they run out."""
    require_landmarks_106(engine)
    checker = checker or LivenessChecker(challenge)
    shots = ((image, timestamp_ms, index) for index, (image, timestamp_ms) in enumerate(frames))
    _run(engine, shots, checker, on_progress)
    return checker.result()


def check_camera(
    engine: FaceEngine,
    camera: Camera,
    challenge: Challenge,
    on_progress: ProgressCallback | None = None,
    checker: LivenessChecker | None = None,
) -> LivenessResult:
    """One attempt over a camera (or a video file playing one), released when decided."""
    require_landmarks_106(engine)  # before the camera opens
    checker = checker or LivenessChecker(challenge)
    with camera:
        shots = ((shot.image, shot.timestamp_ms, shot.index) for shot in camera.frames())
        decided = _run(engine, shots, checker, on_progress)
        if decided is not None:
            camera.stop("liveness decided: " + ("live" if decided.live else "not live"))
    return checker.result()


def _run(
    engine: FaceEngine,
    shots: Iterable[tuple[np.ndarray, float, int]],
    checker: LivenessChecker,
    on_progress: ProgressCallback | None,
) -> LivenessProgress | None:
    """Feed (image, timestamp in ms, index) to the checker until it decides; the deciding progress, or None."""
    for image, timestamp_ms, index in shots:
        frame = observe(engine, image, timestamp_ms, index)
        progress = checker.update(frame)
        if on_progress is not None:
            on_progress(progress, frame)
        if checker.done:
            return progress
    return None
