"""`facer serve`: the HTTP service (the `server` extra: fastapi, uvicorn, python-multipart).

- `app`: `create_app(settings)`, the FastAPI app over the service layer, and `ModelGate`.
- `errors`: the one table of error classes to status codes, and the JSON error body.
- `exposure`: who may connect (loopback, or an API key).
- `uploads`: request size limits, the body deadline (408) and multipart parsed in memory.
- `paths`: request paths decoded from the raw bytes (user names with `/`; 400 for non-UTF-8).
- `docs`: /docs and /redoc with their scripts served by this process (no CDN).
- `edge`: what `facer serve` runs: uvicorn's h11 protocol with header, body and keep-alive
  deadlines and a connection cap (idle or slow clients never lock out `/health`).
- `listen`: the listening socket, bound before the models load (`ServeError`: a busy port).

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
