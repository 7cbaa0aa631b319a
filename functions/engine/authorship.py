"""Who is committing: the user a write is made for, as the history shows it (``author``).

Set by :func:`functions.engine.spaces.speaking_as` around every API write and read
by :class:`functions.engine.publish.Publisher` when it writes a manifest; tools and
drops (no user) commit anonymously.  A context variable: it follows the call into
worker threads only when they are started with the context copied (FastAPI's are).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_AUTHOR: ContextVar[str | None] = ContextVar("cat_author", default=None)


@contextmanager
def committing_as(author: str | None) -> Iterator[None]:
    """Commits inside are by *author* (None: anonymous)."""
    token = _AUTHOR.set(author)
    try:
        yield
    finally:
        _AUTHOR.reset(token)


def current() -> str | None:
    """The author of commits made now, if known."""
    return _AUTHOR.get()
