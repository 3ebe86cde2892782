"""GET /health: liveness and what the service runs; GET /ready: whether it can answer now (store
reachable, models loaded, gallery index caught up), for a load balancer (both open to all, no API key)."""

from __future__ import annotations

import time

import anyio
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from facer_cli import __version__
from facer_cli.errors import StoreError
from facer_cli.server.deps import state_of
from facer_cli.server.errors import error_responses

router = APIRouter()


@router.get("/health", tags=["service"], responses=error_responses())
async def health(request: Request) -> dict:
    """Liveness and what the service runs: model, its licence, provider, fingerprint, detector size, load."""
    state = state_of(request)
    info = state.facer.engine.info
    try:  # the api_key setting, or an active key in the store (`facer keys`)
        key_required: bool | None = await anyio.to_thread.run_sync(request.app.state.keys.required)
    except StoreError:
        key_required = None  # the store cannot say now (GET /ready tells why)
    return {
        "status": "healthy",
        "model": info.pack,
        "fingerprint": info.fingerprint,
        "model_licence": info.model_licence,
        "provider": info.provider,
        "providers": info.providers,
        "acceleration": info.provider != "CPUExecutionProvider",
        "det_size": info.det_size,
        "modules": info.modules,
        "pose_source": info.pose_source,
        "version": __version__,
        "uptime_s": round(time.time() - state.started, 1),
        "api_key_required": key_required,
        "models": state.gate.to_dict(),
    }


@router.get("/ready", tags=["service"], responses=error_responses(503))
async def ready(request: Request) -> JSONResponse:
    """Whether this process can answer now: the store reachable, the models loaded, the gallery index
    caught up with the store (200); else 503 with Retry-After and the reason. For a load balancer's
    health check; /health says only that the process is up."""
    state = getattr(request.app.state, "facer", None)
    if state is None:  # the lifespan has not finished loading
        body = {"status": "starting", "reason": "the models are loading", "checks": {"models": "loading"}}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
    ok, body = await anyio.to_thread.run_sync(state.replica.readiness)
    return JSONResponse(body, status_code=200 if ok else 503, headers=None if ok else {"Retry-After": "1"})
