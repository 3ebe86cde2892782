"""POST /identify: who is this, among every enrolled user (1:N)."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from facer_cli.server.deps import state_of, uploads_as_inputs
from facer_cli.server.errors import error_responses
from facer_cli.server.uploads import IMAGES_BODY, read_form

router = APIRouter()


@router.post(
    "/identify",
    response_model=dict,  # the schema of what run_json sends
    tags=["users"],
    openapi_extra=IMAGES_BODY,
    responses=error_responses(400, 401, 413, 415, 422, 503),
)
async def identify(
    request: Request,
    top: Annotated[
        Optional[int], Query(ge=1, le=100, description="Candidates to list (default: identify_top).")
    ] = None,
) -> Response:
    """Who is this? `decision` (identified, unknown, ambiguous), `user` when identified, the top
    candidates with their similarity, and the attempt recorded (`facer identify --json`). Every
    decision is a 200; a probe of explicit images needs min(min_valid_frames, images) usable (422)."""
    state = state_of(request)
    form = await read_form(request, state.settings.max_files_per_request)
    uploads = uploads_as_inputs(form.images_of("files", "file"))

    def work() -> dict:
        facer = state.facer
        with facer.open_store("write") as store:  # 503 before the models run
            return facer.identify(lambda: facer.frames_from_uploads(uploads), top=top, store=store).to_dict()

    return await state.gate.run_json(work)
