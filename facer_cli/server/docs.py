"""/docs (Swagger UI) and /redoc, with their scripts served by this process: no CDN, so the pages
work on a kiosk network with no way out. The assets ship in the `fastapi-offline` package (part of
the `server` extra); they are read from its folder, never downloaded."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/docs-assets"
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def assets_folder() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def install_docs(app: FastAPI) -> None:
    """GET /docs, /redoc and their assets under /docs-assets/ (none of them needs the API key)."""
    folder = assets_folder()
    app.mount(STATIC_URL, StaticFiles(directory=folder), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    def url(request: Request, path: str) -> str:
        return f"{request.scope.get('root_path', '')}{path}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=url(request, openapi_url),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=url(request, f"{STATIC_URL}/swagger-ui-bundle.js"),
            swagger_css_url=url(request, f"{STATIC_URL}/swagger-ui.css"),
            swagger_favicon_url=url(request, f"{STATIC_URL}/favicon.png"),
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=url(request, openapi_url),
            title=f"{app.title} - ReDoc",
            redoc_js_url=url(request, f"{STATIC_URL}/redoc.standalone.js"),
            redoc_favicon_url=url(request, f"{STATIC_URL}/favicon.png"),
            with_google_fonts=False,
        )
