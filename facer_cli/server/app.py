"""The HTTP service: FastAPI over the same functions the CLI calls.

    uvicorn "facer_cli.server.app:create_app" --factory     # or: facer serve

Each endpoint parses its input (multipart images, a user name), calls the
library (`facer_cli.enrollment`, `facer_cli.store`, `facer_cli.compare`,
`facer_cli.api`) and returns the same JSON as the CLI's `--json`. Model work
runs in worker threads behind `ModelGate`: at most `server_concurrency` at once,
at most `server_queue_size` waiting, 503 beyond. Errors become status codes in
one place, `facer_cli.server.errors`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePosixPath
from typing import Annotated, Any, Callable, TypeVar

import anyio
import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from facer_cli import __version__
from facer_cli.api import get_engine
from facer_cli.compare import Comparison, vector_from_bytes
from facer_cli.engine import FaceEngine
from facer_cli.enrollment import (
    CaptureResult, Frames, build_template, check_enrollable, describe_images, enroll, prepare_verify,
    verify,
)
from facer_cli.errors import NoFaceError
from facer_cli.images import decode_image
from facer_cli.reports import FrameReport
from facer_cli.server.errors import (
    AuthenticationError, ServerBusyError, error_responses, install_error_handlers,
)
from facer_cli.server.uploads import BodyLimitMiddleware, Upload, read_form
from facer_cli.settings import Settings
from facer_cli.store import Store

log = logging.getLogger("facer.server")
T = TypeVar("T")

API_KEY_HEADER = "X-API-Key"
NPY_MAGIC = b"\x93NUMPY"


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

    def to_dict(self) -> dict:
        return {
            "slots": self.slots, "running": self.running, "waiting": self.waiting,
            "queue_size": self.queue_size, "refused": self.refused,
        }


@dataclass
class ServerState:
    settings: Settings
    engine: FaceEngine
    gate: ModelGate
    started: float


def state_of(request: Request) -> ServerState:
    return request.app.state.facer


# -- access ------------------------------------------------------------------
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="The api_key setting, when it is set (every endpoint but /health)."
)


async def require_api_key(request: Request, key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    expected = request.app.state.facer_settings.api_key
    if expected is None:
        return
    if not key:
        raise AuthenticationError(f"missing {API_KEY_HEADER} header: this server requires an API key")
    if not hmac.compare_digest(key.encode("utf-8", "surrogateescape"), expected.encode("utf-8")):
        raise AuthenticationError(f"wrong API key in the {API_KEY_HEADER} header")


# -- uploads to frames (no logic: decode, analyse, in the worker thread) -------
def analyse_uploads(engine: FaceEngine, uploads: list[Upload], settings: Settings) -> Frames:
    """Every upload decoded in memory and analysed. An upload that is not a usable image fails the
    request with its error (400, or 413 over max_image_pixels), naming the file."""
    frames = [engine.analyze(decode_image(u.data, u.name, settings.max_image_pixels), source=u.name) for u in uploads]
    return Frames(frames, "uploaded " + describe_images([PurePosixPath(u.name) for u in uploads]), explicit_images=True)


def vector_from_upload(upload: Upload) -> np.ndarray:
    return vector_from_bytes(upload.data, upload.name)


def template_of_upload(engine: FaceEngine, upload: Upload, settings: Settings) -> tuple[np.ndarray, FrameReport | None]:
    """As `facer compare`: a `.npy` vector as it is, or the accepted subject of an image."""
    if upload.name.lower().endswith(".npy") or upload.data.startswith(NPY_MAGIC):
        return vector_from_upload(upload), None
    frame = engine.analyze(decode_image(upload.data, upload.name, settings.max_image_pixels), source=upload.name)
    if not frame.accepted:
        raise NoFaceError(f"{upload.name}: no usable face ({frame.reason})")
    return frame.embedding, frame


# -- the app -------------------------------------------------------------------
class EnrollMode(str, Enum):
    new = "new"
    replace = "replace"
    add = "add"


def multipart_body(fields: dict[str, tuple[str, bool]]) -> dict:
    """OpenAPI request body for multipart image fields (the body is parsed in memory by hand)."""
    properties = {}
    for name, (description, many) in fields.items():
        item = {"type": "string", "format": "binary"}
        properties[name] = {"type": "array", "items": item, "description": description} if many else {**item, "description": description}
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"type": "object", "properties": properties, "required": list(fields)}}},
        }
    }


IMAGES_BODY = multipart_body({"files": ("One or more images (JPEG, PNG, WebP, …), one face each.", True)})
UserName = Annotated[str, Path(description="The person's name (any text, 1–128 characters).")]


def create_app(settings: Settings | None = None, engine: FaceEngine | None = None) -> FastAPI:
    """The FastAPI app. The lifespan loads and warms the models (`engine` reuses a loaded one)
    and opens the store once before the first request is accepted."""
    if settings is None:
        from facer_cli.settings import default_settings

        settings = default_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        started = time.perf_counter()
        loaded = engine or await anyio.to_thread.run_sync(get_engine, settings)
        # Creates the database (and runs its migrations) now: a bad --db fails at start, not on a request.
        await anyio.to_thread.run_sync(lambda: Store.open(settings).close())
        app.state.facer = ServerState(
            settings, loaded,
            ModelGate(settings.server_concurrency, settings.server_queue_size, settings.server_queue_timeout_s),
            time.time(),
        )
        info = loaded.info
        log.info(
            "facer %s: model %s (%s) on %s, ready in %.2f s; database %s",
            __version__, info.pack, info.fingerprint, info.provider, time.perf_counter() - started, settings.db_path,
        )
        yield

    app = FastAPI(
        title="facer",
        version=__version__,
        summary="Face enrollment and verification over HTTP: the same engine and store as the facer CLI.",
        description=(
            f"When the `api_key` setting is set, every endpoint but `/health` requires it in the "
            f"`{API_KEY_HEADER}` header. Errors: `{{\"error\": {{\"type\", \"status\", \"message\"}}}}`."
        ),
        lifespan=lifespan,
    )
    app.state.facer_settings = settings
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    install_error_handlers(app)

    @app.get("/health", tags=["service"], responses=error_responses())
    async def health(request: Request) -> dict:
        """Liveness and what the service runs: model, provider, fingerprint, detector size, load."""
        state = state_of(request)
        info = state.engine.info
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
        "/token/generate", tags=["templates"], openapi_extra=IMAGES_BODY,
        responses=error_responses(400, 401, 413, 415, 422, 503),
    )
    async def token_generate(request: Request) -> dict:
        """The template of the uploaded images (512 floats, norm 1) and the per-frame reports.

        min(min_valid_frames, number of images) must be usable, so one photo makes a template.
        The JSON is `facer capture --json`'s, with `token` (the vector) instead of `out`."""
        state = state_of(request)
        form = await read_form(request, state.settings.max_files_per_request)
        uploads = form.images("files")

        def work() -> dict:
            frames = analyse_uploads(state.engine, uploads, state.settings)
            template = build_template(frames, state.settings, strict=False)
            result = CaptureResult(template, frames, state.engine.fingerprint).to_dict()
            result.pop("out")
            return {"token": [float(v) for v in template.vector], **result}

        return await state.gate.run(work)

    @api.post(
        "/compare", tags=["templates"],
        openapi_extra=multipart_body({
            "a": ("An image (its accepted subject) or a .npy template.", False),
            "b": ("An image (its accepted subject) or a .npy template.", False),
        }),
        responses=error_responses(400, 401, 413, 415, 503),
    )
    async def compare(request: Request) -> dict:
        """Cosine similarity of two faces or templates and the band (match, uncertain, no_match),
        as `facer compare --json`."""
        state = state_of(request)
        form = await read_form(request, state.settings.max_files_per_request)
        a, b = form.images("a", npy=True)[0], form.images("b", npy=True)[0]

        def work() -> dict:
            vector_a, frame_a = template_of_upload(state.engine, a, state.settings)
            vector_b, frame_b = template_of_upload(state.engine, b, state.settings)
            comparison = Comparison.of(vector_a, vector_b, state.settings)
            frames = [frame.to_dict() for frame in (frame_a, frame_b) if frame is not None]
            return {"a": a.name, "b": b.name, **comparison.to_dict(), "frames": frames}

        return await state.gate.run(work)

    @api.get("/users", tags=["users"], responses=error_responses(401, 503))
    async def users_list(request: Request) -> dict:
        """Every enrolled user: templates, frames used, models, dates (`facer users list --json`)."""
        settings = state_of(request).settings

        def work() -> dict:
            with Store.open(settings) as store:
                return {"users": [user.to_dict() for user in store.list()]}

        return await run_in_threadpool(work)

    @api.get("/users/{name}", tags=["users"], responses=error_responses(400, 401, 404, 503))
    async def users_show(request: Request, name: UserName, attempts: Annotated[int, Query(ge=0, le=1000, description="Latest verify attempts to list.")] = 10) -> dict:
        """One user's templates and latest verify attempts (`facer users show --json`)."""
        settings = state_of(request).settings

        def work() -> dict:
            with Store.open(settings) as store:
                return store.show(name, attempts=attempts).to_dict()

        return await run_in_threadpool(work)

    @api.delete("/users/{name}", tags=["users"], responses=error_responses(400, 401, 404, 503))
    async def users_remove(request: Request, name: UserName) -> dict:
        """Delete the user, every template and every per-frame sample (`facer users remove --json`)."""
        settings = state_of(request).settings

        def work() -> dict:
            with Store.open(settings) as store:
                return store.remove(name).to_dict()

        return await run_in_threadpool(work)

    @api.post(
        "/users/{name}/enroll", tags=["users"], status_code=201, openapi_extra=IMAGES_BODY,
        responses=error_responses(400, 401, 409, 413, 415, 422, 503),
    )
    async def users_enroll(
        request: Request,
        name: UserName,
        mode: Annotated[EnrollMode, Query(description="new: the user must not exist; replace: replace their templates; add: another template.")] = EnrollMode.new,
    ) -> dict:
        """Enroll a person from images: at least min_valid_frames must be usable (`facer enroll --json`)."""
        state = state_of(request)
        form = await read_form(request, state.settings.max_files_per_request)
        uploads = form.images("files")

        def work() -> dict:
            with Store.open(state.settings) as store:
                user = check_enrollable(store, name, mode.value)  # 409 before the models run
                frames = analyse_uploads(state.engine, uploads, state.settings)
                return enroll(store, state.engine, user, frames, settings=state.settings, mode=mode.value).to_dict()

        return await state.gate.run(work)

    @api.post(
        "/users/{name}/verify", tags=["users"], openapi_extra=IMAGES_BODY,
        responses=error_responses(400, 401, 404, 409, 413, 415, 422, 503),
    )
    async def users_verify(request: Request, name: UserName) -> dict:
        """Is this the enrolled person? similarity, band (match, uncertain, no_match) and the attempt
        recorded (`facer verify --json`). A probe of explicit images needs min(min_valid_frames, images) usable."""
        state = state_of(request)
        form = await read_form(request, state.settings.max_files_per_request)
        uploads = form.images("files")

        def work() -> dict:
            with Store.open(state.settings) as store:
                user = prepare_verify(store, name, state.engine)  # 404 or 409 before the models run
                frames = analyse_uploads(state.engine, uploads, state.settings)
                return verify(store, state.engine, user, frames, settings=state.settings).to_dict()

        return await state.gate.run(work)

    app.include_router(api)
    return app
