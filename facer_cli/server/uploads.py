"""Request bodies: a size limit before anything is parsed, and multipart parsed in memory.

Starlette spools an uploaded file over 1 MB to a temporary file on disk; facer's
parser keeps every part in memory (the body is already bounded by
`max_request_bytes`), so no uploaded image ever touches the disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facer_cli.errors import FacerError
from facer_cli.server.errors import (
    RequestError,
    RequestTooLargeError,
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


class BodyLimitMiddleware:
    """413 for a body over `max_bytes`: at once from Content-Length, else while it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await response_for(RequestError(f"bad Content-Length header {length!r}"))(scope, receive, send)
                return
            if declared > self.max_bytes:
                await response_for(too_large(self.max_bytes, declared))(scope, receive, send)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLargeError as exc:  # raised outside an endpoint (no handler ran)
            if started:
                raise
            await response_for(exc)(scope, receive, send)


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
