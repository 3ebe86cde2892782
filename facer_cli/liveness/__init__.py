"""Liveness: an active head-turn challenge checked by geometry, against prints and screens.

* `Challenge` — the random moves to perform (straight, then alternating turns, optionally a blink);
* `LivenessChecker` — consumes `LivenessFrame`s one by one, reports `LivenessProgress` for a live
  display and a `LivenessResult` (live or not, the reasons, per-frame cues);
* `parallax_residual` — what one homography cannot explain of the landmarks' motion between two
  views: near zero for a flat surface, clearly above it for a real head turned ≥ 15°;
* `observe` / `check_camera` / `check_frames` — the same with the engine's models on real frames;
* `facer_cli.liveness.attacks` — synthetic prints and screens for tests and benchmarks.

See docs/liveness.md for the measurements behind the thresholds and what this does not stop.
"""

from facer_cli.liveness.challenge import Challenge, ChallengeStep
from facer_cli.liveness.checker import (
    PARALLAX_MIN_RESIDUAL,
    PARALLAX_MIN_YAW_CHANGE,
    BlinkDetector,
    FrameCue,
    LivenessChecker,
    LivenessFrame,
    LivenessProgress,
    LivenessResult,
)
from facer_cli.liveness.geometry import eye_aspect_ratio, inter_ocular_distance, parallax_residual
from facer_cli.liveness.runner import check_camera, check_frames, observe

__all__ = [
    "PARALLAX_MIN_RESIDUAL",
    "PARALLAX_MIN_YAW_CHANGE",
    "BlinkDetector",
    "Challenge",
    "ChallengeStep",
    "FrameCue",
    "LivenessChecker",
    "LivenessFrame",
    "LivenessProgress",
    "LivenessResult",
    "check_camera",
    "check_frames",
    "eye_aspect_ratio",
    "inter_ocular_distance",
    "observe",
    "parallax_residual",
]
