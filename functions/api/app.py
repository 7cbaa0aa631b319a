"""FastAPI application factory: routers, error mapping, path normalisation."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from functions.api import auth, lazy, read, write
from functions.engine.errors import BadRequest, DatasetNotFound, OriginUnavailable, TooLarge
from functions.engine.lazydata import Unreadable
from functions.engine.reader import CorruptChunk
from functions.services import Services

log = logging.getLogger(__name__)

_SLASHES = re.compile(r"/{2,}")


class CollapseSlashes:
    """ASGI middleware: ``caterva2.Client("http://h/")`` sends ``//api/...``; treat it as ``/api/...``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and "//" in scope.get("path", ""):
            scope = dict(scope)
            scope["path"] = _SLASHES.sub("/", scope["path"])
            scope["raw_path"] = _SLASHES.sub("/", scope.get("raw_path", b"").decode("latin-1")).encode(
                "latin-1"
            )
        await self.app(scope, receive, send)


def _detail(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", "invalid"))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors to Caterva2-style JSON errors (``{"detail": ...}``)."""

    @app.exception_handler(TooLarge)
    async def _too_large(request: Request, exc: TooLarge):
        return _detail(413, str(exc))

    @app.exception_handler(BadRequest)
    async def _bad(request: Request, exc: BadRequest):
        return _detail(400, str(exc))

    @app.exception_handler(DatasetNotFound)
    async def _missing(request: Request, exc: DatasetNotFound):
        return _detail(404, f"not found: {exc}")

    @app.exception_handler(OriginUnavailable)
    async def _unavailable(request: Request, exc: OriginUnavailable):
        return _detail(503, f"the origin is unreachable and this data is not cached in the region: {exc}")

    @app.exception_handler(Unreadable)
    async def _unreadable(request: Request, exc: Unreadable):
        return _detail(403, str(exc))

    @app.exception_handler(CorruptChunk)
    async def _corrupt(request: Request, exc: CorruptChunk):
        return _detail(502, str(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        # Every expected failure has a 4xx/503 above: anything reaching here is a bug,
        # logged with its traceback and answered as JSON like every other error
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _detail(500, f"internal error ({type(exc).__name__}); this is a bug, please report it")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return _detail(400, _validation_message(exc))


def create_app(services: Services) -> FastAPI:
    """Build the API over *services* (called once per process)."""
    app = FastAPI(
        title="Caterva2 serverless",
        description="Caterva2's REST API over Blosc2 chunks in S3, plus read plans and subscriptions.",
        version="0.1.0",
    )
    app.state.services = services
    install_error_handlers(app)
    auth.install_error_handlers(app)
    app.include_router(read.router)
    app.include_router(auth.router)
    app.include_router(write.router)
    app.include_router(lazy.router)
    app.add_middleware(CollapseSlashes)
    return app
