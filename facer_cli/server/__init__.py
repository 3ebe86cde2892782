"""`facer serve`: the HTTP service (the `server` extra: fastapi, uvicorn, python-multipart).

    from facer_cli.server import create_app
    app = create_app(settings)          # FastAPI app; run it with uvicorn
"""

from facer_cli.server.app import create_app

__all__ = ["create_app"]
