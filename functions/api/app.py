"""FastAPI application factory: routers, error mapping, path normalisation."""

from __future__ import annotations

import re

from fastapi import FastAPI

from functions.api import auth, errors, lazy, read, users, write
from functions.services import Services
from functions.web import routes as web

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
    errors.install(app)
    app.include_router(read.router)
    app.include_router(auth.router)
    app.include_router(write.router)
    app.include_router(lazy.router)
    app.include_router(users.router)
    web.install(app)
    app.add_middleware(CollapseSlashes)
    return app
