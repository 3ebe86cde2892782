"""Liveness policy: which runs ask for a challenge, which decisions need one passed, what an attempt
row keeps of the outcome, and the lockout after repeated failures.

Under `liveness = "required"` every decision that can open a door — verify and identify, from the
CLI, HTTP or Python, on camera frames or uploads — is made only on frames that passed a challenge
(`require_challenge`, called by the service itself, so no front end can leave it out).

The lockout reads the audit log: a user's attempts refused as not live (band "not_live") within
`liveness_window_s`; at `liveness_max_failures` of them, verify is refused for `liveness_lockout_s`
after the last one (0: failures are reported, nobody is locked out). Apart from the liveness core
(`facer_cli.liveness`, loaded only when a challenge runs), so verify and enroll stay light.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from facer_cli.errors import LivenessError, LivenessRequiredError, UserLockedError

if TYPE_CHECKING:
    from facer_cli.liveness import LivenessResult
    from facer_cli.settings import Settings
    from facer_cli.store.contract import StoreContract


def wanted(settings: "Settings", camera: bool, flag: bool | None = None) -> bool:
    """Whether a run asks for liveness: the flag when given, else the setting (camera runs only)."""
    if flag is not None:
        return flag
    return camera and settings.liveness in ("camera", "required")


# The decisions that can open a door: under liveness = "required" each needs a passed challenge.
DOOR_OPENING = ("verify", "identify")


def challenge_required(settings: "Settings", operation: str) -> bool:
    """Whether `operation` ("verify", "identify", "enroll", …) may be decided only on frames that passed
    a liveness challenge: the decisions that can open a door, under the setting "required"."""
    return settings.liveness == "required" and operation in DOOR_OPENING


def require_challenge(settings: "Settings", operation: str, result: LivenessResult | None) -> None:
    """`LivenessRequiredError` when `operation` needs a challenge (`challenge_required`) and the frames
    answered none (`result` None: images, uploads, a camera run without a challenge). A challenge
    answered and failed is the caller's to record and refuse (`refuse_not_live`)."""
    if result is None and challenge_required(settings, operation):
        raise LivenessRequiredError(
            f'the liveness setting is "required": {operation} needs frames that answered a liveness '
            "challenge (a camera run with the challenge, or an HTTP burst answering one), not plain images"
        )


def refuse_not_live(result: LivenessResult, frames: object = None, note: str = "") -> LivenessError:
    return LivenessError(f"not live: {result.reason}{note}", result=result, frames=frames)


def audit_fields(result: LivenessResult | None) -> dict:
    """What an attempt row keeps of the liveness outcome (no per-frame cues: they are for display)."""
    if result is None:
        return {}
    return {
        "live": result.live,
        "liveness_reason": result.reason or None,
        "liveness": json.dumps(result.to_dict(with_cues=False), ensure_ascii=False, separators=(",", ":")),
    }


# -- repeated failures and the lockout ---------------------------------------------------------
def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def duration(seconds: float) -> str:
    """600 → "10 min", 90 → "1 min 30 s", 45 → "45 s", 7200 → "2 h"."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else "", f"{secs} s" if secs else ""]
    return " ".join(part for part in parts if part) or "0 s"


@dataclass
class FailureWindow:
    """A user's liveness failures within the window, and the lockout they cause, if any."""

    user: str
    failures: list[str]  # times (ISO 8601) of the not_live attempts in the window, oldest first
    window_s: float
    max_failures: int
    lockout_s: float
    now: datetime

    @property
    def locked_until(self) -> datetime | None:
        if self.lockout_s <= 0 or len(self.failures) < self.max_failures:
            return None
        until = datetime.fromisoformat(self.failures[-1]) + timedelta(seconds=self.lockout_s)
        return until if until > self.now else None

    def describe(self) -> str:
        count = len(self.failures)
        text = f"{count} liveness failure{'s' if count != 1 else ''} for {self.user!r} in the last {duration(self.window_s)}"
        until = self.locked_until
        if until is not None:
            left = (until - self.now).total_seconds()
            text += f": locked until {until.astimezone():%H:%M:%S} (in {duration(max(1.0, left))})"
        elif self.lockout_s > 0:
            text += f" (locked out at {self.max_failures})"
        return text


def failure_window(
    store: "StoreContract", user: str, settings: "Settings", now: datetime | None = None
) -> FailureWindow:
    moment = now or datetime.now(timezone.utc)
    from facer_cli.store import NOT_LIVE

    since = _iso(moment - timedelta(seconds=settings.liveness_window_s))
    return FailureWindow(
        user,
        store.attempt_times(user, NOT_LIVE, since),
        settings.liveness_window_s,
        settings.liveness_max_failures,
        settings.liveness_lockout_s,
        moment,
    )


def locked_error(window: FailureWindow) -> UserLockedError:
    until = window.locked_until
    assert until is not None
    return UserLockedError(
        window.describe(),
        until=_iso(until),
        retry_after_s=(until - window.now).total_seconds(),
    )
