"""GET /metrics: the service's figures in Prometheus' text format (`facer_cli.server.metrics`).
Included only when the `metrics` setting is on; behind the API key unless `metrics_public`."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from facer_cli.server.errors import error_responses

router = APIRouter()


@router.get("/metrics", tags=["service"], response_class=PlainTextResponse, responses=error_responses(401))
async def metrics(request: Request) -> Response:
    """Requests by route template and status, latency, model time, the model gate, the gallery
    index (templates, changes behind the store), store errors and the process, for Prometheus."""
    exporter = request.app.state.metrics
    # In a worker thread: a scrape reads the store's change counters once per gallery index.
    body = await anyio.to_thread.run_sync(exporter.render)
    return Response(body, media_type=exporter.content_type)
