"""The random head-movement challenge: which moves, in which order, how far and how fast.

Drawn afresh for every attempt, so a recording made for one attempt does not fit the next.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

Move = Literal["straight", "left", "right", "blink"]
MOVES: tuple[Move, ...] = ("straight", "left", "right", "blink")

# "Straight" is reached when |yaw| ≤ this. The clip's singer, facing the audience, reads 1-11°;
# 10° keeps the frontal reference within 10° of the lens so that either turn moves ≥ 15° from it.
STRAIGHT_MAX_YAW = 10.0
# Turn targets (|yaw| to reach), drawn per step. ≥ 18° so that a turn moves the head at least
# PARALLAX_MIN_YAW_CHANGE (15°) away from a frontal reference; ≤ 25° so that the landmark model
# still sees both eyes (the clip's singer turns to 27° at most and the 106 points stay good).
TURN_TARGET_RANGE = (18.0, 25.0)
# Time to complete each step. The clip's singer, not even asked, goes from frontal to 20° in
# 0.6 s and back; 4 s leaves room for someone reading the instruction first.
STEP_TIME_LIMIT_S = 4.0
# A blink is short; its step only gets more time to allow for reading the instruction.
BLINK_TIME_LIMIT_S = 5.0

_TURNS: tuple[Move, Move] = ("left", "right")


@dataclass(frozen=True)
class ChallengeStep:
    """One move: for turns, `target` is the |yaw| in degrees to reach; for straight, the |yaw| not to exceed."""

    move: Move
    target: float
    time_limit_s: float

    @property
    def instruction(self) -> str:
        if self.move == "straight":
            return "look straight at the camera"
        if self.move == "blink":
            return "blink"
        return f"turn your head to your {self.move}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "move": self.move,
            "target": round(self.target, 1),
            "time_limit_s": self.time_limit_s,
            "instruction": self.instruction,
        }


@dataclass(frozen=True)
class Challenge:
    """The steps to perform in order. Always starts with "straight": its frame is the parallax reference."""

    steps: tuple[ChallengeStep, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.steps or self.steps[0].move != "straight":
            raise ValueError("a challenge starts with a 'straight' step (the frontal reference)")
        if not any(step.move in _TURNS for step in self.steps):
            raise ValueError("a challenge needs at least one turn: without one there is no parallax to measure")

    @classmethod
    def of(cls, *moves: Move, turn_target: float = 20.0, time_limit_s: float = STEP_TIME_LIMIT_S) -> Challenge:
        """A fixed challenge, e.g. ``Challenge.of("straight", "right")`` (tests, replaying a known clip)."""
        return cls(tuple(_step(move, turn_target, time_limit_s) for move in moves))

    @classmethod
    def random(
        cls,
        rng: random.Random | None = None,
        *,
        blink: bool = False,
        turn_range: tuple[float, float] = TURN_TARGET_RANGE,
        time_limit_s: float = STEP_TIME_LIMIT_S,
    ) -> Challenge:
        """Straight, then 2 or 3 alternating turns starting on a random side, each with a random target.

        `rng` defaults to the operating system's secure source (`secrets.SystemRandom`); pass a seeded
        `random.Random` for reproducible tests. With `blink`, a blink is inserted after a random turn.
        `turn_range` (degrees of |yaw|) and `time_limit_s` (per step) default to the measured constants.
        """
        rng = rng or secrets.SystemRandom()
        first = rng.choice(_TURNS)
        other: Move = "right" if first == "left" else "left"
        turns = [first, other, first][: rng.choice((2, 3))]
        steps = [_step("straight", 0.0, time_limit_s)]
        steps += [_step(move, rng.uniform(*turn_range), time_limit_s) for move in turns]
        if blink:
            steps.insert(rng.randint(2, len(steps)), _step("blink", 0.0, max(time_limit_s, BLINK_TIME_LIMIT_S)))
        return cls(tuple(steps))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Challenge:
        """The challenge `to_dict` described (a sidecar file, a stored challenge)."""
        steps = []
        for item in data.get("steps", []):
            move = item.get("move")
            if move not in MOVES:
                raise ValueError(f"unknown move {move!r}; expected one of {MOVES}")
            steps.append(ChallengeStep(move, float(item.get("target", 0.0)), float(item["time_limit_s"])))
        return cls(tuple(steps))

    @property
    def moves(self) -> tuple[Move, ...]:
        return tuple(step.move for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [step.to_dict() for step in self.steps]}


def _step(move: Move, turn_target: float, time_limit_s: float) -> ChallengeStep:
    """A step; `turn_target` only applies to turns (straight has its fixed limit, blink none)."""
    if move not in MOVES:
        raise ValueError(f"unknown move {move!r}; expected one of {MOVES}")
    if move == "straight":
        return ChallengeStep(move, STRAIGHT_MAX_YAW, float(time_limit_s))
    if move == "blink":
        return ChallengeStep(move, 0.0, max(float(time_limit_s), BLINK_TIME_LIMIT_S))
    return ChallengeStep(move, float(turn_target), float(time_limit_s))
