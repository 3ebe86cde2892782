"""POST /token/generate and POST /compare: templates from images, and two faces compared."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from facer_cli.server.deps import state_of, uploads_as_inputs
from facer_cli.server.errors import error_responses
from facer_cli.server.uploads import IMAGES_BODY, multipart_body, read_form

router = APIRouter()


@router.post(
    "/token/generate",
    response_model=dict,  # the schema of what run_json sends
    tags=["templates"],
    openapi_extra=IMAGES_BODY,
    responses=error_responses(400, 401, 413, 415, 422, 503),
)
async def token_generate(request: Request) -> Response:
    """The template of the uploaded images (`token`: 512 floats, norm 1) and the per-frame reports,
    as `facer capture --json`. min(min_valid_frames, number of images) must be usable."""
    state = state_of(request)
    form = await read_form(request, state.settings.max_files_per_request)
    uploads = uploads_as_inputs(form.images_of("files", "file"))

    def work() -> dict:
        return state.facer.capture(state.facer.frames_from_uploads(uploads)).to_dict()

    return await state.gate.run_json(work)


@router.post(
    "/compare",
    response_model=dict,  # the schema of what run_json sends
    tags=["templates"],
    openapi_extra=multipart_body(
        {
            "a": ("An image (its accepted subject) or a .npy template.", False),
            "b": ("An image (its accepted subject) or a .npy template.", False),
        }
    ),
    responses=error_responses(400, 401, 413, 415, 503),
)
async def compare(request: Request) -> Response:
    """Cosine similarity of two faces or templates and the band (match, uncertain, no_match),
    as `facer compare --json`."""
    state = state_of(request)
    form = await read_form(request, state.settings.max_files_per_request)
    a, b = uploads_as_inputs([form.images("a", npy=True)[0], form.images("b", npy=True)[0]])
    return await state.gate.run_json(lambda: state.facer.compare(a, b).to_dict())
