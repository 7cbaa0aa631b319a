"""Creating lazy expressions: ``POST /api/lazyexpr/`` and ``POST /api/upload_lazyarr/{path}``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, Field

from functions.api.auth import Caller
from functions.api.deps import services_of
from functions.engine.errors import BadRequest
from functions.engine.lazydata import computed_on_creation, dataset_name
from functions.engine.spaces import PERSONAL, Location, Principal, may_read, resolve, speaking_as

router = APIRouter(prefix="/api", tags=["lazy expressions"])


class LazyExprBody(BaseModel):
    """What ``client.lazyexpr(name, expression, operands)`` sends."""

    name: str = Field(max_length=140)
    expression: str = Field(max_length=4000)
    operands: dict[str, str]


class LazyArrBody(BaseModel):
    """What ``caterva2.Client.upload(lazy_expr, path)`` sends."""

    name: str | None = None
    expression: str | None = Field(default=None, max_length=4000)
    func: str | None = None
    operands: dict[str, str] = Field(default_factory=dict)
    dtype: str | None = None
    shape: list[int] | None = None
    compute: bool = False



def _create(
    request: Request, who: Principal, loc: Location, expression: str, operands: dict[str, Any]
) -> None:
    services = services_of(request)
    if len(operands) > 64:
        raise BadRequest("an expression takes at most 64 operands")
    stored = {}
    for alias, path in operands.items():
        # Operands as the creator may address them: @personal is *their* personal space
        target = resolve(str(path), who, allow_root_only=False)
        stored[alias] = f"{target.root}/{target.rel}"
    with speaking_as(who):
        result = services.lazy.create(loc.root, loc.rel, expression, stored, lambda root: may_read(root, who))
    services.writes.settle(result)


@router.post("/lazyexpr/", summary="Create a lazy expression in @personal (computed on read)")
def lazyexpr(request: Request, who: Caller, body: Annotated[LazyExprBody, Body()]) -> str:
    """``{"name", "expression", "operands": {name: path}}`` → ``"@personal/<name>.b2nd"``.

    Only the definition is stored; shape and dtype are derived from the operands.
    """
    loc = resolve(f"{PERSONAL}/{dataset_name(body.name)}", who, write=True)
    _create(request, who, loc, body.expression, body.operands)
    return loc.path


@router.post("/upload_lazyarr/{path:path}", summary="Store a blosc2 lazy expression at a path")
def upload_lazyarr(path: str, request: Request, who: Caller, body: Annotated[LazyArrBody, Body()]) -> str:
    """What ``caterva2.Client.upload(expr, path)`` sends for a ``blosc2.LazyExpr``.

    User Python (``func``, a ``LazyUDF``) is refused: running it would be remote
    code execution.  ``compute: true`` stores the evaluated result instead.
    """
    if body.func:
        raise BadRequest("user-defined Python functions (LazyUDF) are not accepted: only expressions are")
    if not body.expression:
        raise BadRequest("expression is required")
    loc = resolve(path, who, write=True, allow_root_only=False)
    if not loc.rel.endswith(".b2nd"):
        raise BadRequest("a lazy expression is an n-d array: give the path a .b2nd suffix")
    _create(request, who, loc, body.expression, body.operands)
    if body.compute or computed_on_creation(body.expression):
        services = services_of(request)
        with speaking_as(who):
            result = services.lazy.materialise(loc.root, loc.rel, lambda root: may_read(root, who))
        services.writes.settle(result)
    return loc.path
