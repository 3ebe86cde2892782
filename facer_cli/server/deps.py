"""What an endpoint gets from its request: the `ServerState` the lifespan put on the app
(`state_of`), its uploads as the service's inputs, and the API key check every endpoint
but /health and /ready depends on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from facer_cli.server.challenges import PendingChallenges
from facer_cli.server.errors import AuthenticationError, ScopeError
from facer_cli.server.gate import ModelGate
from facer_cli.server.observe import observed
from facer_cli.server.replica import Replica
from facer_cli.server.scopes import scope_for
from facer_cli.server.uploads import Upload
from facer_cli.service import Facer, InputFile
from facer_cli.service.keys import KeyRing, allows
from facer_cli.settings import Settings
from facer_cli.store.records import ACTING_KEY

API_KEY_HEADER = "X-API-Key"


@dataclass
class ServerState:
    """`app.state.facer` once the lifespan has loaded the models."""

    facer: Facer
    gate: ModelGate
    started: float
    challenges: PendingChallenges
    replica: Replica

    @property
    def settings(self) -> Settings:
        return self.facer.settings


def state_of(request: Request) -> ServerState:
    return request.app.state.facer


def uploads_as_inputs(uploads: list[Upload]) -> list[InputFile]:
    return [InputFile.from_bytes(upload.name, upload.data) for upload in uploads]


# -- access ------------------------------------------------------------------
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="A key from `facer keys add`, or the api_key setting (an admin key), once either exists: "
    "every endpoint but /health and /ready; kiosk keys verify and identify only.",
)


async def require_api_key(request: Request, key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    """The request's key, once keys exist (the api_key setting, or an active key in the store): none,
    unknown or revoked is 401; a key whose scope does not allow the endpoint (`scopes.ROUTE_SCOPES`)
    is 403. The key's name is recorded in the logs the request writes (`store.records.ACTING_KEY`)."""
    keys: KeyRing = request.app.state.keys
    if not await run_in_threadpool(keys.required):
        return
    if not key:
        raise AuthenticationError(f"missing {API_KEY_HEADER} header: this server requires an API key")
    found = await run_in_threadpool(keys.identify, key)
    if found is None:
        raise AuthenticationError(f"wrong API key in the {API_KEY_HEADER} header (unknown or revoked)")
    # Set in this task, so the endpoint and the worker threads it starts see it (contextvars).
    ACTING_KEY.set(found.name)
    record = observed.get()
    if record is not None:  # the JSON access log's `api_key`
        record.key_name = found.name
    route = request.scope.get("route")
    needed = scope_for(request.method, getattr(route, "path", request.url.path))
    if not allows(found.scope, needed):
        raise ScopeError(
            f"the API key {found.name!r} has the {found.scope} scope; this request needs the {needed} scope"
        )
