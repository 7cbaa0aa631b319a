"""Domain errors the HTTP layer maps to status codes (400, 404, 413, 503)."""

from __future__ import annotations

from functions.engine.reader import DatasetNotFound, OriginUnavailable


class BadRequest(ValueError):
    """The request cannot be satisfied as asked (400); the message says why."""


class TooLarge(BadRequest):
    """The answer would exceed the response limit (413); the message says what to do instead."""


__all__ = ["BadRequest", "TooLarge", "DatasetNotFound", "OriginUnavailable"]
