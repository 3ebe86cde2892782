"""Which API key scope each endpoint needs: one table, route by route (`ROUTE_SCOPES`).

A kiosk key verifies and identifies, and answers the liveness challenges for them; an admin key
may do everything (the scopes: `facer_cli.service.keys`). None: open to all, no key (/health,
/ready, the API docs). An endpoint missing from the table needs the admin scope, and the tests
fail until it is added (tests/test_api_keys.py walks the app's routes). /metrics needs the admin
scope unless the `metrics_public` setting opens it (`facer_cli.server.routes.include_routes`).
"""

from __future__ import annotations

from facer_cli.service.keys import ADMIN, KIOSK

# (method, path template) → the scope it needs; None: open to all.
ROUTE_SCOPES: dict[tuple[str, str], str | None] = {
    ("GET", "/health"): None,
    ("GET", "/ready"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/docs"): None,
    ("GET", "/redoc"): None,
    ("POST", "/users/{name}/verify"): KIOSK,
    ("POST", "/identify"): KIOSK,
    ("POST", "/liveness/challenge"): KIOSK,
    ("POST", "/liveness/challenge/{challenge_id}/frames"): KIOSK,
    ("POST", "/users/{name}/enroll"): ADMIN,
    ("GET", "/users"): ADMIN,
    ("GET", "/users/{name}"): ADMIN,
    ("DELETE", "/users/{name}"): ADMIN,
    ("POST", "/token/generate"): ADMIN,
    ("POST", "/compare"): ADMIN,
    ("GET", "/metrics"): ADMIN,
}


def scope_for(method: str, path: str) -> str:
    """The scope a request to this endpoint needs (admin for one the table does not name). Only
    endpoints behind the key check ask: the open ones never call it."""
    return ROUTE_SCOPES.get((method.upper(), path)) or ADMIN


__all__ = ["ROUTE_SCOPES", "scope_for"]
