"""Errors as Caterva2's clients expect them: JSON ``{"detail": ...}`` with the right status.

The statuses, messages and headers come from the one table of domain errors,
:data:`functions.engine.errors.RULES`; this module only turns them into
FastAPI exception handlers.  The clients show ``detail`` to the user, so
messages say what was wrong.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from functions.engine.errors import RULES, Rule

log = logging.getLogger(__name__)


def detail(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error answer."""
    return JSONResponse({"detail": message}, status_code=status, headers=headers or None)


def answer(rule: Rule, exc: BaseException) -> JSONResponse:
    """The JSON answer *rule* gives to *exc*."""
    return detail(rule.status, rule.message(exc), rule.headers(exc) if rule.headers else None)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", "invalid"))
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    """Install a handler per domain error (Starlette picks the most specific class of an error)."""
    for rule in RULES:

        async def handle(request: Request, exc: Exception, rule: Rule = rule) -> JSONResponse:
            return answer(rule, exc)

        app.add_exception_handler(rule.error, handle)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return detail(400, _validation_message(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        # Every expected failure has a rule above: anything reaching here is a bug,
        # logged with its traceback and answered as JSON like every other error
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return detail(500, f"internal error ({type(exc).__name__}); this is a bug, please report it")
