"""POST /users/{name}/enroll and /users/{name}/verify: from uploaded images, or with
?challenge_id=… from the frames that answered a liveness challenge step by step (`read_inputs`)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Callable

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from facer_cli.server.deps import ServerState, state_of, uploads_as_inputs
from facer_cli.server.errors import ChallengeError, error_responses
from facer_cli.server.paths import UserName
from facer_cli.server.uploads import multipart_body, read_form
from facer_cli.service import Frames
from facer_cli.store import parse_mode

router = APIRouter()


class EnrollMode(str, Enum):
    NEW = "new"
    REPLACE = "replace"
    ADD = "add"


BURST_BODY = multipart_body(
    {
        "files": ("Images; none with challenge_id (the challenge's own frames are used).", True),
        "file": ("One image (same as `files`).", False),
    }
)
ChallengeId = Annotated[
    str | None,
    Query(
        max_length=200,
        description="A challenge from POST /liveness/challenge, decided by posting each step's frames to "
        "/liveness/challenge/{id}/frames: its frames are the input, no files are read (single use; expires "
        "after challenge_ttl_s).",
    ),
]


async def read_inputs(request: Request, state: ServerState, challenge_id: str | None) -> Callable[[], Frames]:
    """The uploaded images, or with `challenge_id` the frames that answered that challenge step by step
    (taken now: single use, whatever comes next): a function giving their `Frames`, to run in a model slot."""
    settings = state.settings
    if challenge_id is None:
        if settings.liveness == "required":
            raise ChallengeError(
                'this server requires a liveness challenge (setting liveness = "required"): POST /liveness/challenge, '
                "post each step's frames to /liveness/challenge/{id}/frames, then send ?challenge_id=…"
            )
        form = await read_form(request, settings.max_files_per_request)
        uploads = uploads_as_inputs(form.images_of("files", "file"))
        return lambda: state.facer.frames_from_uploads(uploads)
    pending = state.challenges.take(challenge_id)
    steps = pending.result.steps_done if pending.result is not None else 0
    source = f"liveness challenge: {len(pending.reports)} frame(s), {steps} step(s) answered"
    frames = Frames(list(pending.reports), source, liveness=pending.result)
    return lambda: frames


@router.post(
    "/users/{name}/enroll",
    response_model=dict,  # the schema of what run_json sends
    tags=["users"],
    status_code=201,
    openapi_extra=BURST_BODY,
    responses=error_responses(400, 401, 403, 409, 413, 415, 422, 503),
)
async def users_enroll(
    request: Request,
    name: UserName,
    mode: Annotated[
        EnrollMode,
        Query(description="new: the user must not exist; replace: replace their templates; add: another template."),
    ] = EnrollMode.NEW,
    challenge_id: ChallengeId = None,
    allow_lookalike: Annotated[
        bool,
        Query(
            description="Enroll even when the template matches another enrolled person at or above "
            "identify_threshold (409 otherwise); the pair is recorded."
        ),
    ] = False,
    allow_different_face: Annotated[
        bool,
        Query(
            description="With mode add or replace: store it even when it does not match the user's enrolled "
            "template(s) at cosine_threshold_high (the same person whose face changed; 409 otherwise); the "
            "change is recorded in their audit log."
        ),
    ] = False,
) -> Response:
    """Enroll a person from images: at least min_valid_frames must be usable (`facer enroll --json`).
    With challenge_id: from the frames answering that liveness challenge; not live is 403."""
    state = state_of(request)
    frames_of = await read_inputs(request, state, challenge_id)

    def work() -> dict:
        facer = state.facer
        with facer.open_store() as store:  # 409 before the models run: enroll checks, then calls frames_of
            return facer.enroll(
                name,
                frames_of,
                mode=parse_mode(mode.value),
                allow_lookalike=allow_lookalike,
                allow_different_face=allow_different_face,
                store=store,
            ).to_dict()

    return await state.gate.run_json(work, status_code=201)


@router.post(
    "/users/{name}/verify",
    response_model=dict,  # the schema of what run_json sends
    tags=["users"],
    openapi_extra=BURST_BODY,
    responses=error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
)
async def users_verify(request: Request, name: UserName, challenge_id: ChallengeId = None) -> Response:
    """Is this the enrolled person? similarity, band (match, uncertain, no_match) and the attempt
    recorded (`facer verify --json`). A probe of explicit images needs min(min_valid_frames, images) usable.
    With challenge_id: the frames answering that liveness challenge; not live is 403 (recorded), and
    repeated failures lock the user out (429) when liveness_lockout_s is set."""
    state = state_of(request)
    frames_of = await read_inputs(request, state, challenge_id)

    def work() -> dict:
        facer = state.facer
        with facer.open_store("write") as store:  # 404, 409 or 429 before the models run
            return facer.verify(name, frames_of, store=store).to_dict()

    return await state.gate.run_json(work)
