"""Who may reach the service: loopback without a key, anything else only with an API key.

Checked by `facer serve` before it listens, and by the app itself on every request
(from the address the connection arrived at), so an app started by uvicorn's own
command line — `uvicorn --factory facer_cli.server.app:create_app` — is held to the
same rule (`ExposureMiddleware`).

Loaded by the CLI at start: nothing here imports FastAPI or Starlette, and the middleware
is handed the function that turns the refusal into a response (`errors.response_for`,
whose module imports this one).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Callable

from facer_cli.errors import ConfigError, FacerError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send


class ExposureError(ConfigError):
    """The service would be reachable from other machines without an API key (a settings problem)."""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and "localhost" only: any other name or address may be reachable from outside."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return False
    return True


def check_exposure(host: str, key_required: bool, allow_insecure_remote: bool) -> None:
    """Refuse a non-loopback address where requests need no API key (neither the `api_key` setting nor
    an active key in the store) unless told, in so many words, that it is insecure."""
    if not key_required and not is_loopback(host) and not allow_insecure_remote:
        raise ExposureError(
            f"refusing to listen on {host} without an API key: anyone who can reach this port could enroll, "
            "verify and delete users. Set the api_key setting (FACER_API_KEY) or add a key (facer keys add), "
            "or listen on a loopback address"
        )


class ExposureMiddleware:
    """Every request is refused (403) when it reached the server on a non-loopback address while no
    API key is needed — whoever started the app, `facer serve` or uvicorn's own command line.
    `key_required` says whether one is (the setting, or an active key in the store: a few seconds'
    cache); a store that cannot say answers its own error (503)."""

    def __init__(
        self,
        app: ASGIApp,
        key_required: Callable[[], bool],
        allow_insecure_remote: bool,
        respond: Callable[[FacerError], ASGIApp],
    ):
        self.app = app
        self.key_required = key_required
        self.allow_insecure_remote = allow_insecure_remote
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        # A real socket reports the IP address it accepted on; other transports (a unix socket,
        # an in-process test client) report none, and reach no other machine by themselves.
        host = str(server[0]) if server else ""
        if scope["type"] == "http" and is_ip_address(host) and not is_loopback(host) and not self.allow_insecure_remote:
            try:
                check_exposure(host, self.key_required(), self.allow_insecure_remote)
            except FacerError as exc:
                await self.respond(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)
