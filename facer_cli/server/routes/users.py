"""GET /users, GET /users/{name}, DELETE /users/{name}: the enrolled users, read or removed
(store work in a worker thread, no model slot)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from facer_cli.server.deps import state_of
from facer_cli.server.errors import error_responses
from facer_cli.server.paths import UserName

router = APIRouter()


@router.get("/users", tags=["users"], responses=error_responses(401, 503))
async def users_list(request: Request) -> dict:
    """Every enrolled user: templates, frames used, models, dates (`facer users list --json`)."""
    return await run_in_threadpool(lambda: state_of(request).facer.users().to_dict())


@router.get("/users/{name}", tags=["users"], responses=error_responses(400, 401, 404, 503))
async def users_show(
    request: Request,
    name: UserName,
    attempts: Annotated[int, Query(ge=0, le=1000, description="Latest verify attempts to list.")] = 10,
) -> dict:
    """One user's templates and latest verify attempts (`facer users show --json`)."""
    return await run_in_threadpool(lambda: state_of(request).facer.user(name, attempts=attempts).to_dict())


@router.delete("/users/{name}", tags=["users"], responses=error_responses(400, 401, 404, 503))
async def users_remove(request: Request, name: UserName) -> dict:
    """Delete the user, every template and every per-frame sample (`facer users remove --json`)."""
    return await run_in_threadpool(lambda: state_of(request).facer.remove_user(name).to_dict())
