"""Exceptions raised by :mod:`catclient` (never raw ``httpx`` errors).

Each HTTP failure becomes one of these, carrying the server's ``detail`` so a
user sees what the server said was wrong rather than a status line.
"""

from __future__ import annotations


class CatClientError(Exception):
    """Base of every error :mod:`catclient` raises.

    Parameters
    ----------
    message : str
        What went wrong, ready to show to a user.
    status : int, optional
        The HTTP status, when the error came from an answer.
    detail : str, optional
        The server's ``detail`` text, when it sent one.
    url : str, optional
        The URL asked for (without query string).

    """

    def __init__(self, message: str, *, status: int | None = None, detail: str | None = None,
                 url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.url = url


class BadRequest(CatClientError, ValueError):
    """The server refused the request as malformed (HTTP 400/422), e.g. a bad ``slice_``."""


class Unauthorized(CatClientError):
    """Credentials are missing, wrong or expired, or do not allow this (HTTP 401/403)."""


class NotFound(CatClientError, LookupError):
    """No such root, dataset or file (HTTP 404)."""


class NotSupported(NotFound):
    """The server does not offer this endpoint (404 on an unknown route, or 405).

    A subclass of :class:`NotFound` because the HTTP answer is the same; catch
    it first to tell "no such feature" from "no such dataset".
    """


class TooLarge(CatClientError):
    """The answer would exceed the server's response limit (HTTP 413)."""


class ServerError(CatClientError):
    """The server failed (HTTP 5xx)."""


class ServerUnavailable(ServerError):
    """The server or its storage cannot be reached (HTTP 502/503/504, or a network error)."""


class IntegrityError(CatClientError):
    """A chunk's bytes do not match the content hash its read plan announced."""
