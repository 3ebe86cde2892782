"""POST /identify: who is this, among every enrolled user (1:N); from uploaded images, or with
?challenge_id=… from the frames answering a liveness challenge (as verify: `enroll_verify.read_inputs`)."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from facer_cli.server.deps import state_of
from facer_cli.server.errors import error_responses
from facer_cli.server.routes.enroll_verify import BURST_BODY, ChallengeId, read_inputs

router = APIRouter()


@router.post(
    "/identify",
    response_model=dict,  # the schema of what run_json sends
    tags=["users"],
    openapi_extra=BURST_BODY,
    responses=error_responses(400, 401, 403, 409, 413, 415, 422, 503),
)
async def identify(
    request: Request,
    top: Annotated[
        Optional[int], Query(ge=1, le=100, description="Candidates to list (default: identify_top).")
    ] = None,
    challenge_id: ChallengeId = None,
) -> Response:
    """Who is this? `decision` (identified, unknown, ambiguous), `user` when identified, the top
    candidates with their similarity, and the attempt recorded (`facer identify --json`). Every
    decision is a 200; a probe of explicit images needs min(min_valid_frames, images) usable (422).
    With challenge_id: the frames answering that liveness challenge; not live is 403 (recorded).
    With liveness = "required", plain images are refused (400)."""
    state = state_of(request)
    frames_of = await read_inputs(request, state, challenge_id)

    def work() -> dict:
        facer = state.facer
        with facer.open_store("write") as store:  # 503 before the models run
            return facer.identify(frames_of, top=top, store=store).to_dict()

    return await state.gate.run_json(work)
