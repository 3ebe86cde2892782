"""`facer serve`: the HTTP service (the `server` extra: fastapi, uvicorn, python-multipart).

- `app`: `create_app(settings)`, the FastAPI app over the service layer, and `ModelGate`.
- `errors`: the one table of error classes to status codes, and the JSON error body.
- `exposure`: who may connect (loopback, or an API key).
- `uploads`: request size limits and multipart parsed in memory.

    from facer_cli.server import create_app
    app = create_app(settings)          # run it with uvicorn
"""

from facer_cli.server.app import create_app

__all__ = ["create_app"]
