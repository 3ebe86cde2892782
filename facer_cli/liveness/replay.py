"""Replay attacks from one recording of a head turn, for tests and benchmarks, played under the HTTP rules.

The attacker holds one short clip of the victim turning right (the test clip: lin_manuel_miranda,
frames 82-210, who turns from +11° to -23°, back to +5° and on to -27°, never further left than +11°)
and answers a random challenge revealed one step at a time (`stepwise.StepClock`): each frame is cut
around the face (so a mirrored frame stays where the face was: the attacker's best case), and the
"left" steps need the right turn mirrored. Four kinds:

* ``mirrored``: the clip's real motion at its real pace, each left turn a right turn flipped (from the
  same turn as the right steps or from the other one), each turn played backwards to come back;
* ``reordered``: segments of the clip (each turn forwards or backwards, the return) picked at random
  per step and cut together where they meet;
* ``stills``: a few stills (frontal, turned right, mirrored for left), each held for a while;
* ``restamped``: the mirrored attack's frames sent 3 times slower to 6 times faster than they were taken.

And one beyond a single turn, ``two_turns``: the right steps from one of the clip's two turns, the left
steps from the other turn, mirrored (the mirror check is weakest here: see docs/liveness.md).

`play` runs a challenge under the server's rules (the same `StepClock` as `facer serve`) with a client
that sends its frames in requests; `genuine_client` is the clip's real head answering the challenge its
motion follows. Everything random comes from the `random.Random` given.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from facer_cli.liveness.challenge import Challenge, ChallengeStep
from facer_cli.liveness.checker import LivenessChecker, LivenessFrame, LivenessResult
from facer_cli.liveness.runner import observe
from facer_cli.liveness.stepwise import StepClock

if TYPE_CHECKING:
    from facer_cli.engine.face_engine import FaceEngine

KINDS = ("mirrored", "reordered", "stills", "restamped")
# Not one recording of one turn: two turns, the second mirrored for the other side (see docs/liveness.md).
TWO_TURNS = "two_turns"
CLIP_FPS = 29.97
# The test clip's segments (first, last frame), yaw in degrees as the engine reads it.
FRONTAL = 97  # +0.3°
TURN_1 = (90, 117)  # +7.5° → -22.7°
RETURN_1 = (117, 153)  # -22.7° → +4.7°
TURN_2 = (177, 210)  # +1.8° → -27.0°
HALF_TURNED, TURNED = 193, 207  # -15.0°, -25.1°
CLIP_RANGE = (82, 210)
CROP = 240  # pixels around the face's centre: the face stays put when a frame is mirrored
EVERY = 3  # every 3rd frame: 100 ms apart, a webcam's pace
CHUNK = 5  # frames per request

Request = tuple[list[LivenessFrame], float]  # the frames, and the seconds since the previous request
Client = Callable[[ChallengeStep], Iterator[Request]]


@dataclass
class Shot:
    """One clip frame as the engine saw it, cut around the face, and its mirror image."""

    index: int
    plain: LivenessFrame
    mirrored: LivenessFrame


def crop_around(image: np.ndarray, box: tuple[float, float, float, float], size: int = CROP) -> np.ndarray:
    """A `size` square centred on the box (edges replicated where it leaves the frame)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    matrix = np.array([[1.0, 0.0, size / 2 - cx], [0.0, 1.0, size / 2 - cy]])
    return cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)


def observe_clip(engine: FaceEngine, path: str, span: tuple[int, int] = CLIP_RANGE) -> dict[int, Shot]:
    """Every frame of `span` (inclusive), cut around the main face (the previous frame's box where the
    detector misses it) and observed plain and mirrored."""
    capture = cv2.VideoCapture(path)
    shots: dict[int, Shot] = {}
    box = None
    try:
        for index in range(span[1] + 1):
            ok, image = capture.read()
            if not ok:
                raise ValueError(f"{path}: ended at frame {index}, before {span[1]}")
            if index < span[0]:
                continue
            whole = observe(engine, image, 0.0, index)
            box = whole.box or box
            if box is None:
                continue
            crop = crop_around(image, box)
            shots[index] = Shot(
                index, observe(engine, crop, 0.0, index), observe(engine, cv2.flip(crop, 1), 0.0, index)
            )
    finally:
        capture.release()
    return shots


def play(challenge: Challenge, client: Client, checker: LivenessChecker | None = None) -> LivenessResult:
    """The challenge revealed step by step to `client` and timed by the server's clock (`StepClock`),
    as `facer serve` does; the frames a request sends past the end of its step are dropped."""
    checker = checker or LivenessChecker(challenge)
    clock = StepClock(challenge, 0.0)
    now = 0.0
    while not checker.done:
        step = clock.step
        advanced = False
        for frames, seconds in client(challenge.steps[step]):
            now += seconds
            stamps, reason = clock.admit(len(frames), now)
            if reason is not None:
                checker.stop(reason)
                break
            for frame, stamp in zip(frames, stamps, strict=True):
                timed = dataclasses.replace(frame, timestamp_ms=stamp)
                if checker.done or checker.step_index != step:
                    checker.carry(timed)  # sent before the next step was known
                else:
                    checker.update(timed)
            if checker.done:
                break
            if clock.checked(checker.step_index, now):
                advanced = True
                break
        if not advanced and not checker.done:
            checker.stop(f"the client sent nothing more for step {step + 1}")
    return checker.result()


def _requests(frames: list[LivenessFrame], frame_s: float, chunk: int = CHUNK) -> Iterator[Request]:
    for start in range(0, len(frames), chunk):
        part = frames[start : start + chunk]
        yield part, len(part) * frame_s


def genuine_client(shots: dict[int, Shot], first: int, every: int = EVERY, chunk: int = CHUNK) -> Client:
    """The clip's real head from frame `first` on, every `every`-th frame, sent `chunk` at a time as it is
    filmed: the frames taken while a step was being checked are lost, as a real client's would be."""
    indices = iter([i for i in range(first, CLIP_RANGE[1] + 1, every) if i in shots])
    frame_s = every / CLIP_FPS

    def respond(step: ChallengeStep) -> Iterator[Request]:
        while True:
            part = [shots[i].plain for _, i in zip(range(chunk), indices, strict=False)]
            if not part:
                return
            yield part, len(part) * frame_s

    return respond


class Attacker:
    """An attacker of one kind answering each revealed step from the clip (see the module docstring)."""

    def __init__(self, kind: str, shots: dict[int, Shot], rng: random.Random):
        if kind not in (*KINDS, TWO_TURNS):
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind, self.shots, self.rng = kind, shots, rng
        self.side = 0  # where the head was left: -1 right, +1 left, 0 frontal
        # Which turn of the clip plays the right steps, which the left ones (flipped): one recorded turn
        # (the longer: it reaches 27°) for both, or for two_turns the other turn for one side.
        other = rng.choice((-1, 1))
        self.turns = {-1: TURN_2, 1: TURN_2}
        if kind == TWO_TURNS:
            self.turns[other] = TURN_1
        self.last: list[int] = []  # the frames of the last turn
        self.speed = math.exp(rng.uniform(math.log(1 / 3), math.log(6))) if kind == "restamped" else 1.0

    def _frames(self, indices: list[int], side: int) -> list[LivenessFrame]:
        """The clip's frames, mirrored for the left side (yaw > 0 is a turn to the person's left)."""
        return [self.shots[i].mirrored if side > 0 else self.shots[i].plain for i in indices if i in self.shots]

    def _segment(self, span: tuple[int, int], reverse: bool = False) -> list[int]:
        indices = list(range(span[0], span[1] + 1, EVERY))
        return indices[::-1] if reverse else indices

    def _turn(self, side: int, target: float) -> list[int]:
        """A turn of the clip toward `side` (mirrored for the left), cut 2° past `target`: the attacker reads
        the target in the step and stops there, so that the next step starts from where this one ended."""
        preferred = self.turns[side]
        for span in (preferred, TURN_2):
            indices = self._steady(self._segment(span), side)
            frames = self._frames(indices, side)
            for k, frame in enumerate(frames):
                if frame.yaw is not None and side * frame.yaw >= target + 2.0:
                    return indices[: k + 1]
        return self._steady(self._segment(TURN_2), side)

    def _steady(self, indices: list[int], side: int) -> list[int]:
        """The frames of a turn whose |yaw| only grows: the attacker leaves out the clip's wobbles, which the
        wrong-way check could read as a turn back."""
        kept: list[int] = []
        reached = -math.inf
        for i, frame in zip(indices, self._frames(indices, side), strict=True):
            if frame.yaw is not None and side * frame.yaw > reached:
                kept.append(i)
                reached = side * frame.yaw
        return kept

    def _path(self, step: ChallengeStep) -> list[LivenessFrame]:
        side = {"left": 1, "right": -1}.get(step.move, 0)
        if self.kind == "stills":
            still = [FRONTAL] if side == 0 else ([HALF_TURNED] if self.rng.random() < 0.5 else []) + [TURNED]
            held = [i for i in still for _ in range(self.rng.randint(3, 8))]
            frames = self._frames(held, side)
        elif self.kind == "reordered":
            pool = [
                (TURN_1, False),
                (TURN_2, False),
                (TURN_1, True),
                (TURN_2, True),
                (RETURN_1, False),
                (RETURN_1, True),
            ]
            parts = self.rng.sample(pool, self.rng.randint(1, 3))
            frames = []
            for span, reverse in parts:
                frames += self._frames(self._segment(span, reverse), side or self.rng.choice((-1, 1)))
            frames += self._frames(self._turn(side, step.target), side) if side else self._frames([FRONTAL], 0)
        else:  # mirrored, restamped, two_turns: the last turn played backwards to the middle, then the next
            frames = self._frames(self.last[::-1], self.side)
            self.last = self._turn(side, step.target) if side else []
            frames += self._frames(self.last, side) if side else self._frames([FRONTAL], 0)
        self.side = side
        return frames

    def __call__(self, step: ChallengeStep) -> Iterator[Request]:
        frames = self._path(step)
        frames += [frames[-1]] * 10 if frames else []  # hold the last pose, in case the step is not done yet
        return _requests(frames, EVERY / CLIP_FPS / self.speed)


def attack(
    kind: str, shots: dict[int, Shot], seed: int, checker: Callable[[Challenge], LivenessChecker] = LivenessChecker
) -> tuple[Challenge, LivenessResult]:
    """One attack of `kind` against a random challenge (2-3 turns, seeded): the challenge and the verdict."""
    rng = random.Random(seed)
    challenge = Challenge.random(rng)
    return challenge, play(challenge, Attacker(kind, shots, rng), checker(challenge))
