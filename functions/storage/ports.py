"""The one interface the engine uses to talk to object storage.

Everything the storage layout needs (DESIGN.md §2) fits in a handful of calls:
immutable puts, conditional puts for heads and catalogs (S3's ``If-Match`` /
``If-None-Match``), gets that return the entity tag the next conditional put
needs, and presigned GETs for read plans.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class StoreError(Exception):
    """Base class of storage errors."""


class NotFound(StoreError):
    """The key does not exist."""


class PreconditionFailed(StoreError):
    """A conditional write lost: the object changed (or exists) since it was read."""


class StoreUnavailable(StoreError):
    """The store could not be reached (network, throttling, outage)."""


@dataclass(frozen=True)
class Blob:
    """An object's bytes and its entity tag (opaque; pass it back to ``put(if_match=)``)."""

    data: bytes
    etag: str


@runtime_checkable
class BlobStore(Protocol):
    """Object storage as the engine sees it.

    Implementations must be safe to call from several threads at once: the read
    path fetches chunks in parallel.
    """

    name: str

    def get(self, key: str) -> Blob:
        """Return the object's bytes and etag; raise :class:`NotFound`."""
        ...

    def put(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        content_type: str = "application/octet-stream",
    ) -> str:
        """Store *data*; return the new etag.

        ``if_none_match=True`` creates only if absent; ``if_match=etag`` replaces
        only the version with that etag.  A lost condition raises
        :class:`PreconditionFailed`.
        """
        ...

    def exists(self, key: str) -> bool:
        """Whether *key* exists."""
        ...

    def delete(self, key: str) -> None:
        """Remove *key* (no error if absent)."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys starting with *prefix*, in lexicographic order."""
        ...

    def presign_get(self, key: str, expires: int) -> str | None:
        """A URL that GETs *key* for *expires* seconds, or None if the store cannot make one."""
        ...
