"""The HTTP service's one error table: each error class to a status code, and the JSON body.

Resolved by class (the nearest entry along the class's ancestry), so every error has a
status. Bodies hold `public_message` — no server file paths, no command-line flags —
plus a hint in HTTP's own words:

    {"error": {"type": "TooFewFramesError", "status": 422, "message": "too few usable frames: …"}}
"""

from __future__ import annotations

import logging
import math
import unicodedata

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from facer_cli import errors as e
from facer_cli.server.exposure import ExposureError

log = logging.getLogger("facer.server")


class RequestError(e.InputError):
    """The request itself is malformed: a missing field, a bad parameter, a broken multipart body."""


class RequestTooLargeError(e.InputError):
    """The request body is over `max_request_bytes`."""


class RequestTimeoutError(RequestError):
    """The request body did not arrive within `server_body_timeout_s` (or its headers within
    `server_header_timeout_s`): the connection is closed after the answer."""


class TooManyFilesError(RequestTooLargeError):
    """More files than `max_files_per_request`."""


class UnsupportedMediaError(e.InputError):
    """Not multipart/form-data, or an uploaded part whose declared type is not an image (or a .npy)."""


class ChallengeError(RequestError):
    """A liveness challenge id that is unknown or expired, or a burst that cannot answer one."""


class ChallengeUsedError(ChallengeError):
    """A liveness challenge id that was already answered: each is single use."""


class AuthenticationError(e.FacerError):
    """The X-API-Key header is missing or wrong, or names a revoked key."""


class ScopeError(e.FacerError):
    """The API key is valid, but its scope does not allow this request (a kiosk key asking to enroll,
    say): the message names the scope needed."""


class ServerBusyError(e.FacerError):
    """Every model slot is busy and the waiting queue is full, or the wait timed out."""


STATUS: dict[type[e.FacerError], int] = {
    e.FacerError: 500,
    e.UsageError: 400,
    e.ConfigError: 500,
    e.MissingExtraError: 500,
    e.InputError: 400,
    e.ImageTooLargeError: 413,
    e.TooFewFramesError: 422,
    e.OutputError: 500,
    e.CancelledError: 400,
    e.ModelPackError: 500,
    e.UserNameError: 400,
    e.UnknownUserError: 404,
    e.UserExistsError: 409,
    e.DifferentFaceError: 409,
    e.StoreConflictError: 409,
    e.ModelMismatchError: 409,
    e.StoreError: 503,
    e.CopyStoreError: 503,
    e.StoreUnavailableError: 503,
    e.LivenessError: 403,
    e.LivenessRequiredError: 400,
    e.UserLockedError: 429,
    RequestError: 400,
    RequestTimeoutError: 408,
    RequestTooLargeError: 413,
    ChallengeError: 400,
    ChallengeUsedError: 409,
    UnsupportedMediaError: 415,
    AuthenticationError: 401,
    ScopeError: 403,
    ServerBusyError: 503,
    ExposureError: 403,
}

HINTS: dict[type[e.FacerError], str] = {
    e.UserExistsError: "use ?mode=replace to replace their template(s) or ?mode=add to add another one",
    e.LookalikeError: "use ?allow_lookalike=true if they are different people (the pair is recorded)",
    e.DifferentFaceError: "use ?allow_different_face=true if it is the same person whose face changed (it is recorded)",
    e.LivenessRequiredError: "POST /liveness/challenge, then send the frames answering it with ?challenge_id=…",
    e.ModelMismatchError: "re-enroll them with ?mode=replace",
    e.UnknownUserError: "see GET /users",
    ChallengeError: "POST /liveness/challenge for a new one",
}


def status_for(error: type[BaseException] | BaseException) -> int:
    cls = error if isinstance(error, type) else type(error)
    status = e.resolve(STATUS, cls)
    return 500 if status is None else status


def public_line(error: e.FacerError) -> str:
    """What a client is told. A 500 is the server's own problem (model pack, settings, output files):
    its message names server paths and the CLI's ways to fix it, so the client gets only its type."""
    if status_for(error) == 500:
        return f"the service cannot answer: {type(error).__name__} (see the server log)"
    hint = e.resolve(HINTS, type(error))
    return error.public_message if hint is None else f"{error.public_message}; {hint}"


def printable(text: object, limit: int = 300) -> str:
    """Text for one log line: control, format (bidi, zero-width) and separator characters escaped
    (a name or a path from a request can hold a newline that would forge a second log line)."""
    out = []
    for char in str(text)[:limit]:
        if char == "\\" or (char != " " and unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp", "Zs")):
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            out.append(char)
    return "".join(out) + ("…" if len(str(text)) > limit else "")


def client_of(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "a client"


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


def response_for(exc: e.FacerError) -> JSONResponse:
    status = status_for(exc)
    headers = None
    if isinstance(exc, AuthenticationError):
        headers = {"WWW-Authenticate": 'APIKey header="X-API-Key"'}
    elif isinstance(exc, (ServerBusyError, e.StoreUnavailableError)):
        headers = {"Retry-After": "1"}
    elif isinstance(exc, e.UserLockedError):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    elif isinstance(exc, RequestTimeoutError):
        headers = {"Connection": "close"}
    if status == 500:  # the service itself is broken (model pack, settings): worth the log
        log.error("%s: %s", type(exc).__name__, printable(exc, 2000))
    return error_response(status, type(exc).__name__, public_line(exc), headers)


def describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """FacerError → its status; FastAPI's own errors in the same body shape."""

    @app.exception_handler(e.FacerError)
    async def _facer_error(request: Request, exc: e.FacerError) -> JSONResponse:
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
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, names.get(exc.status_code, "HTTPError"), message, headers)

    @app.exception_handler(ClientDisconnect)
    async def _client_disconnect(request: Request, exc: ClientDisconnect) -> Response:
        # Not the server's fault, and nobody is left to answer: one line, no traceback.
        log.info(
            "client %s disconnected before its request was complete: %s %s",
            client_of(request),
            request.method,
            printable(request.url.path),
        )
        return Response(status_code=499)  # nginx's "client closed request"; never sent

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "internal error on %s %s: %s", request.method, printable(request.url.path), type(exc).__name__, exc_info=exc
        )
        try:  # Starlette raises it again after this answer: the server need not log it twice
            exc.facer_logged = True  # type: ignore[attr-defined]
        except AttributeError:
            pass
        return error_response(500, "InternalError", f"internal error: {type(exc).__name__} (see the server log)")


ERROR_RESPONSES = {
    "default": {"model": ErrorBody, "description": 'An error: `{"error": {"type", "status", "message"}}`'},
}


def error_responses(*codes: int) -> dict:
    """OpenAPI entries for the error statuses an endpoint can answer."""
    described = {
        400: "Bad request: unreadable image, no usable face, missing field, bad user name",
        401: "Missing or wrong X-API-Key header (when api_key is set)",
        403: "The API key's scope does not allow this request (the error names the scope needed); reached from "
        "another machine while no api_key is set; or not live (the liveness challenge failed)",
        404: "Unknown user",
        408: "The request body did not arrive within server_body_timeout_s",
        409: "User exists (use mode=replace or mode=add), looks like another enrolled person "
        "(allow_lookalike=true), enrolled with another model, or a challenge already used",
        413: "Body over max_request_bytes, image over max_image_pixels, or more than max_files_per_request files",
        415: "Not multipart/form-data, or a file that is not an image",
        422: "Too few valid frames: each rejected file with its reason",
        429: "Locked out after repeated liveness failures: Retry-After says when to try again",
        503: "Busy: every model slot taken and the queue full (retry), the store locked, or its database "
        "server unreachable (Retry-After)",
    }
    return {code: {"model": ErrorBody, "description": described[code]} for code in codes} | ERROR_RESPONSES
