"""POST /liveness/challenge and POST /liveness/challenge/{id}/frames: a head-turn challenge revealed one
step at a time, its frames timed by the server's clock (`facer_cli.server.challenges`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from facer_cli.server.challenges import Pending
from facer_cli.server.deps import state_of, uploads_as_inputs
from facer_cli.server.errors import TooManyFilesError, error_responses
from facer_cli.server.gate import JSONBody, json_body
from facer_cli.server.uploads import multipart_body, read_form

router = APIRouter()

FRAMES_BODY = multipart_body(
    {
        "files": (
            "The frames taken since the step was sent (or since the last request), "
            "in the order they were taken; timed by the server's clock, not by their names.",
            True,
        ),
    }
)
ChallengePath = Annotated[str, Path(max_length=200, description="The challenge_id POST /liveness/challenge gave.")]


@router.post("/liveness/challenge", tags=["liveness"], responses=error_responses(401, 503))
async def liveness_challenge(request: Request) -> dict:
    """A fresh random head-turn challenge, revealed one step at a time: its first `step` (move, |yaw|
    `target`, `deadline_s`). Film the person doing it and POST the frames to `frames_url` within the
    deadline; the answer is the next step or the verdict. Then send `?challenge_id=` to
    /users/{name}/verify (or /enroll, /identify)."""
    state = state_of(request)
    issued = state.challenges.issue()
    return {**issued.to_dict(), "max_frames": state.settings.liveness_max_frames}


@router.post(
    "/liveness/challenge/{challenge_id}/frames",
    tags=["liveness"],
    response_model=dict,  # the schema of what run_json sends
    openapi_extra=FRAMES_BODY,
    responses=error_responses(400, 401, 409, 413, 415, 503),
)
async def liveness_frames(request: Request, challenge_id: ChallengePath) -> Response:
    """The frames of the current step, in the order taken. Answers `status` "next" with the next `step`
    (send its frames within its `deadline_s`), "more" (the step is not done yet: send more frames of it),
    or "decided" with `live` and `reason`. A step's frames are timed by the server's clock, spread between
    the previous request (or the step's reveal) and this one's arrival; too late, too few (under 4 a
    second) or too many (over 50 a second) decide the challenge: not live."""
    state = state_of(request)
    settings = state.settings
    form = await read_form(request, settings.liveness_max_frames)
    uploads = uploads_as_inputs(form.images_of("files", "file"))
    if len(uploads) > settings.liveness_max_frames:
        raise TooManyFilesError(f"too many frames: at most {settings.liveness_max_frames} (liveness_max_frames)")
    challenges = state.challenges
    pending, stamps = challenges.begin(challenge_id, len(uploads))
    if not stamps:  # decided without looking: too late, too few or too many frames
        return JSONBody(json_body(answer(challenge_id, pending, 0, False)))
    step = pending.step

    def work() -> dict:
        from facer_cli.service.liveness import LiveCheck

        kept: list = []
        arrived = False
        try:
            if pending.check is None:
                pending.check = LiveCheck(state.facer.engine, settings, pending.challenge)
            kept = state.facer.answer_challenge_step(list(zip(uploads, stamps, strict=True)), pending.check)
            if len(pending.reports) + len(kept) >= settings.liveness_max_frames:
                pending.check.checker.stop(
                    f"not decided within {settings.liveness_max_frames} frames (liveness_max_frames)"
                )
            arrived = True
        finally:
            challenges.finish(pending, kept, arrived)
        return answer(challenge_id, pending, len(kept), pending.step != step)

    return await state.gate.run_json(work)


def answer(challenge_id: str, pending: Pending, used: int, advanced: bool) -> dict:
    """What the client does next: send the next step's frames, more of this step's, or nothing (decided)."""
    data: dict = {"challenge_id": challenge_id, "frames_used": used}
    result = pending.result
    if result is not None:
        return {
            **data,
            "status": "decided",
            "live": result.live,
            "reason": result.reason,
            "liveness": result.to_dict(with_cues=False),
        }
    return {**data, "status": "next" if advanced else "more", "step": pending.clock.step_dict()}
