"""FastAPI application factory: routers, error mapping, path normalisation."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from functions.api import auth, lazy, read, write
from functions.api.errors import Rule, detail, register
from functions.engine.errors import BadRequest, DatasetNotFound, OriginUnavailable, TooLarge
from functions.engine.lazydata import Unreadable
from functions.engine.reader import CorruptChunk
from functions.services import Services
from functions.web import routes as web

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


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", "invalid"))
    return "; ".join(parts) or "invalid request"


#: Domain errors and their answers
RULES = (
    Rule(TooLarge, 413),
    Rule(BadRequest, 400),
    Rule(DatasetNotFound, 404, lambda exc: f"not found: {exc}"),
    Rule(
        OriginUnavailable,
        503,
        lambda e: f"the origin is unreachable and this data is not cached in the region: {e}",
    ),
    Rule(Unreadable, 403),
    Rule(CorruptChunk, 502),
)


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors to Caterva2-style JSON errors (``{"detail": ...}``)."""
    register(app, RULES)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return detail(400, _validation_message(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        # Every expected failure has a 4xx/503 above: anything reaching here is a bug,
        # logged with its traceback and answered as JSON like every other error
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return detail(500, f"internal error ({type(exc).__name__}); this is a bug, please report it")


def create_app(services: Services) -> FastAPI:
    """Build the API over *services* (called once per process)."""
    app = FastAPI(
        title="Caterva2 serverless",
        description="Caterva2's REST API over Blosc2 chunks in S3, plus read plans and subscriptions.",
        version="0.1.0",
        # /docs and /redoc are served by the web UI from vendored assets (no CDN)
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    install_error_handlers(app)
    auth.install_error_handlers(app)
    app.include_router(read.router)
    app.include_router(auth.router)
    app.include_router(write.router)
    app.include_router(lazy.router)
    web.install(app)
    app.add_middleware(CollapseSlashes)
    return app
