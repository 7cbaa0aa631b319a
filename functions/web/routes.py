"""The web UI's routes: pages rendered server-side, image frames, vendored assets, offline API docs.

Handlers stay thin: who is asking comes from the API's own ``caller``
dependency (cookie ``c2subauth`` or bearer), data from :mod:`functions.web.context`.
Every write the pages offer goes through the JSON API from ``static/app.js``.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from functions.api.auth import Caller
from functions.web import context, render

router = APIRouter(include_in_schema=False)

#: Swagger UI and ReDoc, as the fastapi-offline wheel ships them (served from here, never a CDN)
DOCS_ASSETS = resources.files("fastapi_offline") / "static"


def _services(request: Request):
    return request.app.state.services


@router.get("/", response_class=HTMLResponse)
def home(request: Request, who: Caller) -> HTMLResponse:
    """Roots with their file trees."""
    return render.page(request, who, lambda: ("home.html", context.home(_services(request), who)))


@router.get("/roots", response_class=HTMLResponse)
def roots_index() -> RedirectResponse:
    """The roots are listed on the home page."""
    return RedirectResponse("/", status_code=307)


@router.get("/roots/{path:path}", response_class=HTMLResponse)
def browse(
    request: Request,
    path: str,
    who: Caller,
    lead: Annotated[str | None, Query(max_length=200)] = None,
    row: Annotated[int, Query(ge=0)] = 0,
    col: Annotated[int, Query(ge=0)] = 0,
    filter: Annotated[str | None, Query(max_length=2000)] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """A root, directory, dataset or file (Caterva2's handle URLs); ``version`` opens an earlier one."""
    query = context.TableQuery(lead, row, col, filter or None, version)
    return render.page(request, who, lambda: context.browse(_services(request), who, path, query))


@router.get("/web/frame/{path:path}", response_class=Response)
def frame(
    request: Request,
    path: str,
    who: Caller,
    i: Annotated[int, Query(ge=0, description="index along the first axis")] = 0,
    lo: float | None = None,
    hi: float | None = None,
    plo: Annotated[float | None, Query(ge=0, le=100)] = None,
    phi: Annotated[float | None, Query(ge=0, le=100)] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """One frame of the image viewer as PNG, computed from only the chunks it touches."""
    query = context.FrameQuery(i, lo, hi, plo, phi, version)
    body, headers = context.frame(_services(request), who, path, query)
    return Response(body, media_type="image/png", headers=headers)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, who: Caller) -> HTMLResponse:
    """The login form (it posts to ``/auth/jwt/login``)."""
    return render.html(request, who, "login.html", {"title": "Log in"})


@router.get("/web/lazy", response_class=HTMLResponse)
def lazy_page(request: Request, who: Caller) -> HTMLResponse:
    """The form that creates a lazy expression in ``@personal``."""
    return render.page(request, who, lambda: ("lazy.html", context.lazy_form(_services(request), who)))


def _docs(app: FastAPI) -> None:
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{title} - API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url="/static/docs/redoc.standalone.js",
            redoc_favicon_url="/static/favicon.svg",
            with_google_fonts=False,
        )


def install(app: FastAPI) -> None:
    """Add the UI to *app*: pages, frames, ``/static``, offline ``/docs`` (app built with docs_url=None)."""
    app.mount("/static/docs", StaticFiles(directory=str(DOCS_ASSETS)), name="docs-static")
    app.mount("/static", StaticFiles(directory=str(render.STATIC)), name="static")
    _docs(app)
    app.include_router(router)
