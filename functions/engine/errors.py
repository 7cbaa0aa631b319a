"""Every domain error, and the one table that gives each its status code.

The HTTP layer (:mod:`functions.api.errors`) answers each error with the
status, message and headers of its :class:`Rule`; the compute round trip
(:mod:`functions.engine.compute`) carries errors across a Lambda boundary by
name through the same table, so an error keeps its class (and status) on the
way back.  Messages are shown to users: they say what was wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# ---------------------------------------------------------------------- storage


class StoreError(Exception):
    """Base class of storage errors."""


class NotFound(StoreError):
    """The key does not exist."""


class PreconditionFailed(StoreError):
    """A conditional write lost: the object changed (or exists) since it was read."""


class StoreUnavailable(StoreError):
    """The store could not be reached (network, throttling, outage)."""


# ---------------------------------------------------------------------- reads


class DatasetNotFound(LookupError):
    """No such root, dataset or directory (HTTP 404)."""


class OriginUnavailable(RuntimeError):
    """The origin could not be reached and the region has no copy (HTTP 503)."""


class CorruptChunk(RuntimeError):
    """A chunk's bytes do not match its content address (HTTP 502)."""


# ---------------------------------------------------------------------- requests


class BadRequest(ValueError):
    """The request cannot be satisfied as asked (400); the message says why."""


class TooLarge(BadRequest):
    """The answer would exceed the response limit (413); the message says what to do instead."""


class QuotaExceeded(TooLarge):
    """A write would take a user's ``@personal`` over their quota (413)."""


class RangeNotSatisfiable(BadRequest):
    """A ``Range`` this answer cannot honour (416): a malformed or out-of-bounds range, or an
    answer built per request (a slice, a lazy result, a download), which has no stable bytes.

    Parameters
    ----------
    message : str
        What was wrong, shown to the caller.
    size : int, optional
        The length of the stored frame the range was for (sent as ``Content-Range: bytes */size``);
        None for an answer that serves no ranges at all (``Accept-Ranges: none``).
    """

    def __init__(self, message: str, size: int | None = None) -> None:
        super().__init__(message)
        self.size = size

    def headers(self) -> dict[str, str]:
        """``Accept-Ranges`` (and ``Content-Range`` when a stored frame was asked for)."""
        if self.size is None:
            return {"Accept-Ranges": "none"}
        return {"Accept-Ranges": "bytes", "Content-Range": f"bytes */{self.size}"}


class NotBlosc2(BadRequest):
    """Bytes that claim to be a Blosc2 frame but are not."""


class InvalidFrame(NotBlosc2):
    """A Blosc2 frame whose metadata, chunk headers or sizes disagree (400): stored, it could not be read."""


class FrameTooLarge(TooLarge):
    """A frame that would decompress to more than a door accepts (413); the message says the limit."""


class ExpressionError(BadRequest):
    """An expression outside the language: the message says which part and why."""


class Conflict(RuntimeError):
    """A write lost a race it must not retry blindly (``expect_version`` mismatch, HTTP 409)."""


# ---------------------------------------------------------------------- access


class AuthRequired(PermissionError):
    """The resource needs a logged-in user and the request has none (HTTP 401)."""


class Forbidden(PermissionError):
    """The caller is known but may not do this (HTTP 403)."""


class Unreadable(PermissionError):
    """An expression reads data the caller may not read (HTTP 403)."""


# ---------------------------------------------------------------------- users


class AuthError(Exception):
    """Base class of authentication errors; the message is safe to show to the caller."""


class BadCredentials(AuthError):
    """Unknown user or wrong password (never say which)."""


class PasswordChangeRequired(BadCredentials):
    """The password was right but the account must set a new one first (an admin-created user)."""


class InvalidToken(AuthError):
    """A token that is malformed, forged, expired, or issued for another pool or app."""


class Throttled(AuthError):
    """The identity provider refused to answer for now (too many requests or failures)."""


class ProviderUnavailable(AuthError):
    """The identity provider (or its signing keys) could not be reached."""


class UserExists(AuthError):
    """``add_user`` of a name that is taken."""


class UnknownUser(AuthError):
    """An admin operation on a user that does not exist."""


class WeakPassword(AuthError):
    """The pool's password policy refused the password."""


class TooManyAttempts(Exception):
    """Too many failed logins recently; ``retry_after`` says how many seconds to wait."""

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# ---------------------------------------------------------------------- compute


class ComputeFailed(RuntimeError):
    """The compute function crashed or answered an error that is not the caller's fault (HTTP 502)."""


class UnsafeToCollect(RuntimeError):
    """Garbage collection stopped before deleting anything: what is live could not be told.

    Raised for an unreadable head, manifest or catalog.  Never answered over
    HTTP (``cat-admin gc`` reports it), hence no rule below.
    """


# ---------------------------------------------------------------------- loads from URLs


class UpstreamFailed(RuntimeError):
    """A URL a caller asked the server to load failed on the remote side (HTTP 502)."""


# ---------------------------------------------------------------------- the table

#: Caterva2's (fastapi-users') code for a failed login, which its clients know
BAD_CREDENTIALS = "LOGIN_BAD_CREDENTIALS"
_BEARER = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Rule:
    """How one error type is answered: status, message shown, extra headers."""

    error: type[BaseException]
    status: int
    message: Callable[[BaseException], str] = str
    headers: Callable[[BaseException], dict[str, str]] | None = None


#: Every domain error and its answer.  Order matters only for documentation:
#: handlers pick the most specific class of an error (its MRO), so a subclass
#: listed here always wins over its base.
RULES: tuple[Rule, ...] = (
    Rule(BadRequest, 400),
    Rule(TooLarge, 413),
    Rule(RangeNotSatisfiable, 416, headers=lambda e: e.headers()),
    Rule(InvalidFrame, 400),
    Rule(FrameTooLarge, 413),
    Rule(DatasetNotFound, 404, lambda e: f"not found: {e}"),
    Rule(NotFound, 404, lambda e: f"not found: {e}"),
    Rule(Conflict, 409),
    Rule(AuthRequired, 401, headers=lambda e: _BEARER),
    Rule(InvalidToken, 401, lambda e: f"invalid token: {e}", lambda e: _BEARER),
    Rule(Forbidden, 403),
    Rule(Unreadable, 403),
    Rule(AuthError, 400),
    Rule(BadCredentials, 400, lambda e: BAD_CREDENTIALS),
    Rule(PasswordChangeRequired, 400, lambda e: "LOGIN_PASSWORD_CHANGE_REQUIRED"),
    Rule(UserExists, 400),
    Rule(TooManyAttempts, 429, headers=lambda e: {"Retry-After": str(getattr(e, "retry_after", 60))}),
    Rule(Throttled, 429, headers=lambda e: {"Retry-After": "60"}),
    Rule(
        OriginUnavailable,
        503,
        lambda e: f"the origin is unreachable and this data is not cached in the region: {e}",
        lambda e: {"Retry-After": "5"},
    ),
    Rule(StoreUnavailable, 503, lambda e: f"storage is unreachable: {e}", lambda e: {"Retry-After": "5"}),
    Rule(ProviderUnavailable, 503, headers=lambda e: {"Retry-After": "5"}),
    Rule(CorruptChunk, 502),
    Rule(ComputeFailed, 502),
    Rule(UpstreamFailed, 502),
)

_BY_NAME = {rule.error.__name__: rule for rule in RULES}


def rule_for(exc: BaseException) -> Rule | None:
    """The rule of the most specific class of *exc* that has one (None: not a domain error)."""
    for cls in type(exc).__mro__:
        rule = _BY_NAME.get(cls.__name__)
        if rule is not None and rule.error is cls:
            return rule
    return None


def encode(exc: BaseException) -> dict:
    """An error as an answer that crosses a process boundary: ``{"status", "error", "error_type"}``."""
    rule = rule_for(exc)
    if rule is None:
        return {"status": 500, "error": f"{type(exc).__name__}: {exc}", "error_type": ComputeFailed.__name__}
    return {"status": rule.status, "error": str(exc), "error_type": rule.error.__name__}


def decode(answer: dict) -> BaseException:
    """The exception an :func:`encode`-d answer stands for; unknown or 5xx answers are :class:`ComputeFailed`.

    A crashed compute invocation is never the caller's fault: whatever its
    status, it must not come back as a 400.
    """
    status = int(answer.get("status", 500))
    message = str(answer.get("error") or "the compute function failed without a message")
    rule = _BY_NAME.get(str(answer.get("error_type", "")))
    if rule is not None and rule.status == status:
        return rule.error(message)
    by_status = {404: DatasetNotFound, 413: TooLarge, 503: OriginUnavailable}
    if status in by_status:
        return by_status[status](message)
    if 400 <= status < 500:
        return BadRequest(message)
    return ComputeFailed(f"compute failed ({status}): {message}")
