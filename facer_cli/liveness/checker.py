"""The liveness state machine: frames in one at a time, a verdict with its reasons out.

Three checks, all from what the engine already computes per frame (box, 106 landmarks, pose,
embedding), so the extra cost per frame is a homography fit and a few distances:

1. motion as asked: the challenge's steps are reached in order, each within its time limit;
   turning the wrong way first fails at once (a looped recording does not wait its turn);
2. one face, one person: the tracked box never jumps and every embedding agrees with the
   template of the frames before it;
3. a real head is not flat: the landmarks of the turned frames do not follow the frontal frame's
   by one homography (see `geometry.parallax_residual`).

And three that make a stream synthesised from one recording expensive (HTTP frames, timed by the
server's clock, see `facer_cli.server.challenges`):

4. not a mirror image: a turn to one side is not the opposite turn flipped (`geometry.mirror_difference`);
5. continuous motion: no frame-to-frame jump in yaw or position beyond what a head moves in the time
   between the two frames;
6. the same face throughout: every embedding agrees with the first frame's.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facer_cli.liveness.challenge import Challenge, ChallengeStep
from facer_cli.liveness.geometry import (
    PARALLAX_POINTS_2D106,
    Box,
    box_iou,
    centre_shift,
    eye_aspect_ratio,
    inter_ocular_distance,
    mirror_difference,
    parallax_residual,
)

# Measured with benchmarks/bench_liveness.py (docs/liveness.md has the figures), on the median
# residual of the turned frames: 200 flat prints and screens turned 25-35° score 0.007-0.023 IOD,
# 40 prints bent on a cylinder 0.010-0.033, 20 prints turned 50-70° 0.011-0.027; 28 attempts of
# the clip's real head turn score 0.053-0.114. Any threshold in 0.035-0.050 separates them all;
# 0.04 sits nearer the attacks because the genuine side is one person in one clip, the less
# certain of the two.
PARALLAX_MIN_RESIDUAL = 0.04
# Parallax grows with the turn; below 15° a real head's residual sinks into landmark noise.
PARALLAX_MIN_YAW_CHANGE = 15.0
# Between consecutive frames of the clip's singer turning: box IoU ≥ 0.42 and centre shift ≤ 0.33
# box at 100 ms spacing, IoU ≥ 0.25 and shift ≤ 0.44 at 200 ms; its scene cut to another face:
# IoU 0, shift 0.81. Only both tests failing is a switch, so a fast but continuous move is not.
SAME_FACE_MIN_IOU = 0.3
SAME_FACE_MAX_CENTRE_SHIFT = 0.6
# Cosine to the mean of the earlier embeddings. The clip's singer turning ±27° scores 0.34-0.85
# against his own frontal frame (more against a mean); different people here score below 0.15.
SAME_FACE_MIN_COSINE = 0.25
# A face missing for longer than this (turned away, stepped out) ends the attempt.
MAX_FACE_GAP_MS = 1000.0
# Blink: EAR below BLINK_CLOSED_RATIO × the open-eye level (highest median EAR so far), then back
# above BLINK_OPEN_RATIO × it. Open eyes read 0.18-0.33 (median 0.29) on the clip; no real
# blink was measured (the clip is not labelled for them): these ratios are set on synthetic lids.
BLINK_CLOSED_RATIO = 0.65
BLINK_OPEN_RATIO = 0.85
# A turn counts as the wrong way once the yaw goes this far to the other side.
WRONG_WAY_YAW = 15.0
# Mirror images: the least `mirror_difference` between a frame turned one way and a frame turned the
# other way by about as much (|yaw| within MIRROR_PAIR_MAX_YAW_GAP of each other, both at least
# MIRROR_MIN_YAW from frontal). On the clip (frames 82-210 cut around the face, docs/liveness.md): his
# real head at +4..+11° against his flipped frames at -4..-11°, 482 pairs: 0.64-1.09 (median 0.92); one
# recorded turn mirrored against itself, the same frame: 0.10-0.28, frames 100 ms apart 0.10-0.53. An
# attempt's statistic is the least over its pairs, and an attack from one turn always has pairs of the
# same frame. Frames of two different turns (3 s apart) score 0.46-0.96: this does not separate those.
MIRROR_MIN_DIFFERENCE = 0.45
MIRROR_MIN_YAW = 4.0
MIRROR_PAIR_MAX_YAW_GAP = 3.0
# Continuity: between consecutive face frames dt ms apart, |Δyaw| ≤ MOTION_YAW_JITTER + MOTION_MAX_YAW_SPEED × dt
# and the inner face's landmarks move ≤ MOTION_SHIFT_JITTER + MOTION_MAX_SHIFT_SPEED × dt IOD. The clip's
# singer (frames 82-210, a quick unprompted turn on stage): |Δyaw| ≤ 3.8° at 33 ms, 10.9° at 100 ms,
# 15.3° at 200 ms (≤ 113°/s); the inner face moves ≤ 0.40 IOD at 33 ms, 1.08 at 100 ms, 1.51 at 200 ms.
# The limits allow 8.5°/0.7 IOD at 33 ms, 19°/1.5 IOD at 100 ms and 34°/2.7 IOD at 200 ms.
MOTION_YAW_JITTER = 4.0
MOTION_MAX_YAW_SPEED = 150.0  # degrees per second
MOTION_SHIFT_JITTER = 0.3
MOTION_MAX_SHIFT_SPEED = 12.0  # inter-ocular distances per second
# Every frame's embedding against the first face frame's. The clip's singer from frame 82 (+11°)
# through ±27°: ≥ 0.235 (≥ 0.27 from frame 84, ≥ 0.33 from a frontal first frame); different
# people in the test photos score below 0.15.
SAME_FACE_FIRST_MIN_COSINE = 0.2


@dataclass
class LivenessFrame:
    """What the checker needs from one frame; `box` None when no face was found."""

    timestamp_ms: float
    box: Box | None = None
    landmarks: np.ndarray | None = field(default=None, repr=False)  # (106, 2), image pixels
    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)  # unit length
    index: int = 0
    face: np.ndarray | None = field(default=None, repr=False)  # `geometry.aligned_face`: for mirror images


@dataclass
class FrameCue:
    """What the checker measured on one frame (for display, logs and the audit record)."""

    index: int
    timestamp_ms: float
    step: int
    yaw: float | None = None
    residual: float | None = None
    ear: float | None = None
    iou: float | None = None
    cosine: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in self.__dict__.items()}


@dataclass
class LivenessProgress:
    """The live display's view after each frame."""

    step: int
    steps: int
    instruction: str
    progress: float  # 0-1 toward the current step's target
    remaining_s: float
    done: bool
    live: bool | None  # None while undecided
    move: str = ""  # the current step's move ("straight", "left", "right", "blink"); "" once past the last


@dataclass
class LivenessResult:
    live: bool
    reasons: list[str]
    challenge: Challenge
    steps_done: int
    parallax: float | None  # median residual over the turned frames, IOD
    blinked: bool
    elapsed_ms: float
    cues: list[FrameCue]
    mirror: float | None = None  # least mirror difference of opposite turns; None when none were compared

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def to_dict(self, with_cues: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "live": self.live,
            "reason": self.reason,
            "reasons": list(self.reasons),
            "challenge": self.challenge.to_dict(),
            "steps_done": self.steps_done,
            "parallax": None if self.parallax is None else round(self.parallax, 4),
            "blinked": self.blinked,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "frames": len(self.cues),
            "mirror": None if self.mirror is None else round(self.mirror, 4),
        }
        if with_cues:
            data["cues"] = [cue.to_dict() for cue in self.cues]
        return data


class BlinkDetector:
    """Counts blinks in a stream of eye aspect ratios: a dip below BLINK_CLOSED_RATIO × the open-eye
    level, then a recovery above BLINK_OPEN_RATIO × it."""

    def __init__(self) -> None:
        self.ears: list[float] = []
        self.open_level = 0.0
        self.closed = False
        self.count = 0

    def update(self, ear: float) -> bool:
        """Take one frame's EAR; True when it completes a blink."""
        self.ears.append(ear)
        if len(self.ears) < 3:
            return False  # no open-eye level yet
        # The highest median so far: eyes held shut for a while must not become the new "open".
        self.open_level = max(self.open_level, statistics.median(self.ears))
        if ear < BLINK_CLOSED_RATIO * self.open_level:
            self.closed = True
        elif self.closed and ear > BLINK_OPEN_RATIO * self.open_level:
            self.closed = False
            self.count += 1
            return True
        return False


def _direction(step: ChallengeStep) -> int:
    """+1 for left (yaw > 0: the person turns to their left), -1 for right, 0 otherwise."""
    return {"left": 1, "right": -1}.get(step.move, 0)


class LivenessChecker:
    """Feed it `LivenessFrame`s in time order with `update`; read `result()` once `done`."""

    def __init__(
        self,
        challenge: Challenge,
        *,
        parallax_min_residual: float = PARALLAX_MIN_RESIDUAL,
        mirror_min_difference: float = MIRROR_MIN_DIFFERENCE,
    ):
        self.challenge = challenge
        self.parallax_min_residual = parallax_min_residual
        self.mirror_min_difference = mirror_min_difference  # 0: no mirror check (benchmarks measure without it)
        self.cues: list[FrameCue] = []
        self.reasons: list[str] = []
        self._step = 0
        self._step_started_ms: float | None = None
        self._first_ms: float | None = None
        self._last_ms = 0.0
        self._last_face: LivenessFrame | None = None
        self._embeddings: list[np.ndarray] = []
        self._reference: LivenessFrame | None = None
        self._reference_iod = 0.0
        self._turned_residuals: list[float] = []
        self._blink = BlinkDetector()
        self._blinks_before_step = 0
        self._wrong_way_armed = False
        self._progress = 0.0
        self._parallax: float | None = None
        self._live: bool | None = None
        self._first_embedding: np.ndarray | None = None
        self._turned_faces: list[tuple[float, np.ndarray]] = []  # (yaw, aligned face) of the turned frames
        self._mirror: float | None = None

    # -- state ----------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._live is not None

    @property
    def step_index(self) -> int:
        """The index of the step being answered (len(steps) once all are done)."""
        return self._step

    @property
    def current_step(self) -> ChallengeStep | None:
        steps = self.challenge.steps
        return steps[self._step] if self._step < len(steps) else None

    def progress(self) -> LivenessProgress:
        step = self.current_step
        started = self._step_started_ms if self._step_started_ms is not None else self._last_ms
        remaining = 0.0 if step is None else max(0.0, step.time_limit_s - (self._last_ms - started) / 1000.0)
        return LivenessProgress(
            step=min(self._step + 1, len(self.challenge.steps)),
            steps=len(self.challenge.steps),
            instruction="" if step is None else step.instruction,
            progress=self._progress,
            remaining_s=remaining,
            done=self.done,
            live=self._live,
            move="" if step is None else step.move,
        )

    def result(self) -> LivenessResult:
        """The verdict; an attempt that ended before its last step (stream over) is not live."""
        if not self.done:
            step = self.current_step
            self._fail(
                f"stopped before the challenge ended (at step {self._step + 1}: "
                f"{step.instruction if step else 'parallax'})"
            )
        return LivenessResult(
            live=bool(self._live),
            reasons=list(self.reasons),
            challenge=self.challenge,
            steps_done=self._step,
            parallax=self._parallax,
            blinked=self._blink.count > 0,
            elapsed_ms=self._last_ms - (self._first_ms if self._first_ms is not None else self._last_ms),
            cues=self.cues,
            mirror=self._mirror,
        )

    def stop(self, reason: str) -> None:
        """Decide now, not live, for a reason found outside the frames (a deadline of the server's clock)."""
        if not self.done:
            self._fail(reason)

    def _fail(self, reason: str) -> None:
        self.reasons.append(reason)
        self._live = False

    # -- one frame --------------------------------------------------------
    def update(self, frame: LivenessFrame) -> LivenessProgress:
        """Take one frame; once `done`, further frames are ignored."""
        if self.done:
            return self.progress()
        if self._first_ms is None:
            self._first_ms = frame.timestamp_ms
        if self._step_started_ms is None:
            self._step_started_ms = frame.timestamp_ms
        self._last_ms = frame.timestamp_ms
        cue = FrameCue(index=frame.index, timestamp_ms=frame.timestamp_ms, step=self._step + 1, yaw=frame.yaw)
        self.cues.append(cue)
        if frame.box is None or frame.landmarks is None or frame.yaw is None:
            self._check_gap(frame)
        elif self._same_face(frame, cue) and self._continuous(frame) and self._not_mirrored(frame):
            self._measure(frame, cue)
            self._advance(frame)
        if not self.done:
            self._check_time(frame)
        return self.progress()

    def carry(self, frame: LivenessFrame) -> None:
        """A frame taken after the current step began but before the client could know it (sent with the
        frames that completed the step before): it does not answer the step, but the motion, the face and
        the mirror check run through it, so that no jump hides between two steps."""
        if self.done:
            return
        self._last_ms = max(self._last_ms, frame.timestamp_ms)
        cue = FrameCue(index=frame.index, timestamp_ms=frame.timestamp_ms, step=self._step, yaw=frame.yaw)
        self.cues.append(cue)
        if frame.box is None or frame.landmarks is None or frame.yaw is None:
            self._check_gap(frame)
        elif self._same_face(frame, cue) and self._continuous(frame):
            self._not_mirrored(frame)

    def _check_gap(self, frame: LivenessFrame) -> None:
        seen = self._last_face.timestamp_ms if self._last_face is not None else self._first_ms
        if seen is not None and frame.timestamp_ms - seen > MAX_FACE_GAP_MS:
            self._fail(f"face lost for more than {MAX_FACE_GAP_MS / 1000:g} s")

    def _same_face(self, frame: LivenessFrame, cue: FrameCue) -> bool:
        """Box continuity with the last face frame, and the embedding against the earlier ones."""
        previous = self._last_face
        assert frame.box is not None
        if previous is not None and previous.box is not None:
            cue.iou = box_iou(previous.box, frame.box)
            shift = centre_shift(previous.box, frame.box)
            if cue.iou < SAME_FACE_MIN_IOU and shift > SAME_FACE_MAX_CENTRE_SHIFT:
                self._fail(
                    f"face changed: the box jumped (IoU {cue.iou:.2f} < {SAME_FACE_MIN_IOU:g}, "
                    f"centre moved {shift:.2f} box > {SAME_FACE_MAX_CENTRE_SHIFT:g})"
                )
                return False
        if frame.embedding is not None and self._embeddings:
            template = np.mean(self._embeddings, axis=0)
            cue.cosine = float(np.dot(template, frame.embedding) / (np.linalg.norm(template) or 1.0))
            if cue.cosine < SAME_FACE_MIN_COSINE:
                self._fail(f"face changed: another person (similarity {cue.cosine:.2f} < {SAME_FACE_MIN_COSINE:g})")
                return False
        if frame.embedding is not None and self._first_embedding is not None:
            first = float(np.dot(self._first_embedding, frame.embedding))
            if first < SAME_FACE_FIRST_MIN_COSINE:
                self._fail(
                    f"face changed: not the first frame's face (similarity {first:.2f} < {SAME_FACE_FIRST_MIN_COSINE:g})"
                )
                return False
        if frame.embedding is not None:
            self._embeddings.append(np.asarray(frame.embedding, dtype=np.float64))
            if self._first_embedding is None:
                self._first_embedding = self._embeddings[0]
        return True

    def _continuous(self, frame: LivenessFrame) -> bool:
        """No jump from the last face frame beyond what a head turns and moves in the time between them."""
        previous, self._last_face = self._last_face, frame
        if previous is None or previous.landmarks is None or previous.yaw is None:
            return True
        assert frame.landmarks is not None and frame.yaw is not None
        dt_s = max(0.0, frame.timestamp_ms - previous.timestamp_ms) / 1000.0
        turned = abs(frame.yaw - previous.yaw)
        allowed = MOTION_YAW_JITTER + MOTION_MAX_YAW_SPEED * dt_s
        if turned > allowed:
            self._fail(
                f"motion not continuous: the head turned {turned:.0f}° in {dt_s * 1000:.0f} ms "
                f"(at most {allowed:.0f}°: {MOTION_MAX_YAW_SPEED:g}°/s)"
            )
            return False
        index = list(PARALLAX_POINTS_2D106)
        iod = inter_ocular_distance(previous.landmarks)
        shift = float(np.linalg.norm((frame.landmarks[index] - previous.landmarks[index]).mean(axis=0))) / (iod or 1.0)
        allowed = MOTION_SHIFT_JITTER + MOTION_MAX_SHIFT_SPEED * dt_s
        if shift > allowed:
            self._fail(
                f"motion not continuous: the face moved {shift:.2f} IOD in {dt_s * 1000:.0f} ms (at most {allowed:.2f})"
            )
            return False
        return True

    def _not_mirrored(self, frame: LivenessFrame) -> bool:
        """A turned frame is not the mirror image of a frame turned the other way by about as much."""
        if frame.face is None or frame.yaw is None or abs(frame.yaw) < MIRROR_MIN_YAW:
            return True
        for yaw, face in self._turned_faces:
            if yaw * frame.yaw < 0 and abs(abs(yaw) - abs(frame.yaw)) <= MIRROR_PAIR_MAX_YAW_GAP:
                difference = mirror_difference(frame.face, face)
                self._mirror = difference if self._mirror is None else min(self._mirror, difference)
        self._turned_faces.append((frame.yaw, frame.face))
        if self._mirror is not None and self._mirror < self.mirror_min_difference:
            self._fail(
                f"mirror image: a turn is the opposite turn flipped (difference {self._mirror:.2f} < "
                f"{self.mirror_min_difference:g})"
            )
            return False
        return True

    def _measure(self, frame: LivenessFrame, cue: FrameCue) -> None:
        assert frame.landmarks is not None and frame.yaw is not None
        cue.ear = eye_aspect_ratio(frame.landmarks)
        self._blink.update(cue.ear)
        reference = self._reference
        if reference is not None and reference.landmarks is not None and reference.yaw is not None:
            cue.residual = parallax_residual(reference.landmarks, frame.landmarks, self._reference_iod)
            if abs(frame.yaw - reference.yaw) >= PARALLAX_MIN_YAW_CHANGE:
                self._turned_residuals.append(cue.residual)

    def _advance(self, frame: LivenessFrame) -> None:
        """Move through the steps this frame completes (or fail on a wrong-way turn)."""
        step = self.current_step
        assert step is not None and frame.yaw is not None and frame.landmarks is not None
        yaw = frame.yaw
        if step.move == "straight":
            self._progress = min(1.0, step.target / max(abs(yaw), 1e-6))
            if abs(yaw) <= step.target:
                self._reference, self._reference_iod = frame, inter_ocular_distance(frame.landmarks)
                self._next_step(frame)
        elif step.move == "blink":
            blinked = self._blink.count > self._blinks_before_step  # a blink during this step, not before
            self._progress = 1.0 if blinked else 0.0
            if blinked:
                self._next_step(frame)
        else:
            sign = _direction(step)
            needed = self._turn_needed(step, sign)
            self._progress = max(0.0, min(1.0, sign * yaw / needed))
            if sign * yaw >= needed:
                self._next_step(frame)
            elif sign * yaw > -WRONG_WAY_YAW:
                self._wrong_way_armed = True  # back on the asked side of the wrong-way line
            elif self._wrong_way_armed:
                other = "left" if step.move == "right" else "right"
                self._fail(f"turned {other} when asked to turn {step.move} (step {self._step + 1})")

    def _turn_needed(self, step: ChallengeStep, sign: int) -> float:
        """The step's target, raised when needed so the turn leaves the frontal reference by enough to
        show parallax (a reference at -6° and a right turn to -20° would move only 14°)."""
        reference = self._reference
        if reference is None or reference.yaw is None:
            return step.target
        return max(step.target, sign * reference.yaw + PARALLAX_MIN_YAW_CHANGE)

    def _next_step(self, frame: LivenessFrame) -> None:
        self._step += 1
        self._step_started_ms = frame.timestamp_ms
        self._wrong_way_armed = False
        self._blinks_before_step = self._blink.count
        if self.current_step is None:
            self._decide_parallax()

    def _check_time(self, frame: LivenessFrame) -> None:
        step = self.current_step
        if step is None or self._step_started_ms is None:
            return
        if frame.timestamp_ms - self._step_started_ms > step.time_limit_s * 1000.0:
            what = {"straight": "look straight", "blink": "blink"}.get(step.move, f"turn {step.move}")
            self._fail(f"did not {what} within {step.time_limit_s:g} s (step {self._step + 1})")

    def _decide_parallax(self) -> None:
        if not self._turned_residuals:
            self._fail(
                f"no parallax measured: the head never turned {PARALLAX_MIN_YAW_CHANGE:g}° from the frontal frame"
            )
            return
        self._parallax = statistics.median(self._turned_residuals)
        if self._parallax < self.parallax_min_residual:
            self._fail(
                f"no parallax: flat surface (residual {self._parallax:.3f} IOD < {self.parallax_min_residual:g})"
            )
            return
        self._live = True
