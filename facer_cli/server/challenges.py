"""Liveness challenges over HTTP: issued by the server, answered once, soon.

    POST /liveness/challenge                       → {"challenge_id", "steps", "expires_at", …}
    POST /users/{name}/verify?challenge_id=…       (or /enroll) with the frames, each with its timestamp

The server draws the challenge (the client never chooses it), keeps it in memory until it expires
(`challenge_ttl_s`) and hands it out once: the first request that names it consumes it, whatever its
outcome, so a recording made for one challenge cannot be tried again. At most `capacity` challenges
are pending at once (503 beyond: memory stays bounded). A server restart forgets them all.

A burst's frames carry the client's timestamps (file names or a `timestamps` field). They cannot
span more time than has passed since the challenge was issued: the frames must have been taken after
the instructions were known.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any, Callable

from facer_cli.liveness import Challenge
from facer_cli.server.errors import ChallengeError, ChallengeUsedError, ServerBusyError

# Pending challenges held at once; each is a few hundred bytes.
CAPACITY = 10_000
# Clock slack when comparing a burst's span with the time since its challenge was issued.
SPAN_SLACK_S = 1.0
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass
class Pending:
    challenge: Challenge
    issued: float  # time.time()
    expires: float


@dataclass
class IssuedChallenge:
    challenge_id: str
    challenge: Challenge
    issued: float
    expires: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "challenge_id": self.challenge_id,
            **self.challenge.to_dict(),
            "issued_at": _iso(self.issued),
            "expires_at": _iso(self.expires),
            "ttl_s": round(self.expires - self.issued, 3),
        }


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="milliseconds")


class PendingChallenges:
    """Challenges issued and not yet answered; `draw` makes a new one (tests replace it)."""

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
        self._used: dict[str, float] = {}  # answered ids until they would have expired: 409, not 400
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
            pending = Pending(self.draw(), now, now + self.ttl_s)
            self._pending[challenge_id] = pending
        return IssuedChallenge(challenge_id, pending.challenge, pending.issued, pending.expires)

    def take(self, challenge_id: str) -> Pending:
        """The challenge, removed: each is answered once. Unknown or expired: 400; used: 409."""
        now = self.clock()
        with self._lock:
            pending = self._pending.pop(challenge_id, None)
            if pending is not None and pending.expires > now:
                self._used[challenge_id] = pending.expires
                return pending
            used = challenge_id in self._used
            self._prune(now)
        if used:
            raise ChallengeUsedError("liveness challenge already used: each challenge is answered once")
        if pending is not None:
            raise ChallengeError(f"liveness challenge expired (challenges are valid for {self.ttl_s:g} s)")
        raise ChallengeError("unknown liveness challenge id (expired long ago, never issued, or the server restarted)")

    def __len__(self) -> int:
        return len(self._pending)


def burst_timestamps(names: list[str], field: str | None) -> list[float]:
    """Each frame's timestamp in ms: from the `timestamps` field (a JSON list, or numbers separated by
    commas or spaces, one per file in order), else the last number in each file's name (`1200.jpg`,
    `frame-0001200.jpg`)."""
    if field is not None and field.strip():
        text = field.strip()
        try:
            values = json.loads(text) if text.startswith("[") else [float(v) for v in re.split(r"[,\s]+", text) if v]
            stamps = [float(v) for v in values]
        except (ValueError, TypeError):
            raise ChallengeError(f"timestamps must be numbers in ms, e.g. 0,200,400; got {text[:60]!r}") from None
        if len(stamps) != len(names):
            raise ChallengeError(f"{len(stamps)} timestamps for {len(names)} frames: give one per frame")
    else:
        stamps = []
        for name in names:
            numbers = _NUMBER.findall(PurePath(name).stem)
            if not numbers:
                raise ChallengeError(
                    f"{name}: name each frame with its timestamp in ms (e.g. 1200.jpg), or send a timestamps field"
                )
            stamps.append(float(numbers[-1]))
    if any(stamp != stamp or stamp < 0 or stamp > 1e12 for stamp in stamps):
        raise ChallengeError("timestamps must be finite, non-negative milliseconds")
    if len(set(stamps)) != len(stamps):
        raise ChallengeError("two frames have the same timestamp")
    return stamps


def check_span(stamps: list[float], pending: Pending, now: float) -> None:
    """The frames cannot span more time than has passed since the challenge was issued."""
    span_s = (max(stamps) - min(stamps)) / 1000.0
    elapsed = now - pending.issued
    if span_s > elapsed + SPAN_SLACK_S:
        raise ChallengeError(
            f"the frames span {span_s:.1f} s, but the challenge was issued only {elapsed:.1f} s ago: "
            "they were not taken after it"
        )
