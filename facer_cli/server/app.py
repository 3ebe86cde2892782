"""The HTTP service: FastAPI over the service layer, the same operations the CLI calls.

    uvicorn "facer_cli.server.app:create_app" --factory     # or: facer serve

Each endpoint (`facer_cli.server.routes`, one module per group) parses its input
(multipart images, a user name), calls `Facer` (`facer_cli.service`) and returns the
result's `to_dict()` — the CLI's `--json` for the same operation. Model work runs in
worker threads behind `ModelGate` (`facer_cli.server.gate`): at most `server_concurrency`
at once, at most `server_queue_size` waiting, 503 beyond. Errors become status codes in
one place (`facer_cli.server.errors`); who may connect is decided in
`facer_cli.server.exposure`, on every request.

Started by uvicorn's own command line, the app keeps its body limits and deadline
(408), its path rules and its docs; the header deadline, keep-alive and connection
cap are `facer serve`'s (`facer_cli.server.edge`).
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, AsyncIterator, Callable

import anyio
from fastapi import FastAPI

from facer_cli import __version__
from facer_cli.server.challenges import PendingChallenges
from facer_cli.server.deps import API_KEY_HEADER, ServerState
from facer_cli.server.docs import install_docs
from facer_cli.server.errors import install_error_handlers, response_for
from facer_cli.server.exposure import ExposureMiddleware
from facer_cli.server.gate import ModelGate
from facer_cli.server.observe import install_observer
from facer_cli.server.paths import PathMiddleware
from facer_cli.server.replica import Replica
from facer_cli.server.routes import include_routes
from facer_cli.server.uploads import BodyLimitMiddleware
from facer_cli.service import Facer
from facer_cli.service.keys import KeyRing
from facer_cli.settings import Settings

log = logging.getLogger("facer.server")

SUMMARY = "Face enrollment and verification over HTTP: the same engine and store as the facer CLI."
DESCRIPTION = (
    f"Once API keys exist (`facer keys add`, or the `api_key` setting: an admin key), every endpoint but "
    f"`/health` and `/ready` requires one in the `{API_KEY_HEADER}` header: a kiosk key may verify and identify "
    "(and answer liveness challenges), an admin key anything. "
    'Errors: `{"error": {"type", "status", "message"}}`.'
)


def max_bodies(settings: Settings) -> int:
    """Requests with a body held at once: every model slot, the queue, and some room beyond."""
    return settings.server_concurrency + settings.server_queue_size + 16


def lifespan_of(facer: Facer, challenges: PendingChallenges) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Loads and warms the models and opens the store once, then puts the `ServerState` the
    endpoints read on `app.state.facer`, before the first request is accepted."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = facer.settings
        started = time.perf_counter()
        loaded = await anyio.to_thread.run_sync(lambda: facer.engine)
        # Creates the database (and runs its migrations) now: a bad database fails at start, not on a request.
        await anyio.to_thread.run_sync(lambda: facer.open_store().close())
        # Whether requests need an API key, read once now: the answer that stands while the store is down.
        await anyio.to_thread.run_sync(app.state.keys.required)
        # On PostgreSQL: the connection pool, the gallery index built, the change listener.
        replica = await anyio.to_thread.run_sync(Replica.start, facer)
        app.state.facer = ServerState(
            facer,
            ModelGate(settings.server_concurrency, settings.server_queue_size, settings.server_queue_timeout_s),
            time.time(),
            challenges,
            replica,
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
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(replica.close)

    return lifespan


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
    app = FastAPI(
        title="facer",
        version=__version__,
        summary=SUMMARY,
        description=DESCRIPTION,
        lifespan=lifespan_of(facer, challenges),
        docs_url=None,  # served from the package by install_docs: no CDN
        redoc_url=None,
    )
    app.state.facer_settings = settings
    app.state.challenges = challenges
    # Who each request's API key is: read from the store per request, each answer kept a few seconds.
    app.state.keys = KeyRing(settings, lambda: facer.open_store("read"))
    # Outermost last: who may connect, then the path, then the body.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_bytes,
        timeout_s=settings.server_body_timeout_s,
        max_bodies=max_bodies(settings),
    )
    app.add_middleware(PathMiddleware)
    app.add_middleware(
        ExposureMiddleware,
        key_required=app.state.keys.required,
        allow_insecure_remote=allow_insecure_remote,
        respond=response_for,
    )
    install_error_handlers(app)
    install_docs(app)
    include_routes(app)
    install_observer(app, settings)  # outermost: after every other middleware
    return app
