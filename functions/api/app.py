"""FastAPI application factory: routers, error mapping, path normalisation."""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.exceptions import HTTPException

from catclient.wire import human_bytes
from functions.api import auth, chunkwrite, errors, history, lazy, openapi, read, users, write
from functions.engine import fetchrules
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


class BodyLimit:
    """ASGI middleware: refuse a request body (413) as soon as it passes *limit* bytes.

    A ``Content-Length`` lets the routes refuse a body before reading it; a
    chunked body has none, and without this it would be read whole (into memory,
    for a form) before its size could be judged.  The bytes are counted as they
    arrive, and the read that passes the limit raises instead of returning them.
    An ``HTTPException``: FastAPI turns any other error while it reads a JSON body
    into a 400.
    """

    def __init__(self, app, limit: int, routes: tuple[tuple[str, str, int], ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.routes = routes  # (method, path prefix, narrower limit)

    def _limit_of(self, scope) -> int:
        for method, prefix, limit in self.routes:
            if scope.get("method") == method and scope.get("path", "").startswith(prefix):
                return limit  # its own bound, in place of the general one
        return self.limit

    async def __call__(self, scope, receive, send):
        limit = self._limit_of(scope) if scope["type"] == "http" else 0
        if not limit:
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        # (the general limit is judged by the routes, whose refusals name the path to use instead)
        if limit != self.limit and declared.isdigit() and int(declared) > limit:
            # Refused from the header, before a byte of the body is read
            return await errors.detail(413, _too_large(limit, scope))(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, _too_large(limit, scope))
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int, scope) -> str:
    if scope.get("path", "").startswith("/api/fetch/"):
        return f"the request body passed the {human_bytes(limit)} a fetch takes: ask in batches"
    return (
        f"the request body passed this API's limit of {human_bytes(limit)}: "
        "send large files through POST /api/upload-url/{path} (a presigned S3 PUT)"
    )


def body_limit(settings) -> int:
    """Largest request body: the payload limit (Lambda's), else the upload limit plus multipart framing."""
    if settings.payload_limit:
        return settings.payload_limit
    return settings.max_upload_bytes + (64 << 10) if settings.max_upload_bytes else 0


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
    app.include_router(chunkwrite.router)
    app.include_router(lazy.router)
    app.include_router(users.router)
    history.install(app)
    web.install(app)
    openapi.install(app)
    fetch_bound = ("POST", "/api/fetch/", fetchrules.MAX_FETCH_BODY)
    app.add_middleware(BodyLimit, limit=body_limit(services.settings), routes=(fetch_bound,))
    install_cors(app, services.settings.cors_origins)
    app.add_middleware(CollapseSlashes)
    return app


#: What browsers may send cross-origin: every method the API has, and the headers the
#: clients set (Authorization: bearer tokens; Content-Type: JSON and uploads; Range).
CORS_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]
CORS_HEADERS = ["Authorization", "Content-Type", "Accept", "Range", "X-Cat-Max-Bytes"]
#: Response headers a page may read (the rest are hidden from cross-origin scripts).
CORS_EXPOSED = [
    "Accept-Ranges", "Content-Disposition", "Content-Length", "Content-Range", "ETag", "X-Cat-Cache",
    "X-Cat-Skipped",
]


def install_cors(app: FastAPI, origins: str) -> None:
    """Answer CORS (preflights included) for *origins* (``CAT_CORS_ORIGINS``); nothing when empty.

    The same middleware serves locally and on Lambda (the HTTP API has no CORS settings of
    its own, which would shadow these). With listed origins, credentials (the
    ``c2subauth`` cookie) are allowed; with ``*`` they are not (browsers refuse both).
    """
    allowed = [o.strip().rstrip("/") for o in origins.split(",") if o.strip()]
    if not allowed:
        return
    from fastapi.middleware.cors import CORSMiddleware

    app.add_middleware(
        CORSMiddleware,
        allow_origins=allowed,
        allow_methods=CORS_METHODS,
        allow_headers=CORS_HEADERS,
        expose_headers=CORS_EXPOSED,
        allow_credentials="*" not in allowed,
        max_age=3600,
    )
