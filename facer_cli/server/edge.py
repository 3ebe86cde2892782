"""What `facer serve` puts between the network and the app: uvicorn's h11 protocol with deadlines.

uvicorn closes a connection idle *between* requests (`timeout_keep_alive`), but not one that never
completes a request: 50 idle sockets, or sockets that send half a header, would hold their place
forever, and with uvicorn's `limit_concurrency` every request, `/health` included, got 503. Here:

- a request's headers must be complete `server_header_timeout_s` after the connection opened or
  after the request's first byte; else the connection is closed (with a 408 when part of a
  request had come, silently when nothing had);
- its body must be complete `server_body_timeout_s` after the headers: the app answers 408 then
  (`BodyLimitMiddleware`), and a connection still sending a second later is closed here;
- a connection idle between requests is closed after `server_keepalive_s`;
- at most `server_max_connections` are kept open: one more closes the connection that has waited
  longest for a request, so slow or idle clients can never lock out `/health` or a real request
  (503 only when every connection is busy with a request);
- uvicorn's plain-text 400 for a malformed request is the JSON error body.

uvicorn's own `limit_concurrency` is not used (it counts idle connections too); the memory held
by request bodies is bounded by `BodyLimitMiddleware` instead.

On SIGTERM (or Ctrl-C) the listening socket closes at once (a new connection is refused), idle
connections close, the requests in flight get `server_drain_timeout_s` to finish, and the
process exits 0 (`DrainingServer`: uvicorn would raise SIGTERM again once drained, and the
process would end killed by it).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import signal
import socket
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any, ClassVar

import h11
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from facer_cli.server.errors import printable
from facer_cli.server.listen import ServeError
from facer_cli.server.observe import log_event
from facer_cli.settings import Settings

log = logging.getLogger("facer.server")

# Seconds past server_body_timeout_s before a connection still sending its body is closed here:
# the app's own 408 comes first.
BODY_GRACE_S = 1.0


@dataclass(frozen=True)
class EdgeLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keepalive_s: float = 5.0
    max_connections: int = 500

    @classmethod
    def from_settings(cls, settings: Settings) -> "EdgeLimits":
        return cls(
            header_timeout_s=settings.server_header_timeout_s,
            body_timeout_s=settings.server_body_timeout_s,
            keepalive_s=settings.server_keepalive_s,
            max_connections=settings.server_max_connections,
        )


def raw_error(status: int, reason: str, type_name: str, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 error response, for answers given outside any request cycle; the connection closes after it."""
    body = json.dumps({"error": {"type": type_name, "status": status, "message": message}}).encode("utf-8")
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the deadlines and the connection cap above (`limits`, set by
    `protocol_class`)."""

    limits: ClassVar[EdgeLimits] = EdgeLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.limits.keepalive_s  # type: ignore[assignment]  # uvicorn takes whole seconds
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_kind: str | None = None
        self._idle_since = self.loop.time()

    # -- connection life ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers", self.limits.header_timeout_s)
        if self._open_count() > self.limits.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_since = self.loop.time()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        # A request h11 cannot parse (bad syntax, headers over the size limit): the JSON body, then close.
        if not self.transport.is_closing():
            message = "malformed HTTP request: bad syntax, or headers larger than the server accepts"
            self.transport.write(raw_error(400, "Bad Request", "RequestError", message))
            self.transport.close()

    # -- deadlines -------------------------------------------------------------------------
    def _follow(self) -> None:
        """Arm the deadline that fits where the current request is."""
        if self.transport is None or self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if self.timeout_keep_alive_task is not None:  # idle between requests: uvicorn's keep-alive
                self._disarm()
            elif self._deadline_kind != "headers":  # a new request has begun to arrive
                self._arm("headers", self.limits.header_timeout_s)
        elif state is h11.SEND_BODY:
            if self._deadline_kind != "body":
                self._arm("body", self.limits.body_timeout_s + BODY_GRACE_S)
        else:  # the request is in; the app's time is bounded by the model gate
            self._disarm()

    def _arm(self, kind: str, seconds: float) -> None:
        self._disarm()
        self._deadline_kind = kind
        self._deadline = self.loop.call_later(seconds, self._expired, kind, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._deadline_kind = None

    def _expired(self, kind: str, seconds: float) -> None:
        self._deadline = None
        self._deadline_kind = None
        if self.transport.is_closing():
            return
        if kind == "headers" and self.conn.their_state is h11.IDLE:
            partial = bool(self.conn.trailing_data[0])
            if partial:
                message = f"the request headers did not arrive within {seconds:g} s (server_header_timeout_s)"
                self.transport.write(raw_error(408, "Request Timeout", "RequestTimeoutError", message))
                log.info("closed the connection of %s: request headers incomplete after %g s", self._peer(), seconds)
            else:
                log.debug("closed the connection of %s: no request within %g s", self._peer(), seconds)
            self.transport.close()
        elif kind == "body" and self.conn.their_state is h11.SEND_BODY:
            log.info("closed the connection of %s: request body incomplete after %g s", self._peer(), seconds)
            self.transport.close()

    # -- the connection cap ----------------------------------------------------------------
    def _waiting_for_request(self) -> bool:
        return (
            self.transport is not None
            and not self.transport.is_closing()
            and self.conn.their_state is h11.IDLE
            and (self.cycle is None or self.cycle.response_complete)
        )

    def _open_count(self) -> int:
        return sum(1 for c in self.connections if c.transport is not None and not c.transport.is_closing())

    def _make_room(self) -> None:
        idle = [
            c
            for c in self.connections
            if c is not self and isinstance(c, GuardedH11Protocol) and c._waiting_for_request()
        ]
        if idle:
            victim = min(idle, key=lambda c: c._idle_since)
            log.info(
                "%d connections open (server_max_connections): closed the one of %s, idle the longest",
                self._open_count(),
                victim._peer(),
            )
            victim._disarm()
            victim.transport.close()
            return
        message = f"busy: {self.limits.max_connections} connections open, each with a request; retry shortly"
        log.warning("refused a connection from %s: %s", self._peer(), message)
        self.transport.write(raw_error(503, "Service Unavailable", "ServerBusyError", message, {"retry-after": "1"}))
        self._disarm()
        self.transport.close()

    def _peer(self) -> str:
        return printable("%s:%d" % self.client) if self.client else "a client"


def protocol_class(limits: EdgeLimits) -> type[GuardedH11Protocol]:
    """The protocol class uvicorn instantiates per connection, with these limits."""
    return type("FacerH11Protocol", (GuardedH11Protocol,), {"limits": limits})


class QuietErrors:
    """Outermost: an exception the app already answered (500) and logged is not logged again by
    uvicorn with a second traceback; one it did not log is logged here, once."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if not getattr(exc, "facer_logged", False):
                log.error("internal error on %s %s", scope.get("method"), printable(scope.get("path")), exc_info=exc)


def log_config(log_level: str, log_format: str = "text") -> dict:
    """uvicorn's logging setup, with facer's own lines (`facer.server`) through the same handler.
    JSON: every line one object (`facer_cli.server.observe.JsonFormatter`), the request lines
    (`facer.access`, in place of uvicorn's access log) on stdout, the rest on stderr."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["facer"] = {"handlers": ["default"], "level": log_level.upper(), "propagate": False}
    if log_format == "json":
        json_formatter = {"()": "facer_cli.server.observe.JsonFormatter"}
        config["formatters"] = {"default": json_formatter, "access": json_formatter}
        config["loggers"]["facer.access"] = {"handlers": ["access"], "level": log_level.upper(), "propagate": False}
    return config


class DrainingServer(uvicorn.Server):
    """uvicorn's server, its stop logged as it drains, and SIGTERM an ordinary end (exit 0): not
    raised again once the requests in flight are done."""

    stop_signal: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal = sig
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)  # uvicorn raises these again after shutdown
        while captured and signal.SIGTERM in captured:
            captured.remove(signal.SIGTERM)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        in_flight = len(self.server_state.tasks)
        timeout_s = self.config.timeout_graceful_shutdown or 0
        cause = signal.Signals(self.stop_signal).name if self.stop_signal else "stop"
        log_event(
            "draining",
            f"{cause}: new connections refused; {in_flight} request(s) in flight, given up to {timeout_s:g} s to finish",
            signal=cause,
            in_flight=in_flight,
            timeout_s=timeout_s,
        )
        started = time.perf_counter()
        await super().shutdown(sockets)
        drained_s = time.perf_counter() - started
        log_event("stopped", f"stopped: drained in {drained_s:.2f} s", drained_s=round(drained_s, 3))


def build_server(app: ASGIApp, settings: Settings, log_level: str = "info", configure_logging: bool = True) -> Any:
    """A uvicorn.Server for `app` with facer's protocol and limits (run it with `serve_on`).
    `configure_logging=False` leaves the process's logging as it is (tests)."""
    import uvicorn

    keepalive = max(1, round(settings.server_keepalive_s))  # uvicorn's type; the protocol uses the exact value
    config = uvicorn.Config(
        QuietErrors(app),
        log_config=log_config(log_level, settings.log_format) if configure_logging else None,
        host=settings.server_host,
        port=settings.server_port,
        http=protocol_class(EdgeLimits.from_settings(settings)),
        ws="none",
        lifespan="on",
        log_level=log_level,
        timeout_keep_alive=keepalive,
        workers=1,
        proxy_headers=False,
        server_header=False,
        access_log=settings.log_format != "json",  # JSON: the observer writes each request's line
        timeout_graceful_shutdown=settings.server_drain_timeout_s,  # type: ignore[arg-type]  # any number of seconds
    )
    return DrainingServer(config)


def serve_on(server: Any, sock: socket.socket) -> None:
    """Run until stopped (Ctrl-C, SIGTERM, `server.should_exit`); `ServeError` when it never started."""
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C once the server has shut down gracefully: a normal end, as uvicorn.run
        pass
    except SystemExit:  # uvicorn's own exit status (3) when the app's startup failed: never the CLI's
        raise ServeError("the HTTP service did not start (see the log lines above)") from None
    if not server.started:
        raise ServeError("the HTTP service did not start (see the log lines above)")
