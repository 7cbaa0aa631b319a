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


#: Routes whose JSON body is held to FastAPI's own answer (422, a list ``detail``), as
#: Caterva2's server gives it: ``POST /api/fetch`` (its clients read that list).
STRICT_BODIES = ("/api/fetch/",)
#: Longest ``msg`` kept of one validation error, characters.
_MSG_CHARS = 200


def _strict_body(request: Request, exc: RequestValidationError) -> bool:
    on_route = request.method == "POST" and request.url.path.startswith(STRICT_BODIES)
    return on_route and any(tuple(e.get("loc", ()))[:1] == ("body",) for e in exc.errors())


def body_errors(exc: RequestValidationError) -> list[dict]:
    """FastAPI's list of validation errors without what was sent (pydantic's ``input``).

    A body that does not parse is carried whole in its error's ``input``: answered
    verbatim, a megabyte of nonsense would be sent back.  Type, place and message say
    what was wrong.
    """
    return [
        {
            "type": str(e.get("type", "invalid")),
            "loc": [p if isinstance(p, int) else str(p)[:80] for p in e.get("loc", ())][:8],
            "msg": str(e.get("msg", "invalid"))[:_MSG_CHARS],
        }
        for e in exc.errors()[:20]
    ]


def install(app: FastAPI) -> None:
    """Install a handler per domain error (Starlette picks the most specific class of an error)."""
    for rule in RULES:

        async def handle(request: Request, exc: Exception, rule: Rule = rule) -> JSONResponse:
            return answer(rule, exc)

        app.add_exception_handler(rule.error, handle)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        if _strict_body(request, exc):
            return JSONResponse({"detail": body_errors(exc)}, status_code=422)
        return detail(400, _validation_message(exc))

    # Every expected failure has a rule above: anything else is a bug, answered by
    # CatchBugs (not an Exception handler: Starlette re-raises after those, and the
    # server then drops the client's keep-alive connection along with the answer)
    app.add_middleware(CatchBugs)


def bug_answer(exc: BaseException) -> JSONResponse:
    """The 500 a bug gets: JSON like every other error, naming only the exception's type."""
    return detail(500, f"internal error ({type(exc).__name__}); this is a bug, please report it")


class CatchBugs:
    """ASGI middleware: an unexpected exception becomes a JSON 500 and the connection stays usable.

    The exception is logged with its traceback and not re-raised, so the server
    keeps the keep-alive connection open.  If the answer had already started
    there is nothing to replace it with: the exception propagates and the
    connection is closed (the client sees a truncated answer, not a wrong one).
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            await bug_answer(exc)(scope, receive, send)
