"""Versions, the change feed and cost estimates (docs/wire.md, "Versions, changes, estimates")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse

from functions.api.auth import Caller
from functions.api.deps import services_of
from functions.engine.feed import MAX_PAGE
from functions.engine.history import MAX_HISTORY
from functions.engine.spaces import Location, Principal, resolve
from functions.engine.timetravel import BudgetExceeded, TimeTravel

router = APIRouter(prefix="/api")

#: The per-request budget header: compressed bytes a read may move from storage
BUDGET_HEADER = "X-Cat-Max-Bytes"
#: ``?version=`` of the read routes: an earlier version of the dataset (1 = the first)
Version = Annotated[int | None, Query(ge=1, description="read this version (default: the current one)")]


def _time(request: Request) -> TimeTravel:
    return services_of(request).timetravel


def at_version(loc: Location, version: int | None) -> Location:
    """*loc* pinned to *version* (unchanged for None)."""
    if version is None:
        return loc
    return Location(loc.space, loc.root, loc.rel, version)


def check_budget(request: Request, loc: Location, slice_: str | None, who: Principal) -> None:
    """Refuse (413, with the estimate) a read over the request's ``X-Cat-Max-Bytes``, if it has one."""
    raw = request.headers.get(BUDGET_HEADER)
    if raw is None:
        return
    try:
        limit = int(raw)
    except ValueError:
        limit = -1
    _time(request).check_budget(loc, slice_, who, limit)


@router.get("/history/{path:path}", summary="The kept versions of a dataset, newest first")
def history_(
    path: str,
    request: Request,
    who: Caller,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 50,
    before: Annotated[int | None, Query(ge=1, description="only versions older than this")] = None,
) -> dict:
    """``{"path", "current", "versions": [{"version", "mtime", "shape", "cbytes", "nchunks",
    "changed_chunks", "author", "current"}], "more"}``.
    """
    loc = resolve(path, who, allow_root_only=False)
    return _time(request).history(loc, who, limit=limit, before=before)


@router.get("/changes/{root}", summary="A root's committed changes after a cursor, in commit order")
def changes(
    root: str,
    request: Request,
    who: Caller,
    since: Annotated[str | None, Query(description="the cursor an earlier answer or event gave")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict:
    """``{"root", "changes": [{"type", "path", "version", "previous_version", "mtime", "manifest",
    "changed_chunks", "nchunks", "seq", "cursor"}], "cursor", "more"}``.
    """
    return _time(request).changes(resolve(root, who), who, since=since, limit=limit)


@router.get("/estimate/{path:path}", summary="What a read of a slice would do and cost, before it runs")
def estimate_(
    path: str, request: Request, who: Caller, slice_: str | None = None, version: Version = None
) -> dict:
    """Chunks, S3 GETs, compressed and decompressed bytes, route and a dollar estimate."""
    loc = at_version(resolve(path, who, allow_root_only=False), version)
    return _time(request).estimate(loc, slice_, who)


def _over_budget(request: Request, exc: BudgetExceeded) -> JSONResponse:
    return JSONResponse({"detail": str(exc), "estimate": exc.figures}, status_code=413)


def install(app: FastAPI) -> None:
    """Add the routes and the 413 answer of :class:`BudgetExceeded`."""
    app.include_router(router)
    app.add_exception_handler(BudgetExceeded, _over_budget)
