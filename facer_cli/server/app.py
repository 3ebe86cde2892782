"""The HTTP service: FastAPI over the service layer, the same operations the CLI calls.

    uvicorn "facer_cli.server.app:create_app" --factory     # or: facer serve

Each endpoint parses its input (multipart images, a user name), calls `Facer`
(`facer_cli.service`) and returns the result's `to_dict()` — the CLI's `--json`
for the same operation. Model work runs in worker threads behind `ModelGate`: at
most `server_concurrency` at once, at most `server_queue_size` waiting, 503 beyond.
Errors become status codes in one place (`facer_cli.server.errors`); who may
connect is decided in `facer_cli.server.exposure`, on every request.

Started by uvicorn's own command line, the app keeps its body limits and deadline
(408), its path rules and its docs; the header deadline, keep-alive and connection
cap are `facer serve`'s (`facer_cli.server.edge`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, AsyncIterator, Callable, Optional, TypeVar

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from facer_cli import __version__
from facer_cli.server.challenges import PendingChallenges, burst_timestamps, check_span
from facer_cli.server.docs import install_docs
from facer_cli.server.errors import (
    AuthenticationError,
    ChallengeError,
    ServerBusyError,
    error_responses,
    install_error_handlers,
    response_for,
)
from facer_cli.server.exposure import check_exposure, is_ip_address
from facer_cli.server.paths import PathMiddleware, user_name_param
from facer_cli.server.uploads import BodyLimitMiddleware, Upload, read_form
from facer_cli.service import Facer, Frames, InputFile
from facer_cli.settings import Settings
from facer_cli.store import parse_mode

log = logging.getLogger("facer.server")
T = TypeVar("T")

API_KEY_HEADER = "X-API-Key"


# -- bounded concurrency -----------------------------------------------------
class ModelGate:
    """At most `slots` model jobs at once, each in a worker thread; at most `queue_size`
    requests waiting for a slot, each for at most `timeout_s`; beyond: `ServerBusyError` (503)."""

    def __init__(self, slots: int, queue_size: int, timeout_s: float):
        self.slots = slots
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.running = 0
        self.waiting = 0
        self.refused = 0
        self._semaphore = asyncio.Semaphore(slots)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._semaphore.locked() and self.waiting >= self.queue_size:
            self.refused += 1
            raise ServerBusyError(
                f"busy: {self.running} request(s) running the models and {self.waiting} waiting "
                f"(server_concurrency {self.slots}, server_queue_size {self.queue_size}); retry shortly"
            )
        self.waiting += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._semaphore.acquire()
        except TimeoutError:
            self.refused += 1
            raise ServerBusyError(
                f"busy: no model slot came free within {self.timeout_s:g} s (server_queue_timeout_s); retry shortly"
            ) from None
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            # Not abandoned on cancellation: the slot stays taken until the thread is done.
            return await anyio.to_thread.run_sync(fn, *args)
        finally:
            self.running -= 1
            self._semaphore.release()

    async def run_json(self, fn: Callable[[], dict], status_code: int = 200) -> Response:
        """`run(fn)` answered as JSON encoded in the worker thread too: the event loop, which reads
        every upload, does not also encode each 512-float template (FastAPI would check and encode
        the returned dict there first)."""
        body = await self.run(lambda: json_body(fn()))
        return JSONBody(body, status_code=status_code)

    def to_dict(self) -> dict:
        return {
            "slots": self.slots,
            "running": self.running,
            "waiting": self.waiting,
            "queue_size": self.queue_size,
            "refused": self.refused,
        }


def json_body(data: dict) -> bytes:
    """`data` as the bytes Starlette's JSONResponse sends."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


class JSONBody(Response):
    """A JSON answer already encoded (`ModelGate.run_json`)."""

    media_type = "application/json"


@dataclass
class ServerState:
    facer: Facer
    gate: ModelGate
    started: float
    challenges: PendingChallenges

    @property
    def settings(self) -> Settings:
        return self.facer.settings


def state_of(request: Request) -> ServerState:
    return request.app.state.facer


# -- access ------------------------------------------------------------------
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="The api_key setting, when it is set (every endpoint but /health).",
)


async def require_api_key(request: Request, key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    expected = request.app.state.facer_settings.api_key
    if expected is None:
        return
    if not key:
        raise AuthenticationError(f"missing {API_KEY_HEADER} header: this server requires an API key")
    if not hmac.compare_digest(key.encode("utf-8", "surrogateescape"), expected.encode("utf-8")):
        raise AuthenticationError(f"wrong API key in the {API_KEY_HEADER} header")


class ExposureMiddleware:
    """Every request is refused (403) when it reached the server on a non-loopback address while no
    API key is set — whoever started the app, `facer serve` or uvicorn's own command line."""

    def __init__(self, app: ASGIApp, api_key: str | None, allow_insecure_remote: bool):
        self.app = app
        self.api_key = api_key
        self.allow_insecure_remote = allow_insecure_remote

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        # A real socket reports the IP address it accepted on; other transports (a unix socket,
        # an in-process test client) report none, and reach no other machine by themselves.
        if scope["type"] == "http" and server and is_ip_address(str(server[0])):
            from facer_cli.server.exposure import ExposureError

            try:
                check_exposure(str(server[0]), self.api_key, self.allow_insecure_remote)
            except ExposureError as exc:
                await response_for(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def uploads_as_inputs(uploads: list[Upload]) -> list[InputFile]:
    return [InputFile.from_bytes(upload.name, upload.data) for upload in uploads]


# -- the app -------------------------------------------------------------------
class EnrollMode(str, Enum):
    NEW = "new"
    REPLACE = "replace"
    ADD = "add"


def multipart_body(fields: dict[str, tuple[str, bool]]) -> dict:
    """OpenAPI request body for multipart image fields (the body is parsed in memory by hand)."""
    properties = {}
    for name, (description, many) in fields.items():
        item = {"type": "string", "format": "binary"}
        properties[name] = (
            {"type": "array", "items": item, "description": description}
            if many
            else {**item, "description": description}
        )
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"type": "object", "properties": properties}}},
        }
    }


IMAGES_BODY = multipart_body(
    {
        "files": ("One or more images (JPEG, PNG, WebP, …), one face each.", True),
        "file": ("One image: the original API's field name (same as one `files`).", False),
    }
)
BURST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "Images; with challenge_id, the frames answering it, each named with "
                            "its timestamp in ms (e.g. 1200.jpg) unless `timestamps` is sent.",
                        },
                        "file": {"type": "string", "format": "binary", "description": "One image (same as `files`)."},
                        "timestamps": {
                            "type": "string",
                            "description": "With challenge_id: each frame's timestamp in ms, in the order of the "
                            "files (0,200,400 or a JSON list).",
                        },
                    },
                }
            }
        },
    }
}
ChallengeId = Annotated[
    str | None,
    Query(
        max_length=200,
        description="A challenge from POST /liveness/challenge: the files are then the frames answering it "
        "(single use; expires after challenge_ttl_s).",
    ),
]
# The name segment of /users/{name}…, percent-decoded as UTF-8 (`facer_cli.server.paths`).
UserName = Annotated[str, Depends(user_name_param)]


async def read_inputs(request: Request, state: "ServerState", challenge_id: str | None) -> Callable[[], Frames]:
    """The uploaded images, or with `challenge_id` the frames answering that challenge (taken now: single
    use, whatever comes next): a function giving their `Frames`, to run in a model slot."""
    settings = state.settings
    if challenge_id is None:
        if settings.liveness == "required":
            raise ChallengeError(
                'this server requires a liveness challenge (setting liveness = "required"): POST /liveness/challenge, '
                "then send the frames answering it with ?challenge_id=…"
            )
        form = await read_form(request, settings.max_files_per_request)
        uploads = uploads_as_inputs(form.images_of("files", "file"))
        return lambda: state.facer.frames_from_uploads(uploads)
    pending = state.challenges.take(challenge_id)
    form = await read_form(request, max(settings.max_files_per_request, settings.liveness_max_frames))
    uploads = uploads_as_inputs(form.images_of("files", "file"))
    if len(uploads) > settings.liveness_max_frames:
        from facer_cli.server.errors import TooManyFilesError

        raise TooManyFilesError(f"too many frames: at most {settings.liveness_max_frames} (liveness_max_frames)")
    stamps = burst_timestamps([upload.name for upload in uploads], form.fields.get("timestamps"))
    check_span(stamps, pending, state.challenges.clock())
    pairs = list(zip(uploads, stamps, strict=True))
    return lambda: state.facer.frames_from_burst(pairs, pending.challenge)


def max_bodies(settings: Settings) -> int:
    """Requests with a body held at once: every model slot, the queue, and some room beyond."""
    return settings.server_concurrency + settings.server_queue_size + 16


def create_app(settings: Settings | None = None, engine: Any = None, *, allow_insecure_remote: bool = False) -> FastAPI:
    """The FastAPI app. Without `settings` (uvicorn's `--factory`), they are loaded as the CLI loads them
    (facer.toml, FACER_*). The lifespan loads and warms the models (`engine` reuses a loaded one) and
    opens the store once before the first request is accepted."""
    if settings is None:
        from facer_cli.settings import load_settings

        settings = load_settings().settings
    facer = Facer(settings, engine=engine)
    from facer_cli.service.liveness import challenge_for

    # Tests replace `app.state.challenges.draw` to ask a known challenge.
    challenges = PendingChallenges(settings.challenge_ttl_s, lambda: challenge_for(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = time.perf_counter()
        loaded = await anyio.to_thread.run_sync(lambda: facer.engine)
        # Creates the database (and runs its migrations) now: a bad database fails at start, not on a request.
        await anyio.to_thread.run_sync(lambda: facer.open_store().close())
        app.state.facer = ServerState(
            facer,
            ModelGate(settings.server_concurrency, settings.server_queue_size, settings.server_queue_timeout_s),
            time.time(),
            challenges,
        )
        info = loaded.info
        log.info(
            "facer %s: model %s (%s) on %s, ready in %.2f s",
            __version__,
            info.pack,
            info.fingerprint,
            info.provider,
            time.perf_counter() - started,
        )
        yield

    app = FastAPI(
        title="facer",
        version=__version__,
        summary="Face enrollment and verification over HTTP: the same engine and store as the facer CLI.",
        description=(
            f"When the `api_key` setting is set, every endpoint but `/health` requires it in the "
            f'`{API_KEY_HEADER}` header. Errors: `{{"error": {{"type", "status", "message"}}}}`.'
        ),
        lifespan=lifespan,
        docs_url=None,  # served from the package by install_docs: no CDN
        redoc_url=None,
    )
    app.state.facer_settings = settings
    app.state.challenges = challenges
    # Outermost last: who may connect, then the path, then the body.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        timeout_s=settings.server_body_timeout_s,
        max_bodies=max_bodies(settings),
    )
    app.add_middleware(PathMiddleware)
    app.add_middleware(ExposureMiddleware, api_key=settings.api_key, allow_insecure_remote=allow_insecure_remote)
    install_error_handlers(app)
    install_docs(app)

    @app.get("/health", tags=["service"], responses=error_responses())
    async def health(request: Request) -> dict:
        """Liveness and what the service runs: model, provider, fingerprint, detector size, load."""
        state = state_of(request)
        info = state.facer.engine.info
        return {
            "status": "healthy",
            "model": info.pack,
            "fingerprint": info.fingerprint,
            "provider": info.provider,
            "providers": info.providers,
            "acceleration": info.provider != "CPUExecutionProvider",
            "det_size": info.det_size,
            "modules": info.modules,
            "pose_source": info.pose_source,
            "version": __version__,
            "uptime_s": round(time.time() - state.started, 1),
            "api_key_required": state.settings.api_key is not None,
            "models": state.gate.to_dict(),
        }

    api = APIRouter(dependencies=[Depends(require_api_key)])

    @api.post(
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

    @api.post(
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

    @api.get("/users", tags=["users"], responses=error_responses(401, 503))
    async def users_list(request: Request) -> dict:
        """Every enrolled user: templates, frames used, models, dates (`facer users list --json`)."""
        return await run_in_threadpool(lambda: state_of(request).facer.users().to_dict())

    @api.get("/users/{name}", tags=["users"], responses=error_responses(400, 401, 404, 503))
    async def users_show(
        request: Request,
        name: UserName,
        attempts: Annotated[int, Query(ge=0, le=1000, description="Latest verify attempts to list.")] = 10,
    ) -> dict:
        """One user's templates and latest verify attempts (`facer users show --json`)."""
        return await run_in_threadpool(lambda: state_of(request).facer.user(name, attempts=attempts).to_dict())

    @api.delete("/users/{name}", tags=["users"], responses=error_responses(400, 401, 404, 503))
    async def users_remove(request: Request, name: UserName) -> dict:
        """Delete the user, every template and every per-frame sample (`facer users remove --json`)."""
        return await run_in_threadpool(lambda: state_of(request).facer.remove_user(name).to_dict())

    @api.post("/liveness/challenge", tags=["liveness"], responses=error_responses(401, 503))
    async def liveness_challenge(request: Request) -> dict:
        """A fresh random head-turn challenge to answer once, before `expires_at`: film the person doing
        `steps` in order (each |yaw| `target` within `time_limit_s`), then POST the frames with their
        timestamps to /users/{name}/verify (or /enroll) with ?challenge_id=…"""
        state = state_of(request)
        issued = state.challenges.issue()
        return {**issued.to_dict(), "max_frames": state.settings.liveness_max_frames}

    @api.post(
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
    ) -> Response:
        """Enroll a person from images: at least min_valid_frames must be usable (`facer enroll --json`).
        With challenge_id: from the frames answering that liveness challenge; not live is 403."""
        state = state_of(request)
        frames_of = await read_inputs(request, state, challenge_id)

        def work() -> dict:
            facer = state.facer
            with facer.open_store() as store:  # 409 before the models run: enroll checks, then calls frames_of
                return facer.enroll(
                    name, frames_of, mode=parse_mode(mode.value), allow_lookalike=allow_lookalike, store=store
                ).to_dict()

        return await state.gate.run_json(work, status_code=201)

    @api.post(
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

    @api.post(
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

    app.include_router(api)
    return app
