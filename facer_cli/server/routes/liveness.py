"""POST /liveness/challenge: a head-turn challenge to answer once (`facer_cli.server.challenges`)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from facer_cli.server.deps import state_of
from facer_cli.server.errors import error_responses

router = APIRouter()


@router.post("/liveness/challenge", tags=["liveness"], responses=error_responses(401, 503))
async def liveness_challenge(request: Request) -> dict:
    """A fresh random head-turn challenge to answer once, before `expires_at`: film the person doing
    `steps` in order (each |yaw| `target` within `time_limit_s`), then POST the frames with their
    timestamps to /users/{name}/verify (or /enroll) with ?challenge_id=…"""
    state = state_of(request)
    issued = state.challenges.issue()
    return {**issued.to_dict(), "max_frames": state.settings.liveness_max_frames}
