"""Who may reach the service: loopback without a key, anything else only with an API key.

Checked by `facer serve` before it listens, and by the app itself on every request
(from the address the connection arrived at), so an app started by uvicorn's own
command line — `uvicorn --factory facer_cli.server.app:create_app` — is held to the
same rule.
"""

from __future__ import annotations

import ipaddress

from facer_cli.errors import ConfigError


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


def check_exposure(host: str, api_key: str | None, allow_insecure_remote: bool) -> None:
    """Refuse a non-loopback address without an API key unless told, in so many words, that it is insecure."""
    if api_key is None and not is_loopback(host) and not allow_insecure_remote:
        raise ExposureError(
            f"refusing to listen on {host} without an API key: anyone who can reach this port could enroll, "
            "verify and delete users. Set the api_key setting (FACER_API_KEY), or listen on a loopback address"
        )
