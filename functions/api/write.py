"""Write endpoints of Caterva2's protocol (docs/wire.md) plus presigned uploads and limits.

Each endpoint resolves its paths for the caller (:mod:`functions.engine.spaces`)
before reading any body, so an anonymous or forbidden write costs no upload,
then hands the work to :class:`~functions.engine.writes.WriteService`.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Form, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from catclient.wire import human_bytes
from functions.api.auth import Caller
from functions.api.deps import services_of
from functions.engine.errors import BadRequest, DatasetNotFound, TooLarge
from functions.engine.spaces import Location, Principal, destination, resolve, speaking_as
from functions.engine.urlload import MAX_URL_CHARS
from functions.engine.writes import WriteService

router = APIRouter(prefix="/api", tags=["writes"])

#: Multipart framing around the file (boundaries, part headers), bytes: tolerated
#: over ``max_upload_bytes`` when judging a request by its Content-Length.
_MULTIPART_SLACK = 64 << 10
#: A user path is at most 900 characters (paths.MAX_PATH); leave room for encoding.
_MAX_PATH_FIELD = 2048

_MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}



def write_service(request: Request) -> WriteService:
    """The process's write service (built once in ``Services``)."""
    return services_of(request).writes


Writes = Annotated[WriteService, Depends(write_service)]


class MoveCopyBody(BaseModel):
    """Body of ``/api/move/`` and ``/api/copy/``."""

    src: str = Field(max_length=_MAX_PATH_FIELD, description="path of a dataset or directory")
    dst: str = Field(max_length=_MAX_PATH_FIELD, description="destination path (a directory receives src)")




def _over_payload(size: int, limit: int, path: str) -> TooLarge:
    return TooLarge(
        f"the request is {human_bytes(size)}, over this API's payload limit of {human_bytes(limit)}: "
        f"upload it through POST /api/upload-url/{path} (a presigned S3 PUT, then POST the "
        f"commit URL it returns); catclient does this by itself"
    )


async def _file_field(request: Request, path: str) -> tuple[str | None, bytes]:
    """The multipart ``file`` field's name and bytes, refusing oversized requests before reading them."""
    settings = services_of(request).settings
    length = request.headers.get("content-length", "")
    if length.isdigit():
        size = int(length)
        if settings.max_upload_bytes and size > settings.max_upload_bytes + _MULTIPART_SLACK:
            limit = human_bytes(settings.max_upload_bytes)
            raise TooLarge(f"the upload is {human_bytes(size)}, over this server's limit of {limit}")
        if settings.payload_limit and size > settings.payload_limit:
            raise _over_payload(size, settings.payload_limit, path)
    form = await request.form(max_files=1, max_fields=8)
    try:
        field = form.get("file")
        if not isinstance(field, UploadFile):
            raise BadRequest("send the data as a multipart/form-data file field named 'file'")
        data = await field.read()
        name = field.filename
    finally:
        await form.close()
    # A chunked request has no Content-Length to judge up front; behave as Lambda would
    if settings.payload_limit and len(data) > settings.payload_limit:
        raise _over_payload(len(data), settings.payload_limit, path)
    return name, data


def _user_path(loc: Location) -> str:
    return urllib.parse.quote(loc.path, safe="/@")


# ---------------------------------------------------------------------- Caterva2's write endpoints


@router.post(
    "/upload/{path:path}",
    summary="Upload a file (multipart field 'file'); answers the final path",
    openapi_extra=_MULTIPART_BODY,
)
async def upload(path: str, request: Request, who: Caller, writes: Writes) -> str:
    """``.b2nd``/``.b2frame`` are stored as the Blosc2 frames they are; other files compressed.

    If *path* names a directory (or a whole space), the uploaded file's name is appended.
    """
    with speaking_as(who):
        loc = resolve(path, who, write=True)
        name, data = await _file_field(request, path)
        return await run_in_threadpool(writes.upload, loc, name, data)


@router.post("/remove/{path:path}", summary="Remove a dataset, or a directory recursively")
def remove(path: str, who: Caller, writes: Writes) -> str:
    """Answers the removed path; 404 if nothing is there."""
    with speaking_as(who):
        return writes.remove(resolve(path, who, write=True))


def _move_or_copy(body: MoveCopyBody, who: Principal, writes: WriteService, *, move: bool) -> str:
    with speaking_as(who):
        src = resolve(body.src, who, write=move)
        dst = destination(body.dst, who)
        return writes.move(src, dst) if move else writes.copy(src, dst)


@router.post("/move/", summary="Move a dataset or directory")
def move(body: Annotated[MoveCopyBody, Body()], who: Caller, writes: Writes) -> str:
    """Within and between the caller's writable spaces; answers the destination path."""
    return _move_or_copy(body, who, writes, move=True)


@router.post("/copy/", summary="Copy a dataset or directory (chunks are shared, not copied)")
def copy(body: Annotated[MoveCopyBody, Body()], who: Caller, writes: Writes) -> str:
    """From anything the caller can read into a writable space; answers the destination path."""
    return _move_or_copy(body, who, writes, move=False)


@router.post(
    "/append/{path:path}",
    summary="Append an NDArray (multipart field 'file', a cframe) along axis 0; answers the new shape",
    openapi_extra=_MULTIPART_BODY,
)
async def append(path: str, request: Request, who: Caller, writes: Writes) -> list[int]:
    """Chunks the append does not touch are reused as they are."""
    with speaking_as(who):
        loc = resolve(path, who, write=True, allow_root_only=False)
        _, data = await _file_field(request, path)
        return await run_in_threadpool(writes.append, loc, data)


@router.post("/unfold/{path:path}", summary="Unfold an uploaded HDF5 file into a directory of Blosc2 arrays")
def unfold(
    path: str,
    who: Caller,
    writes: Writes,
    response: Response,
    report: Annotated[bool, Query(description="answer the full report (arrays, skipped objects)")] = False,
):
    """``<dir>/<name>.h5`` → ``<dir>/<name>/<hdf5 path>.b2nd`` per dataset; answers the directory's path.

    The plain answer is the directory relative to its root (``d/x`` for ``@personal/d/x.h5``), as
    Caterva2's clients join it to the root they hold; ``?report=true`` gives the full path.

    Objects that cannot be converted (variable-length strings, references, links) are
    skipped: their number is in ``X-Cat-Skipped``, and ``?report=true`` lists them.
    """
    with speaking_as(who):
        loc = resolve(path, who, write=True, allow_root_only=False)
        outcome = writes.unfold(loc)
        unfolded = loc.at(outcome.directory)
    response.headers["X-Cat-Skipped"] = str(len(outcome.skipped))
    if report:
        return {**outcome.to_json(), "root": loc.space, "path": unfolded.path}
    return unfolded.rel


@router.post("/load_from_url/{path:path}", summary="Load a file from a URL (form field 'remote_url')")
def load_from_url(
    path: str,
    request: Request,
    who: Caller,
    remote_url: Annotated[str, Form(max_length=MAX_URL_CHARS, description="the URL to load")],
) -> str:
    """Fetch *remote_url* and store it at *path* as an upload of its bytes would be; answers the path.

    Only ``https`` URLs of public hosts unless the server allows more (``CAT_LOAD_URL_ALLOW``).
    """
    loads = services_of(request).url_loads
    if loads is None:
        raise DatasetNotFound("load_from_url (this server loads no URLs)")
    with speaking_as(who):
        loc = resolve(path, who, write=True)
        return loads.load(loc, remote_url, into=path.endswith("/"))


# ---------------------------------------------------------------------- large uploads


@router.post("/upload-url/{path:path}", summary="Start a large upload: a presigned S3 PUT")
def upload_url(
    path: str,
    who: Caller,
    writes: Writes,
    size: Annotated[int, Query(ge=0, le=2**53, description="the file's length in bytes (no other is taken)")],
) -> dict:
    """``{"url", "method": "PUT", "staged", "commit", "expires_in", "max_bytes", "size"}``.

    PUT exactly ``size`` raw file bytes (not multipart) to ``url`` without API
    credentials, then ``POST`` the ``commit`` URL (relative to the API) with your
    credentials.  A size over the upload limit is refused here (413).
    """
    with speaking_as(who):
        loc = resolve(path, who, write=True)
        out = writes.stage(who.sub, size)
    query = urllib.parse.urlencode({"staged": out["staged"]})
    return {**out, "path": loc.path, "commit": f"/api/upload-commit/{_user_path(loc)}?{query}"}


@router.post("/upload-commit/{path:path}", summary="Finish a large upload: publish the staged object")
def upload_commit(
    path: str,
    who: Caller,
    writes: Writes,
    staged: Annotated[str, Query(max_length=256, description="the 'staged' key from /api/upload-url")],
) -> str:
    """Publishes what was PUT as an upload to *path* would; answers the final path."""
    with speaking_as(who):
        loc = resolve(path, who, write=True)
        return writes.commit_staged(loc, who.sub, staged)


@router.get("/limits", summary="Size limits of this API (and the caller's @personal usage)")
def limits(request: Request, who: Caller, writes: Writes) -> dict:
    """Bytes: ``payload_limit`` (bigger uploads must use /api/upload-url), ``max_upload_bytes``,
    ``user_quota_bytes``, ``response_limit`` (buffered answers), ``stream_limit`` (streamed
    answers past it; 0 = this front does not stream); with a login also ``personal_bytes``.
    Anonymous, it reads settings only: the streaming function's readiness probe.
    """
    settings = services_of(request).settings
    out = {
        "payload_limit": settings.payload_limit,
        "max_upload_bytes": settings.max_upload_bytes,
        "user_quota_bytes": settings.user_quota_bytes,
        "response_limit": settings.response_limit,
        "stream_limit": settings.stream_limit,
    }
    if who.authenticated:
        out["personal_bytes"] = writes.usage(resolve("@personal", who))
    return out
