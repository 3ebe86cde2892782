"""GET /health: liveness and what the service runs (open to all, no API key)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from facer_cli import __version__
from facer_cli.server.deps import state_of
from facer_cli.server.errors import error_responses

router = APIRouter()


@router.get("/health", tags=["service"], responses=error_responses())
async def health(request: Request) -> dict:
    """Liveness and what the service runs: model, its licence, provider, fingerprint, detector size, load."""
    state = state_of(request)
    info = state.facer.engine.info
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
        "api_key_required": state.settings.api_key is not None,
        "models": state.gate.to_dict(),
    }
