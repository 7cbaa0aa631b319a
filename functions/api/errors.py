"""Errors as Caterva2's clients expect them: JSON ``{"detail": ...}`` with the right status.

Each layer lists its exception types in a table of :class:`Rule` and registers it
with :func:`register`; the clients show ``detail`` to the user, so messages say
what was wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def detail(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error answer."""
    return JSONResponse({"detail": message}, status_code=status, headers=headers or None)


@dataclass(frozen=True)
class Rule:
    """How one exception type is answered."""

    error: type[Exception]
    status: int
    message: Callable[[Exception], str] = str
    headers: Callable[[Exception], dict[str, str]] | None = None


def register(app: FastAPI, rules: Iterable[Rule]) -> None:
    """Install a handler per rule (Starlette picks the most specific type for an error)."""
    for rule in rules:

        async def handle(request: Request, exc: Exception, rule: Rule = rule) -> JSONResponse:
            return detail(rule.status, rule.message(exc), rule.headers(exc) if rule.headers else None)

        app.add_exception_handler(rule.error, handle)
