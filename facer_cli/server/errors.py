"""The one place where errors become HTTP status codes and a JSON body.

Every error is a `FacerError` (the CLI maps the same classes to exit codes); its
`http_status` attribute is the status code. The few errors only HTTP can meet
(a body too large, a wrong media type, a missing API key, a full queue) are
defined here, as `FacerError`s too. The body is always

    {"error": {"type": "TooFewFramesError", "status": 422, "message": "too few usable frames: …"}}
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from facer_cli.errors import FacerError, InputError

log = logging.getLogger("facer.server")


class RequestError(InputError):
    """The request itself is malformed: a missing field, a bad parameter, a broken multipart body."""

    http_status = 400


class RequestTooLargeError(InputError):
    """The request body is over `max_request_bytes`."""

    http_status = 413


class TooManyFilesError(RequestTooLargeError):
    """More files than `max_files_per_request`."""


class UnsupportedMediaError(InputError):
    """Not multipart/form-data, or an uploaded part whose declared type is not an image (or a .npy)."""

    http_status = 415


class AuthenticationError(FacerError):
    """The X-API-Key header is missing or wrong."""

    http_status = 401


class ServerBusyError(FacerError):
    """Every model slot is busy and the waiting queue is full, or the wait timed out."""

    http_status = 503


class ErrorDetail(BaseModel):
    type: str
    status: int
    message: str


class ErrorBody(BaseModel):
    """What every error response holds."""

    error: ErrorDetail


def error_response(status: int, type_name: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"type": type_name, "status": status, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def response_for(exc: FacerError) -> JSONResponse:
    status = int(getattr(exc, "http_status", 500))
    headers = None
    if isinstance(exc, AuthenticationError):
        headers = {"WWW-Authenticate": 'APIKey header="X-API-Key"'}
    elif isinstance(exc, ServerBusyError):
        headers = {"Retry-After": "1"}
    if status == 500:  # the service itself is broken (model pack, settings): worth the log
        log.error("%s: %s", type(exc).__name__, exc)
    return error_response(status, type(exc).__name__, str(exc), headers)


def describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """FacerError → its http_status; FastAPI's own errors in the same body shape."""

    @app.exception_handler(FacerError)
    async def _facer_error(request: Request, exc: FacerError) -> JSONResponse:
        return response_for(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # 422 is kept for "too few valid frames": a malformed request is a 400.
        return error_response(400, RequestError.__name__, describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {404: "NotFound", 405: "MethodNotAllowed"}
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no endpoint {request.method} {request.url.path}; see /docs"
        return error_response(exc.status_code, names.get(exc.status_code, "HTTPError"), message, exc.headers)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, "InternalError", f"internal error: {type(exc).__name__} (see the server log)")


ERROR_RESPONSES = {
    "default": {"model": ErrorBody, "description": "An error: `{\"error\": {\"type\", \"status\", \"message\"}}`"},
}


def error_responses(*codes: int) -> dict:
    """OpenAPI entries for the error statuses an endpoint can answer."""
    described = {
        400: "Bad request: unreadable image, no usable face, missing field, bad user name",
        401: "Missing or wrong X-API-Key header (when api_key is set)",
        404: "Unknown user",
        409: "User exists (use mode=replace or mode=add), or enrolled with another model",
        413: "Body over max_request_bytes, image over max_image_pixels, or more than max_files_per_request files",
        415: "Not multipart/form-data, or a file that is not an image",
        422: "Too few valid frames: each rejected file with its reason",
        503: "Busy: every model slot taken and the queue full (retry), or the store is locked",
    }
    return {code: {"model": ErrorBody, "description": described[code]} for code in codes} | ERROR_RESPONSES
