"""POST /identify: who is this, among every enrolled user (1:N); from uploaded images, or with
?challenge_id=… from the frames answering a liveness challenge (as verify: `enroll_verify.read_inputs`)."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from facer_cli.errors import UsageError
from facer_cli.server.deps import ServerState, state_of, uploads_as_inputs
from facer_cli.server.errors import ChallengeError, error_responses
from facer_cli.server.routes.enroll_verify import BURST_BODY, ChallengeId, read_inputs
from facer_cli.server.uploads import read_form

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
    all_faces: Annotated[
        bool,
        Query(
            description="One photo: every face that passes the gates, each identified, no name given twice "
            "(`facer identify --all-faces --json`)."
        ),
    ] = False,
) -> Response:
    """Who is this? `decision` (identified, unknown, ambiguous), `user` when identified, the top
    candidates with their similarity, and the attempt recorded (`facer identify --json`). Every
    decision is a 200; a probe of explicit images needs min(min_valid_frames, images) usable (422).
    With challenge_id: the frames answering that liveness challenge; not live is 403 (recorded).
    With liveness = "required", plain images are refused (400).
    With all_faces=true: one uploaded photo, every face (`faces`: box, decision, user, similarity)."""
    state = state_of(request)
    if all_faces:
        return await identify_all_faces(request, state, top, challenge_id)
    frames_of = await read_inputs(request, state, challenge_id)

    def work() -> dict:
        facer = state.facer
        with facer.open_store("write") as store:  # 503 before the models run
            return facer.identify(frames_of, top=top, store=store).to_dict()

    return await state.gate.run_json(work)


async def identify_all_faces(
    request: Request, state: ServerState, top: int | None, challenge_id: str | None
) -> Response:
    """POST /identify?all_faces=true: one uploaded photo, every face decided (`Facer.identify_faces`)."""
    if challenge_id is not None:
        raise UsageError("all_faces takes one uploaded photo, not the frames of a liveness challenge")
    if state.settings.liveness == "required":
        raise ChallengeError('this server requires a liveness challenge (setting liveness = "required")')
    form = await read_form(request, state.settings.max_files_per_request)
    uploads = uploads_as_inputs(form.images_of("files", "file"))
    if len(uploads) != 1:
        raise UsageError(f"all_faces takes one photo, not {len(uploads)}")

    def work() -> dict:
        facer = state.facer
        with facer.open_store("write") as store:
            return facer.identify_faces(uploads[0], top=top, store=store).to_dict()

    return await state.gate.run_json(work)
