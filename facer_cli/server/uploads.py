"""Request bodies: a size limit before anything is parsed, and multipart parsed in memory.

Starlette spools an uploaded file over 1 MB to a temporary file on disk; facer's
parser keeps every part in memory (the body is already bounded by
`max_request_bytes`), so no uploaded image ever touches the disk.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import PurePath

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facer_cli.errors import FacerError
from facer_cli.server.errors import (
    RequestError,
    RequestTimeoutError,
    RequestTooLargeError,
    ServerBusyError,
    TooManyFilesError,
    UnsupportedMediaError,
    response_for,
)

# Declared part types accepted as images; a part without a type is accepted too (the bytes decide).
IMAGE_TYPES = ("image/",)
GENERIC_TYPES = ("application/octet-stream", "binary/octet-stream", "")
NPY_TYPES = ("application/x-npy", "application/npy")


def too_large(limit: int, size: int | None = None) -> RequestTooLargeError:
    got = "" if size is None else f" ({size:,} bytes)"
    return RequestTooLargeError(
        f"request body too large{got}: the limit is {limit:,} bytes (max_request_bytes); send fewer or smaller images"
    )


def has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() not in ("", "0"))


class BodyLimitMiddleware:
    """Request bodies, before an endpoint sees them:

    - 413 for a body over `max_bytes`: at once from Content-Length, else while it streams in;
    - 408 (and the connection closed) when the body has not all arrived `timeout_s` after the request
      started: a client that trickles a byte at a time holds no worker for longer;
    - 503 at once when `max_bodies` requests with a body are already in progress: bodies are held in
      memory, so this bounds the memory uploads can take (requests without a body, `/health` among
      them, are never counted or refused).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float | None = None, max_bodies: int | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.max_bodies = max_bodies
        self.bodies = 0  # requests with a body in progress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await response_for(RequestError(f"bad Content-Length header {length!r}"))(scope, receive, send)
                return
            if declared > self.max_bytes:
                await response_for(too_large(self.max_bytes, declared))(scope, receive, send)
                return
        counted = has_body(headers)
        if counted and self.max_bodies is not None and self.bodies >= self.max_bodies:
            busy = ServerBusyError(
                f"busy: {self.bodies} uploads in progress, the most this server holds at once; retry shortly"
            )
            await response_for(busy)(scope, receive, send)
            return
        deadline = None if self.timeout_s is None else asyncio.get_running_loop().time() + self.timeout_s
        received = 0
        complete = not counted
        started = False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete or deadline is None:
                message = await receive()
            else:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    raise RequestTimeoutError(
                        f"the request body did not arrive within {self.timeout_s:g} s "
                        f"({received:,} bytes came; server_body_timeout_s)"
                    ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large(self.max_bytes)
                if not message.get("more_body", False):
                    complete = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        if counted:
            self.bodies += 1
        try:
            await self.app(scope, limited_receive, tracking_send)
        except (RequestTooLargeError, RequestTimeoutError) as exc:  # raised outside an endpoint (no handler ran)
            if started:
                raise
            await response_for(exc)(scope, receive, send)
        finally:
            if counted:
                self.bodies -= 1


class InMemoryMultiPartParser(MultiPartParser):
    """Starlette's parser with files kept in memory: a spool size of 0 never rolls over to disk."""

    spool_max_size = 0


@dataclass
class Upload:
    field: str
    name: str
    content_type: str
    data: bytes


@dataclass
class Form:
    files: dict[str, list[Upload]]
    fields: dict[str, str]

    def images(self, field: str, *, npy: bool = False) -> list[Upload]:
        """The files of one field; missing: 400 naming the field."""
        uploads = self.files.get(field, [])
        if not uploads:
            if field in self.fields:
                raise RequestError(
                    f"field {field!r} holds text, not a file: send it as a file part (curl -F '{field}=@photo.jpg')"
                )
            raise RequestError(
                f"no file in field {field!r}: send one or more images as multipart/form-data (curl -F '{field}=@photo.jpg')"
            )
        for upload in uploads:
            check_type(upload, npy)
        return uploads

    def images_of(self, *fields: str) -> list[Upload]:
        """The files of the first of `fields` that has any (`files`, or the original API's `file`)."""
        for field in fields:
            if self.files.get(field):
                return self.images(field)
        return self.images(fields[0])


def check_type(upload: Upload, npy: bool = False) -> None:
    kind = upload.content_type.split(";")[0].strip().lower()
    if kind.startswith(IMAGE_TYPES) or kind in GENERIC_TYPES or (npy and kind in NPY_TYPES):
        return
    accepted = "an image (image/*)" + (" or a .npy template" if npy else "")
    raise UnsupportedMediaError(f"{upload.name}: declared as {kind}, not {accepted}")


async def read_form(request: Request, max_files: int) -> Form:
    """The multipart body, every part in memory. 415 when the body is not multipart/form-data."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        shown = content_type.split(";")[0] or "no Content-Type"
        raise UnsupportedMediaError(f"expected multipart/form-data with image files, got {shown}")
    parser = InMemoryMultiPartParser(request.headers, request.stream(), max_files=max_files, max_fields=100)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if "Too many files" in exc.message:
            raise TooManyFilesError(
                f"too many files: at most {max_files} per request (max_files_per_request)"
            ) from None
        raise RequestError(f"malformed multipart body: {exc.message}") from None
    except FacerError:
        raise
    files: dict[str, list[Upload]] = {}
    fields: dict[str, str] = {}
    count = 0
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                count += 1
                data = value.file.read()
                name = PurePath((value.filename or "").replace("\\", "/")).name or f"{key}[{count}]"
                files.setdefault(key, []).append(Upload(key, name, value.content_type or "", data))
            else:
                fields[key] = value
    finally:
        await form.close()
    return Form(files, fields)


# -- how the bodies read by hand appear in the OpenAPI docs --------------------------
def multipart_body(fields: dict[str, tuple[str, bool]]) -> dict:
    """OpenAPI request body for multipart image fields (the body is parsed in memory by hand)."""
    properties = {}
    for name, (description, many) in fields.items():
        item = {"type": "string", "format": "binary"}
        properties[name] = (
            {"type": "array", "items": item, "description": description}
            if many
            else {**item, "description": description}
        )
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"type": "object", "properties": properties}}},
        }
    }


# The images of `Form.images_of("files", "file")`.
IMAGES_BODY = multipart_body(
    {
        "files": ("One or more images (JPEG, PNG, WebP, …), one face each.", True),
        "file": ("One image: the original API's field name (same as one `files`).", False),
    }
)
