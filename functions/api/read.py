"""Read endpoints of Caterva2's protocol (CATERVA2_WIRE.md) plus plans and subscriptions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from functions.api.auth import scoped_reads
from functions.engine.errors import BadRequest
from functions.engine.paths import split_path
from functions.engine.reader import CacheStats
from functions.engine.service import FetchParams
from functions.engine.spaces import ScopedReads

router = APIRouter(prefix="/api")

CACHE_HEADER = "X-Cat-Cache"


# The read service as the caller may use it: user spaces mapped to storage roots,
# other users' spaces unreachable (see functions.engine.spaces.ScopedReads)
Read = Annotated[ScopedReads, Depends(scoped_reads)]


def _data_response(body: bytes, stats: CacheStats, **headers: str) -> Response:
    hdrs = {CACHE_HEADER: stats.header(), **headers}
    return Response(content=body, media_type="application/octet-stream", headers=hdrs)


class FetchBody(BaseModel):
    """Body of ``POST /api/fetch`` (used by clients when the query would be too long)."""

    slice_: str | None = None
    field: str | None = None
    filter: str | None = None
    indices: str | list | None = None


@router.get("/roots", summary="Roots this API serves")
def roots(read: Read) -> dict:
    """``{name: {"name": name, "subscribed": bool}}`` for every root."""
    return read.roots()


@router.get("/list/{path:path}", summary="Files below a path, recursively")
def list_(path: str, read: Read) -> list[str]:
    """Every file below *path* relative to it, sorted (``[basename]`` for a file)."""
    root, rel = split_path(path)
    return read.list(root, rel)


@router.get("/info/{path:path}", summary="Metadata of a dataset, file or directory")
def info(path: str, read: Read) -> dict:
    """Caterva2's metadata JSON."""
    root, rel = split_path(path)
    return read.info(root, rel)


def _fetch(path: str, params: FetchParams, read: ScopedReads, range_header: str | None) -> Response:
    if range_header:
        # Frames are assembled on demand, so byte offsets are not stable to offer;
        # clients fall back to /api/chunk on any non-206 answer (and api/info says so)
        return JSONResponse(
            {"detail": "byte ranges are not served; read whole chunks through /api/chunk"},
            status_code=416,
        )
    root, rel = split_path(path, allow_root_only=False)
    stats = CacheStats()
    body = read.fetch(root, rel, params, stats)
    return _data_response(body, stats)


@router.get("/fetch/{path:path}", summary="A slice of a dataset as a Blosc2 cframe", response_class=Response)
def fetch(
    path: str,
    read: Read,
    slice_: str | None = None,
    field: str | None = None,
    filter: str | None = None,
    indices: str | None = None,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    """``slice_`` (``"2:4, 3:6"``), ``indices`` (JSON), ``field`` and ``filter`` select data."""
    return _fetch(path, FetchParams(slice_, field, filter, indices), read, range_header)


@router.post(
    "/fetch/{path:path}", summary="Same as GET, with parameters in a JSON body", response_class=Response
)
def fetch_post(
    path: str,
    read: Read,
    body: Annotated[FetchBody, Body()],
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    """For keys too long for a query string."""
    return _fetch(path, FetchParams(body.slice_, body.field, body.filter, body.indices), read, range_header)


@router.get("/chunk/{path:path}", summary="One compressed chunk, as stored", response_class=Response)
def chunk(path: str, read: Read, nchunk: Annotated[int, Query(description="chunk index")]) -> Response:
    """Exactly ``schunk.get_chunk(nchunk)`` (what ``blosc2.Proxy`` reads)."""
    root, rel = split_path(path, allow_root_only=False)
    stats = CacheStats()
    return _data_response(read.chunk(root, rel, nchunk, stats), stats)


@router.get("/download/{path:path}", summary="The dataset as a file", response_class=Response)
def download(
    path: str,
    read: Read,
    accept_encoding: Annotated[str | None, Header()] = None,
) -> Response:
    """Frames as frames; plain files decompressed, or as a cframe with ``Accept-Encoding: blosc2``."""
    root, rel = split_path(path, allow_root_only=False)
    wants_blosc2 = "blosc2" in (accept_encoding or "")
    stats = CacheStats()
    dl = read.download(root, rel, blosc2_encoding=wants_blosc2, stats=stats)
    headers = {
        CACHE_HEADER: stats.header(),
        "Content-Disposition": f'attachment; filename="{_quote(dl.filename)}"',
    }
    if dl.content_encoding:
        headers["Content-Encoding"] = dl.content_encoding
    return Response(content=dl.body, media_type=dl.media_type, headers=headers)


@router.get("/plan/{path:path}", summary="Read plan: presigned URLs of the chunks a slice needs")
def plan(path: str, read: Read, slice_: str | None = None) -> JSONResponse:
    """The chunks ``slice_`` touches, in the region's cache bucket, as short-lived URLs."""
    root, rel = split_path(path, allow_root_only=False)
    stats = CacheStats()
    body = read.plan(root, rel, slice_, stats)
    return JSONResponse(body, headers={CACHE_HEADER: stats.header()})


@router.post("/subscribe/{root}", summary="Follow a root: prefetch its changed chunks into this region")
def subscribe(root: str, read: Read) -> dict:
    """Subscribe this region to *root*."""
    return _set_subscription(root, read, True)


@router.post("/unsubscribe/{root}", summary="Stop following a root")
def unsubscribe(root: str, read: Read) -> dict:
    """Unsubscribe this region from *root* (reads keep working on demand)."""
    return _set_subscription(root, read, False)


def _set_subscription(root: str, read: ScopedReads, on: bool) -> dict:
    name, rel = split_path(root)
    if rel:
        raise BadRequest("subscribe takes a root name, not a path")
    read.region.catalog(name)  # 404 for unknown roots
    roots = read.region.set_subscribed(name, on)
    return {"name": name, "subscribed": name in roots}


def _quote(name: str) -> str:
    return name.replace('"', "").replace("\r", "").replace("\n", "")
