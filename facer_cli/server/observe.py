"""Watching `facer serve` run: each request timed and named by its route template, one JSON log
line per request and per start and stop (`log_format = "json"`), and the figures GET /metrics
exports (`facer_cli.server.metrics`, built only when the `metrics` setting is on).

`install_observer` adds `ObserveMiddleware` outermost, so refusals answered before routing (403,
413, 503) are seen too, and `RouteMarker` innermost, where the router has named the route; only
when metrics or JSON logs are on: otherwise the app runs as it did. A request is named by its
route's template (`/users/{name}/enroll`, never the name); one no route handled (an unknown path,
or a refusal before routing) as `unmatched`; a method HTTP does not define as `OTHER`: every
label has a bounded set of values. A log line holds no body, no query string and no API key: only the name of the setting
whose key the request carried (`api_key`).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facer_cli.server.gate import GateTimes, gate_times

if TYPE_CHECKING:
    from fastapi import FastAPI

    from facer_cli.settings import Settings

log = logging.getLogger("facer.server")
access_log = logging.getLogger("facer.access")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
UNMATCHED = "unmatched"
REQUEST_ID_HEADER = "X-Request-ID"
# A client's own request id is kept when it is this plain; anything else gets a new one.
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
ERROR_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
ERROR_PEEK_BYTES = 4096


class MetricsSink(Protocol):
    """What the observer tells the metrics (`facer_cli.server.metrics.Metrics`)."""

    def started(self) -> None: ...

    def finished(
        self, method: str, route: str, status: int, duration_s: float, times: GateTimes, error_type: str | None
    ) -> None: ...


@dataclass
class Observed:
    """What the observer learns of one request from inside: the route that handled it, the gate's
    times, the name of the API key it was let in with (`facer_cli.server.deps.require_api_key`)."""

    route: str | None = None
    times: GateTimes = field(default_factory=GateTimes)
    key_name: str | None = None


# Set per request by `ObserveMiddleware`, for `RouteMarker` to fill in.
observed: ContextVar[Observed | None] = ContextVar("facer_observed", default=None)


# -- labels -------------------------------------------------------------------------------
def method_label(method: str) -> str:
    return method if method in METHODS else "OTHER"


def error_type_of(body: bytes) -> str | None:
    """`error.type` of an error body (`{"error": {"type", "status", "message"}}`), when it is one."""
    try:
        found = json.loads(body)["error"]["type"]
    except (ValueError, KeyError, TypeError):
        return None
    return found if isinstance(found, str) and ERROR_TYPE.fullmatch(found) else None


def request_id_of(headers: Headers) -> str:
    given = headers.get(REQUEST_ID_HEADER, "")
    return given if CLIENT_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def key_name_of(headers: Headers, api_key: str | None) -> str | None:
    """The name of the setting whose key the request carried (never the key), or None."""
    given = headers.get("x-api-key")
    if api_key is None or not given:
        return None
    if hmac.compare_digest(given.encode("utf-8", "surrogateescape"), api_key.encode("utf-8")):
        return "api_key"
    return None


def client_of(scope: Scope) -> str | None:
    client = scope.get("client")
    if not client:
        return None
    host, port = client
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


# -- the middleware -------------------------------------------------------------------------
class ObserveMiddleware:
    """Outermost: times every request, names it by its route template, tells the metrics and, for
    JSON logs, writes its line (and answers its request id in `X-Request-ID`)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: MetricsSink | None,
        log_requests: bool,
        api_key: str | None,
    ):
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(Headers(scope=scope)) if self.log_requests else None
        status = 500  # unless a response starts: an exception the outer layer answers
        peek: bytearray | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status, peek
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status >= 400:
                    peek = bytearray()
                if request_id is not None:
                    headers = [*message.get("headers", []), (b"x-request-id", request_id.encode("ascii"))]
                    message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and peek is not None and len(peek) < ERROR_PEEK_BYTES:
                peek.extend(message.get("body", b"")[: ERROR_PEEK_BYTES - len(peek)])
            await send(message)

        record = Observed()
        tokens = observed.set(record), gate_times.set(record.times)
        if self.metrics is not None:
            self.metrics.started()
        try:
            await self.app(scope, receive, observed_send)
        finally:
            observed.reset(tokens[0])
            gate_times.reset(tokens[1])
            try:
                self._finished(scope, status, time.perf_counter() - started, record, peek, request_id)
            except Exception:  # watching must never fail a request
                log.exception("could not record a request's figures")

    def _finished(
        self,
        scope: Scope,
        status: int,
        duration_s: float,
        record: Observed,
        peek: bytearray | None,
        request_id: str | None,
    ) -> None:
        method = method_label(str(scope.get("method", "")))
        route = record.route or UNMATCHED
        times = record.times
        error_type = error_type_of(bytes(peek)) if peek else None
        if self.metrics is not None:
            self.metrics.finished(method, route, status, duration_s, times, error_type)
        if request_id is None:
            return
        fields: dict[str, Any] = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(duration_s * 1000, 2),
            "request_id": request_id,
            "client": client_of(scope),
            "api_key": record.key_name or key_name_of(Headers(scope=scope), self.api_key),
        }
        if times.jobs or times.wait_s:
            fields["model_ms"] = round(times.run_s * 1000, 2)
            fields["model_wait_ms"] = round(times.wait_s * 1000, 2)
        if error_type is not None:
            fields["error"] = error_type
        access_log.info("%s %s %d", method, route, status, extra={"event": "request", "fields": fields})


class RouteMarker:
    """Innermost: tells the observer the template of the route the router chose (`scope["route"]`)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            record = observed.get()
            path = getattr(scope.get("route"), "path", None)
            if record is not None and isinstance(path, str):
                record.route = path


def install_observer(app: FastAPI, settings: Settings) -> None:
    """The metrics (`app.state.metrics`, None when off) and, when they or JSON logs are on, the
    observer as the outermost middleware and its route marker as the innermost: call it after
    every other `add_middleware`."""
    metrics = None
    if settings.metrics:
        from facer_cli.server.metrics import Metrics

        metrics = Metrics(app)
    app.state.metrics = metrics
    log_requests = settings.log_format == "json"
    if metrics is None and not log_requests:
        return
    app.add_middleware(ObserveMiddleware, metrics=metrics, log_requests=log_requests, api_key=settings.api_key)
    app.user_middleware.append(Middleware(RouteMarker))  # innermost: inside every other


# -- log lines ----------------------------------------------------------------------------
def log_event(event: str, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """A start or stop event: a plain line in text logs, an object with `event` and `fields` in JSON."""
    log.log(level, "%s", message, extra={"event": event, "fields": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, event (when given), message,
    and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        event = getattr(record, "event", None)
        if event:
            doc["event"] = event
        doc["message"] = record.getMessage()
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)
