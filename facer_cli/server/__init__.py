"""`facer serve`: the HTTP service (the `server` extra: fastapi, uvicorn, python-multipart).

- `app`: `create_app(settings)`, the FastAPI app over the service layer: state, middleware, routes.
- `routes`: the endpoints, one module per group (health, templates, users, liveness,
  enroll_verify, identify), each on an `APIRouter`.
- `deps`: what an endpoint gets from its request: `ServerState` (the service, its settings,
  the gate, the pending challenges) and the API key check.
- `gate`: `ModelGate`, model work in worker threads, bounded (503 beyond), answered as JSON.
- `errors`: the one table of error classes to status codes, and the JSON error body.
- `exposure`: who may connect (loopback, or an API key), and the middleware that checks it.
- `uploads`: request size limits, the body deadline (408), multipart parsed in memory and
  its OpenAPI description.
- `challenges`: liveness challenges issued, held until they expire, answered once.
- `paths`: request paths decoded from the raw bytes (user names with `/`; 400 for non-UTF-8).
- `docs`: /docs and /redoc with their scripts served by this process (no CDN).
- `edge`: what `facer serve` runs: uvicorn's h11 protocol with header, body and keep-alive
  deadlines and a connection cap (idle or slow clients never lock out `/health`).
- `listen`: the listening socket, bound before the models load (`ServeError`: a busy port).
- `observe`: each request timed and named by its route template, JSON log lines, and the
  figures of `metrics` (GET /metrics, Prometheus; built only when the `metrics` setting is on).

    from facer_cli.server import create_app
    app = create_app(settings)          # run it with uvicorn

`create_app` is imported on first use, so `facer_cli.server.exposure` loads without FastAPI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from facer_cli.server.app import create_app

        return create_app
    raise AttributeError(f"module 'facer_cli.server' has no attribute {name!r}")
