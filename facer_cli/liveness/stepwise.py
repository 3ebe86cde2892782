"""A challenge revealed one step at a time and timed by the server's clock: the rules of the HTTP flow.

The client learns a step only when the frames of the one before have completed it, and it cannot say
when its frames were taken: a request's frames are placed evenly between the previous request's
arrival (or the challenge's issue) and this request's arrival. So a stream prepared before the steps were known has to be
cut and timed live, and frames sent faster or slower than they were taken show a head that jumps
(`checker.MOTION_*`) or miss the step's deadline. Pure bookkeeping: `facer_cli.server.challenges`
keeps one per pending challenge, and the tests and benchmarks run attacks through the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from facer_cli.liveness.challenge import Challenge

# A step's frames may arrive this long after its time limit: the upload of the last of them.
UPLOAD_SLACK_S = 1.0
# A request's frames are spread over the time since the previous one: more apart than this (fewer than
# 4 a second) leaves too much unseen between two frames; closer than this (over 50 a second) is faster
# than a camera takes them.
MAX_FRAME_INTERVAL_S = 0.25
MIN_FRAME_INTERVAL_S = 0.02


@dataclass
class StepClock:
    """Where a challenge asked step by step stands, in the server's time (seconds, any epoch)."""

    challenge: Challenge
    issued: float
    step: int = 0  # the step revealed and not yet done
    revealed: float = 0.0  # when that step was sent
    since: float = 0.0  # the next request's frames were taken after this
    arrived: float = 0.0  # when the last admitted request arrived

    def __post_init__(self) -> None:
        self.revealed = self.since = self.arrived = self.issued

    @property
    def deadline(self) -> float:
        """The latest the current step's frames may arrive."""
        return self.revealed + self.challenge.steps[self.step].time_limit_s + UPLOAD_SLACK_S

    def step_dict(self) -> dict:
        """The current step as the client sees it: its number, move, target and deadline."""
        step = self.challenge.steps[self.step]
        return {"number": self.step + 1, **step.to_dict(), "deadline_s": round(step.time_limit_s + UPLOAD_SLACK_S, 3)}

    def admit(self, count: int, now: float) -> tuple[list[float], str | None]:
        """`count` frames of the current step arrive at `now`: their timestamps (ms since the challenge was
        issued), or a reason to decide the challenge not live (too late, too few or too many frames)."""
        step = self.challenge.steps[self.step]
        span = now - self.since
        interval = span / max(count, 1)
        if now > self.deadline:
            what = {"straight": "look straight", "blink": "blink"}.get(step.move, f"turn {step.move}")
            return [], (
                f"did not {what} within {step.time_limit_s:g} s (step {self.step + 1}: its frames arrived "
                f"{now - self.revealed:.1f} s after it was sent, by the server's clock)"
            )
        if count == 0 or interval > MAX_FRAME_INTERVAL_S:
            return [], (
                f"too few frames: {count} in {span:.2f} s (at least one per {MAX_FRAME_INTERVAL_S * 1000:.0f} ms "
                "of the server's clock)"
            )
        if interval < MIN_FRAME_INTERVAL_S:
            return [], (
                f"frames faster than a camera takes them: {count} in {span * 1000:.0f} ms (at most one per "
                f"{MIN_FRAME_INTERVAL_S * 1000:.0f} ms of the server's clock)"
            )
        self.arrived = now
        return [(self.since + interval * (k + 1) - self.issued) * 1000.0 for k in range(count)], None

    def checked(self, step: int, now: float) -> bool:
        """The admitted frames were checked and the challenge is at `step` now: the next step is revealed
        at `now` (True), or more frames of this one are expected (False). Either way the next request's
        frames are placed after this one's arrival, not after the reveal: a stream has no gap in which a
        head could jump from one pose to another unseen."""
        self.since = self.arrived  # a client films without a break: its next frames follow these
        if step != self.step:
            self.step, self.revealed = step, now
            return True
        return False
