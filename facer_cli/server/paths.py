"""Request paths, read from the bytes the client sent.

A server hands the app the path percent-decoded, so `/users/a%2Fb/enroll` arrives as
`/users/a/b/enroll` (no route: a name with a `/` could not be reached), and a byte
that is not UTF-8 (`%FF`) arrives as U+FFFD (a name nobody typed). `PathMiddleware`
decodes the raw path itself, segment by segment:

- a segment that is not UTF-8 once decoded: 400, for every endpoint;
- the user-name segment of `/users/{name}…` is passed on percent-encoded, so it holds
  no `/` while routing; `user_name_param` decodes it back for the endpoint.

So any valid name is reachable: `quote(name, safe="")` in a client's URL.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, unquote, unquote_to_bytes

from fastapi import Depends, Path
from starlette.types import ASGIApp, Receive, Scope, Send

from facer_cli.server.errors import RequestError, response_for


def decode_segment(raw: bytes) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = unquote_to_bytes(raw)[exc.start : exc.start + 1]
        raise RequestError(
            f"the request path holds bytes that are not UTF-8 (0x{bad.hex().upper()}): "
            "percent-encode names as UTF-8 (e.g. %C3%A9 for é)"
        ) from None


def route_path(scope: Scope) -> str:
    """The path as routed: user names percent-encoded, everything else decoded as sent."""
    raw = scope.get("raw_path")
    root = scope.get("root_path") or ""
    if raw is None:  # a server that keeps no raw path: as good as its decoded path
        raw = quote(scope["path"], safe="/").encode("ascii")
    raw = bytes(raw)
    root_raw = quote(root, safe="/").encode("ascii")
    prefix = ""
    if root and raw.startswith(root_raw):  # uvicorn puts root_path before the path it received
        raw, prefix = raw[len(root_raw) :], root
    segments = [decode_segment(part) for part in raw.split(b"/")]
    if len(segments) >= 3 and segments[0] == "" and segments[1] == "users":
        segments[2] = quote(segments[2], safe="")
    return prefix + "/".join(segments)


class PathMiddleware:
    """Routes on the raw path: 400 for a path that is not UTF-8; user names with `/` reachable."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            path = route_path(scope)
        except RequestError as exc:
            await response_for(exc)(scope, receive, send)
            return
        # A new scope: the server's own (its access log) keeps the path as it was.
        await self.app({**scope, "path": path}, receive, send)


def user_name_param(
    name: Annotated[
        str,
        Path(
            description="The person's name (any text, 1–128 characters), percent-encoded as UTF-8: "
            "`/` as %2F, `%` as %25."
        ),
    ],
) -> str:
    """The user name of the path, as the client wrote it before percent-encoding."""
    return unquote(name, errors="strict")


# The name segment of /users/{name}…, percent-decoded as UTF-8.
UserName = Annotated[str, Depends(user_name_param)]
