"""Chunk writes into laid-out arrays and their publish (docs/wire.md, "Filling an array").

Thin: resolve the path for the caller (anonymous → 401 before any body is read),
then :class:`~functions.engine.chunkwrites.ChunkWrites` does the work.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request
from starlette.concurrency import run_in_threadpool

from functions.api.auth import Caller
from functions.api.deps import services_of
from functions.engine.chunkwrites import ChunkWrites
from functions.engine.spaces import Location, resolve, speaking_as

router = APIRouter(prefix="/api", tags=["writes"])

_CHUNK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _chunk_writes(request: Request) -> ChunkWrites:
    return services_of(request).chunk_writes


def _publish_quietly(writes: ChunkWrites, loc: Location) -> None:
    """The publish the last chunk sets off, after the answer; a failure leaves ``publishing``.

    Nothing is lost by it: ``POST /api/publish`` finishes the job, as after a crash.
    """
    import logging

    try:
        writes.publish(loc)
    except Exception:  # noqa: BLE001 - after the response, nobody to answer; the state says so
        logging.getLogger(__name__).exception("publish of %s after its last chunk failed", loc.path)


@router.post(
    "/chunk/{path:path}",
    summary="Write one compressed chunk into an unwritten slot of a laid-out array",
    openapi_extra=_CHUNK_BODY,
)
async def write_chunk(
    path: str,
    request: Request,
    who: Caller,
    background: BackgroundTasks,
    nchunk: Annotated[int, Query(ge=0, le=2**31, description="which chunk of the array")],
) -> dict:
    """``{"nchunk", "written", "nchunks", "state"}``; 409 when the slot already holds a chunk."""
    writes = _chunk_writes(request)
    with speaking_as(who):
        loc = resolve(path, who, write=True, allow_root_only=False)
        chunk = await request.body()
        progress = await run_in_threadpool(writes.write, loc, nchunk, chunk)
    if progress.publish:
        background.add_task(_publish_quietly, writes, loc)
    return progress.to_json()


@router.post("/publish/{path:path}", summary="Copy a filled array out as one frame; answers where it went")
def publish(path: str, request: Request, who: Caller) -> dict:
    """``{"published": "s3://..."}``; 400 while some chunk is still unwritten."""
    writes = _chunk_writes(request)
    with speaking_as(who):
        loc = resolve(path, who, write=True, allow_root_only=False)
        return {"published": writes.publish(loc)}
