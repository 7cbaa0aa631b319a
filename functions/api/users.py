"""User administration (Caterva2's ``/api/adduser/``, ``/api/deluser/{user}``, ``/api/listusers/``).

Superusers only (a group of the user pool). Without a user pool these routes answer
404, as Caterva2's server without logins does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from functions.api.auth import Caller
from functions.api.deps import services_of
from functions.engine.errors import DatasetNotFound
from functions.engine.users import MAX_EMAIL_CHARS, UserAdmin

router = APIRouter(prefix="/api", tags=["users"])

_ANSWERS = {
    400: {"description": "malformed user name, too many users, unknown user (UserNotExists)"},
    401: {"description": "no login"},
    403: {"description": "not a superuser"},
    404: {"description": "this server has no user pool"},
}


class AddUser(BaseModel):
    """What ``caterva2.Client.adduser`` sends."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=MAX_EMAIL_CHARS)
    password: str | None = Field(default=None, max_length=256)
    superuser: bool = False


def _admin(request: Request) -> UserAdmin:
    users = services_of(request).users
    if users is None:
        raise DatasetNotFound("user administration (this server has no user pool)")
    return users


@router.post("/adduser/", responses=_ANSWERS, summary="Add a user (superusers)")
async def add_user(request: Request, who: Caller, payload: AddUser) -> str:
    """Create a confirmed account; answers ``"User added: ..."``."""
    admin = _admin(request)
    return await run_in_threadpool(admin.add, who, payload.username, payload.password, payload.superuser)


async def delete_user(request: Request, who: Caller, username: str) -> str:
    """Delete an account (superusers); its ``@personal`` data stays in storage."""
    return await run_in_threadpool(_admin(request).remove, who, username)


# Caterva2's clients delete with GET or POST, REST clients with DELETE: one route per
# method, each with its own operation id (one shared id makes the OpenAPI schema invalid).
for _method in ("GET", "POST", "DELETE"):
    router.add_api_route(
        "/deluser/{username}", delete_user, methods=[_method], responses=_ANSWERS,
        summary="Delete a user (superusers)", operation_id=f"delete_user_{_method.lower()}",
    )


@router.get("/listusers/", responses=_ANSWERS, summary="List users (superusers)")
async def list_users(
    request: Request, who: Caller, username: Annotated[str | None, Query(max_length=MAX_EMAIL_CHARS)] = None
) -> list[dict]:
    """Every account (``email``, ``id``, ``is_active``, ``is_superuser``, ``is_verified``), or one."""
    return await run_in_threadpool(_admin(request).listing, who, username)
