"""Liveness challenges over HTTP: revealed one step at a time, timed by the server's clock, used once.

    POST /liveness/challenge                   → {"challenge_id", "step": the first step, "deadline_s", …}
    POST /liveness/challenge/{id}/frames       (the frames of the current step) → the next step, or the verdict
    POST /users/{name}/verify?challenge_id=…   (or /enroll, /identify) → decided on the challenge's frames

The server draws the challenge (the client never chooses it) and reveals its steps one at a time: the
next step is sent only once the frames of the current one have completed it, so a client learns each
move when it must make it. Timing is the server's: a request's frames are placed evenly between the
previous request (or the step's reveal) and this request's arrival, whatever the client stamps on them,
and each step's frames must arrive within its time limit (+ `stepwise.UPLOAD_SLACK_S`) of the reveal. So the
checker's continuity limits (`facer_cli.liveness.checker`) apply to the time that really passed: frames
sent faster or slower than they were taken show a head that jumps, or miss the deadline.

Held in memory until it expires (`challenge_ttl_s`); a decided challenge is then used once, by the
first verify, enroll or identify that names it, whatever its outcome. At most `capacity` challenges are
pending at once (503 beyond: memory stays bounded). A server restart forgets them all.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from facer_cli.liveness import Challenge, LivenessChecker, LivenessResult
from facer_cli.liveness.stepwise import StepClock
from facer_cli.server.errors import ChallengeError, ChallengeUsedError, ServerBusyError

if TYPE_CHECKING:
    from facer_cli.engine.reports import FrameReport
    from facer_cli.service.liveness import LiveCheck

# Pending challenges held at once; each holds at most liveness_max_frames analysed frames.
CAPACITY = 10_000


@dataclass
class Pending:
    """A challenge, how far it has been answered (`clock`: the server's time.time()) and its frames so far."""

    challenge: Challenge
    issued: float
    expires: float
    clock: StepClock
    check: LiveCheck | None = None  # made in a model slot with the first frames
    reports: list[FrameReport] = field(default_factory=list)
    result: LivenessResult | None = None  # the verdict, once decided
    busy: bool = False  # frames of it being checked now

    @property
    def step(self) -> int:
        return self.clock.step


@dataclass
class IssuedChallenge:
    challenge_id: str
    pending: Pending

    def to_dict(self) -> dict[str, Any]:
        pending = self.pending
        return {
            "challenge_id": self.challenge_id,
            "step": pending.clock.step_dict(),
            "frames_url": f"/liveness/challenge/{self.challenge_id}/frames",
            "issued_at": _iso(pending.issued),
            "expires_at": _iso(pending.expires),
            "ttl_s": round(pending.expires - pending.issued, 3),
        }


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="milliseconds")


class PendingChallenges:
    """Challenges issued and not yet used; `draw` makes a new one and `clock` tells the time (tests replace them)."""

    def __init__(
        self,
        ttl_s: float,
        draw: Callable[[], Challenge],
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.time,
    ):
        self.ttl_s = ttl_s
        self.draw = draw
        self.capacity = capacity
        self.clock = clock
        self._pending: dict[str, Pending] = {}
        self._used: dict[str, float] = {}  # used ids until they would have expired: 409, not 400
        self._lock = threading.Lock()

    def _prune(self, now: float) -> None:
        for key in [k for k, p in self._pending.items() if p.expires <= now]:
            del self._pending[key]
        for key in [k for k, expires in self._used.items() if expires <= now]:
            del self._used[key]

    def issue(self) -> IssuedChallenge:
        now = self.clock()
        with self._lock:
            self._prune(now)
            if len(self._pending) >= self.capacity:
                raise ServerBusyError(
                    f"{len(self._pending)} liveness challenges are pending (the most this server holds); retry shortly"
                )
            challenge_id = secrets.token_urlsafe(18)
            challenge = self.draw()
            pending = Pending(challenge, now, now + self.ttl_s, StepClock(challenge, now))
            self._pending[challenge_id] = pending
        return IssuedChallenge(challenge_id, pending)

    def _get(self, challenge_id: str, now: float) -> Pending:
        pending = self._pending.get(challenge_id)
        if pending is not None and pending.expires > now:
            return pending
        used = challenge_id in self._used
        if pending is not None:
            del self._pending[challenge_id]
        self._prune(now)
        if used:
            raise ChallengeUsedError("liveness challenge already used: each challenge is answered once")
        if pending is not None:
            raise ChallengeError(f"liveness challenge expired (challenges are valid for {self.ttl_s:g} s)")
        raise ChallengeError("unknown liveness challenge id (expired long ago, never issued, or the server restarted)")

    def begin(self, challenge_id: str, count: int) -> tuple[Pending, list[float]]:
        """Frames (`count` of them) for the current step arrive now: the challenge, marked busy, and their
        timestamps on the server's clock. Past the step's deadline, or frames too sparse or too dense for
        the time that passed, decide it (not live) and give no timestamps."""
        now = self.clock()
        with self._lock:
            pending = self._get(challenge_id, now)
            if pending.result is not None:
                raise ChallengeUsedError(
                    "liveness challenge already decided: send its id to verify, enroll or identify, or ask a new one"
                )
            if pending.busy:
                raise ChallengeUsedError("frames for this liveness challenge are being checked: one request at a time")
            stamps, reason = pending.clock.admit(count, now)
            if reason is not None:
                checker = pending.check.checker if pending.check is not None else LivenessChecker(pending.challenge)
                checker.stop(reason)
                pending.result = checker.result()
                return pending, []
            pending.busy = True
            return pending, stamps

    def finish(self, pending: Pending, kept: list[FrameReport], arrived: bool = True) -> None:
        """The frames of a `begin` were checked (`kept`: those the challenge used): move to the next step,
        decide, or wait for more frames of this one. `arrived` False: the request failed; nothing changes."""
        now = self.clock()
        with self._lock:
            pending.busy = False
            if not arrived or pending.check is None:
                return
            pending.reports += kept
            checker = pending.check.checker
            if checker.done:
                pending.result = checker.result()
            else:
                pending.clock.checked(checker.step_index, now)

    def take(self, challenge_id: str) -> Pending:
        """A decided challenge, removed: each is used once. Unknown or expired: 400; used: 409; not decided yet: 400."""
        now = self.clock()
        with self._lock:
            pending = self._get(challenge_id, now)
            if pending.result is None:
                raise ChallengeError(
                    f"liveness challenge not answered yet (step {pending.step + 1} is waiting for its frames): "
                    "POST the frames of each step to /liveness/challenge/{id}/frames until it is decided"
                )
            del self._pending[challenge_id]
            self._used[challenge_id] = pending.expires
            return pending

    def __len__(self) -> int:
        return len(self._pending)
