"""Jinja2 rendering of the pages, error pages, and the response-limit guard.

Errors in a page are answered as an HTML page with the status the JSON API
gives the same error (the API's own tables of rules), so a browser sees "not
found" or "log in" rather than a JSON body.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from functions.api.deps import services_of
from functions.engine import errors
from functions.engine.spaces import Principal
from functions.services import Services

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC = HERE / "static"

# Autoescape on for every template: paths, vlmeta, expressions and file text are users'
ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _urlpath(path: str) -> str:
    return urllib.parse.quote(path, safe="/@")


def _urlquote(text: str) -> str:
    return urllib.parse.quote(str(text), safe="")


ENV.filters["urlpath"] = _urlpath
ENV.filters["urlquote"] = _urlquote


def _services(request: Request) -> Services:
    return services_of(request)


def _rule_for(exc: Exception):
    return errors.rule_for(exc)


def html(request: Request, who: Principal, template: str, context: dict, status: int = 200) -> HTMLResponse:
    """Render *template*; an answer over the response limit becomes a 413 page."""
    body = ENV.get_template(template).render(request=request, who=who, **context)
    limit = _services(request).settings.response_limit
    if limit and len(body.encode()) > limit and status < 400:
        return error_page(request, who, 413, f"this page would be {len(body)} bytes, over the response limit")
    return HTMLResponse(body, status_code=status)


def error_page(request: Request, who: Principal, status: int, message: str) -> HTMLResponse:
    """The error page (with a login link for 401)."""
    body = ENV.get_template("error.html").render(
        request=request, who=who, status=status, message=message, title=f"Error {status}"
    )
    return HTMLResponse(body, status_code=status)


def page(request: Request, who: Principal, build: Callable[[], tuple[str, dict]]) -> HTMLResponse:
    """Render the (template, context) *build* returns, or the error page of what it raised."""
    try:
        template, context = build()
    except Exception as exc:  # noqa: BLE001 - each is answered by the API's own rule, or as a bug
        rule = _rule_for(exc)
        if rule is None:
            log.exception("web page %s failed", request.url.path)
            return error_page(request, who, 500, f"internal error ({type(exc).__name__}); this is a bug")
        return error_page(request, who, rule.status, rule.message(exc))
    return html(request, who, template, context)
