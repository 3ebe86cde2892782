"""The endpoints, one module per group, each on its own `APIRouter`:

- `health`: GET /health and GET /ready (no API key).
- `templates`: POST /token/generate, POST /compare.
- `users`: GET /users, GET and DELETE /users/{name} (the store, no model).
- `liveness`: POST /liveness/challenge.
- `enroll_verify`: POST /users/{name}/enroll and /verify (images, or the frames answering a challenge).
- `identify`: POST /identify.
- `metrics`: GET /metrics, when the `metrics` setting is on (behind the API key unless `metrics_public`).

Endpoints take what they need from the request (`facer_cli.server.deps.state_of`: the service,
its settings, the model gate), never from `create_app`.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from facer_cli.server.deps import require_api_key
from facer_cli.server.errors import error_responses
from facer_cli.server.routes import enroll_verify, health, identify, liveness, metrics, templates, users


def include_routes(app: FastAPI) -> None:
    """Every endpoint, in the order the docs list them: /health and /ready open to all, the rest behind
    the API key of the scope `facer_cli.server.scopes` names."""
    app.include_router(health.router)
    for group in (templates, users, liveness, enroll_verify, identify):
        app.include_router(group.router, dependencies=[Depends(require_api_key)], responses=error_responses(401, 403))
    settings = app.state.facer_settings
    if settings.metrics:
        app.include_router(metrics.router, dependencies=[] if settings.metrics_public else [Depends(require_api_key)])
