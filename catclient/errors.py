"""Exceptions raised by :mod:`catclient` (never raw ``httpx`` errors).

Each HTTP failure becomes one of these, carrying the server's ``detail`` so a
user sees what the server said was wrong rather than a status line
(:func:`error_for`).  Nothing here imports httpx: answers are read through
the few attributes every response object has.
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


# --------------------------------------------------------------------------- from HTTP answers


def response_detail(resp) -> str | None:
    """The server's ``detail`` text of an error answer (FastAPI's JSON, else the body's start)."""
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip()
        return text[:300] or None
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if isinstance(detail, list):  # FastAPI validation errors
            return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
        return str(detail)
    return None


def error_for(resp, endpoint: str, optional: bool) -> CatClientError:
    """The exception an HTTP error answer stands for.

    Parameters
    ----------
    resp : httpx.Response
        An answer with status >= 400.
    endpoint : str
        The endpoint asked (``"fetch"``, ``"plan"`` ...), for messages.
    optional : bool
        Whether not every server offers it: a bare 404 then means "not offered"
        (:class:`NotSupported`) rather than "no such data".

    Returns
    -------
    CatClientError
        The subclass matching the status, carrying the server's detail.

    """
    status = resp.status_code
    detail = response_detail(resp)
    url = str(resp.request.url.copy_with(query=None)) if resp.request else None
    kw = {"status": status, "detail": detail, "url": url}
    # FastAPI answers an unknown route with exactly "Not Found"; for endpoints that
    # not every server has (plans, writes) that means "not offered", not "no such data"
    if status == 405 or (status in (404, 501) and optional and detail in (None, "Not Found")):
        return NotSupported(f"the server at {url} does not offer /{endpoint} (HTTP {status})", **kw)
    message = detail or resp.reason_phrase or f"HTTP {status}"
    if status in (400, 422):
        return BadRequest(message, **kw)
    if status in (401, 403):
        if not detail:
            message = "not authorized: log in first (catclient login) or pass auth= to Client"
        return Unauthorized(message, **kw)
    if status == 404:
        return NotFound(message if detail else f"not found: {url}", **kw)
    if status == 413:
        return TooLarge(message, **kw)
    if status == 429:
        retry = resp.headers.get("Retry-After")
        later = f"; retry after {retry} s" if retry else ""
        return CatClientError(f"too many requests (HTTP 429): {message}{later}", **kw)
    if status in (502, 503, 504):
        return ServerUnavailable(f"server unavailable (HTTP {status}): {message}", **kw)
    if status >= 500:
        return ServerError(f"server error (HTTP {status}): {message}", **kw)
    return CatClientError(f"HTTP {status}: {message}", **kw)


def answer_path(resp) -> str:
    """The path a write answers with (a JSON string).

    Raises
    ------
    ServerError
        If the answer is not a JSON string.

    """
    try:
        answer = resp.json()
    except ValueError:
        raise ServerError("the server answered a write with something that is not JSON",
                          status=resp.status_code, url=str(resp.url)) from None
    if not isinstance(answer, str):
        raise ServerError(f"the server answered a write with {answer!r}, not a path", url=str(resp.url))
    return answer
