"""What an endpoint gets from its request: the `ServerState` the lifespan put on the app
(`state_of`), its uploads as the service's inputs, and the API key check every endpoint
but /health and /ready depends on."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from facer_cli.server.challenges import PendingChallenges
from facer_cli.server.errors import AuthenticationError
from facer_cli.server.gate import ModelGate
from facer_cli.server.replica import Replica
from facer_cli.server.uploads import Upload
from facer_cli.service import Facer, InputFile
from facer_cli.settings import Settings

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
    description="The api_key setting, when it is set (every endpoint but /health).",
)


async def require_api_key(request: Request, key: Annotated[str | None, Security(api_key_header)] = None) -> None:
    expected = request.app.state.facer_settings.api_key
    if expected is None:
        return
    if not key:
        raise AuthenticationError(f"missing {API_KEY_HEADER} header: this server requires an API key")
    if not hmac.compare_digest(key.encode("utf-8", "surrogateescape"), expected.encode("utf-8")):
        raise AuthenticationError(f"wrong API key in the {API_KEY_HEADER} header")
