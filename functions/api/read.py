"""Read endpoints of Caterva2's protocol (docs/wire.md) plus plans and subscriptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.background import BackgroundTask

from functions.api.auth import Caller
from functions.api.deps import services_of
from functions.api.history import Version, at_version, check_budget
from functions.engine.answers import Stream
from functions.engine.reads import FetchParams, ReadService
from functions.engine.region import CacheStats
from functions.engine.spaces import Location, Principal, require_user, resolve

router = APIRouter(prefix="/api")

CACHE_HEADER = "X-Cat-Cache"


def _reads(request: Request) -> ReadService:
    return services_of(request).read


def _dataset(path: str, who: Principal, version: int | None = None) -> Location:
    """A user path that must name something inside a root (not the root itself), at *version*."""
    return at_version(resolve(path, who, allow_root_only=False), version)


def _body_response(
    body: bytes | Stream, media_type: str, headers: dict[str, str], status: int = 200
) -> Response:
    """One body, or a streamed one (answers past the buffered limit; see functions.engine.answers)."""
    if isinstance(body, Stream):
        # The length is known (a file made before the first byte is sent): clients see
        # Content-Length, not chunked encoding; the temporary file goes when the answer ends
        headers = {**headers, "Content-Length": str(body.length)}
        done = BackgroundTask(body.close)
        return StreamingResponse(
            body, status_code=status, media_type=media_type, headers=headers, background=done
        )
    return Response(content=body, status_code=status, media_type=media_type, headers=headers)


def _data_response(body: bytes | Stream, stats: CacheStats, **headers: str) -> Response:
    return _body_response(body, "application/octet-stream", {CACHE_HEADER: stats.header(), **headers})


class FetchBody(BaseModel):
    """Body of ``POST /api/fetch`` (used by clients when the query would be too long).

    A field it does not know is refused (422), never ignored: every field narrows
    the answer, so a misspelt one would widen it to the whole dataset.
    """

    model_config = ConfigDict(extra="forbid")

    slice_: str | None = None
    field: str | None = None
    filter: str | None = None
    indices: str | list | None = None


@router.get("/roots", summary="Roots this API serves")
def roots(request: Request, who: Caller) -> dict:
    """``{name: {"name": name, "subscribed": bool}}`` for every root."""
    return _reads(request).roots(who)


@router.get("/list/{path:path}", summary="Files below a path, recursively")
def list_(path: str, request: Request, who: Caller) -> list[str]:
    """Every file below *path* relative to it, sorted (``[basename]`` for a file)."""
    return _reads(request).list(resolve(path, who), who)


@router.get("/info/{path:path}", summary="Metadata of a dataset, file or directory")
def info(path: str, request: Request, who: Caller, version: Version = None) -> JSONResponse:
    """Caterva2's metadata JSON (of an earlier version with ``version``).

    A dataset's answer carries an ``ETag``: the one its byte ranges carry when its frame is
    kept, else one naming its version (a chunk write that leaves the size alone moves it).
    """
    body, headers = _reads(request).info_answer(at_version(resolve(path, who), version), who)
    return JSONResponse(body, headers=headers or None)


def _fetch(request: Request, path: str, params: FetchParams, who: Principal, ranged: Ranged,
           version: int | None = None):
    loc = _dataset(path, who, version)
    if params.indices is None and not ranged.range:
        check_budget(request, loc, params.slice_, who)
    stats = CacheStats()
    answer = _reads(request).fetch_answer(
        loc, params, stats, who, range_header=ranged.range, if_range=ranged.if_range
    )
    headers = {CACHE_HEADER: stats.header(), **answer.headers}
    return _body_response(answer.body, answer.media_type, headers, answer.status)


@dataclass(frozen=True)
class Ranged:
    """The ``Range`` and ``If-Range`` headers of a fetch (RFC 9110 section 14)."""

    range: str | None = None
    if_range: str | None = None


async def ranged_headers(
    range_: Annotated[str | None, Header(alias="Range")] = None,
    if_range: Annotated[str | None, Header(alias="If-Range")] = None,
) -> Ranged:
    """The range headers; ``async``: two header reads need no worker thread (a sync
    dependency costs a threadpool hop on every request).
    """
    return Ranged(range_, if_range)


RangeHeaders = Annotated[Ranged, Depends(ranged_headers)]


@router.get("/fetch/{path:path}", summary="A slice of a dataset as a Blosc2 cframe", response_class=Response)
def fetch(
    path: str,
    request: Request,
    who: Caller,
    ranged: RangeHeaders,
    slice_: str | None = None,
    field: str | None = None,
    filter: str | None = None,
    indices: str | None = None,
    version: Version = None,
) -> Response:
    """``slice_`` (``"2:4, 3:6"``), ``indices`` (JSON), ``field`` and ``filter`` select data.

    A stored dataset's whole frame is sent as it was uploaded or published, and a ``Range``
    of it answers 206 (``Accept-Ranges: bytes``); anything else is made per request and
    refuses ranges with 416 (``Accept-Ranges: none``).
    """
    return _fetch(request, path, FetchParams(slice_, field, filter, indices), who, ranged, version)


@router.post(
    "/fetch/{path:path}", summary="Same as GET, with parameters in a JSON body", response_class=Response
)
def fetch_post(
    path: str,
    request: Request,
    who: Caller,
    body: Annotated[FetchBody, Body()],
    ranged: RangeHeaders,
    version: Version = None,
) -> Response:
    """For keys too long for a query string."""
    params = FetchParams(body.slice_, body.field, body.filter, body.indices)
    return _fetch(request, path, params, who, ranged, version)


@router.get("/chunk/{path:path}", summary="One compressed chunk, as stored", response_class=Response)
def chunk(
    path: str,
    request: Request,
    who: Caller,
    nchunk: Annotated[int, Query(description="chunk index")],
    version: Version = None,
) -> Response:
    """Exactly ``schunk.get_chunk(nchunk)`` (what ``blosc2.Proxy`` reads)."""
    stats = CacheStats()
    body = _reads(request).chunk(_dataset(path, who, version), nchunk, stats, who)
    return _data_response(body, stats)


@router.get("/download/{path:path}", summary="The dataset as a file", response_class=Response)
def download(
    path: str,
    request: Request,
    who: Caller,
    accept_encoding: Annotated[str | None, Header()] = None,
    version: Version = None,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    """Frames as frames (stored ones exactly as uploaded); plain files decompressed, or as a
    cframe with ``Accept-Encoding: blosc2``.  Serves no byte ranges (416; use ``/api/fetch``).
    """
    wants_blosc2 = "blosc2" in (accept_encoding or "")
    loc = _dataset(path, who, version)
    check_budget(request, loc, None, who)
    stats = CacheStats()
    dl = _reads(request).download(
        loc, blosc2_encoding=wants_blosc2, stats=stats, who=who, ranged=bool(range_header)
    )
    headers = {
        "Accept-Ranges": "none",
        CACHE_HEADER: stats.header(),
        "Content-Disposition": f'attachment; filename="{_quote(dl.filename)}"',
    }
    if dl.content_encoding:
        headers["Content-Encoding"] = dl.content_encoding
    return _body_response(dl.body, dl.media_type, headers)


@router.get("/plan/{path:path}", summary="Read plan: presigned URLs of the chunks a slice needs")
def plan(
    path: str, request: Request, who: Caller, slice_: str | None = None, version: Version = None
) -> JSONResponse:
    """The chunks ``slice_`` touches, in the region's cache bucket, as short-lived URLs."""
    stats = CacheStats()
    body = _reads(request).plan(_dataset(path, who, version), slice_, stats, who)
    return JSONResponse(body, headers={CACHE_HEADER: stats.header()})


@router.post("/subscribe/{root}", summary="Follow a root: prefetch its changed chunks into this region")
def subscribe(root: str, request: Request, who: Caller) -> dict:
    """Subscribe this region to *root* (a logged-in user's request: it changes the region for everyone)."""
    require_user(who, "subscribing")
    return _reads(request).set_subscribed(resolve(root, who), True)


@router.post("/unsubscribe/{root}", summary="Stop following a root")
def unsubscribe(root: str, request: Request, who: Caller) -> dict:
    """Unsubscribe this region from *root* (reads keep working on demand); needs a logged-in user."""
    require_user(who, "unsubscribing")
    return _reads(request).set_subscribed(resolve(root, who), False)


def _quote(name: str) -> str:
    return name.replace('"', "").replace("\r", "").replace("\n", "")
