"""Every port of the domain: what the engine needs from the world, as Protocols.

=================  ==========================================  =====================================
port               what for                                    adapters (``functions/adapters/``)
=================  ==========================================  =====================================
``BlobStore``      object storage: immutable and conditional   ``s3.S3Store``, ``memory.MemoryStore``
                   puts, gets with etags, presigned GETs,
                   listings with ages (garbage collection)
``EventSink``      announcing committed versions               ``sns.SnsSink``, ``inprocess.NullSink``
``Invoker``        reaching the compute function               ``lambda_invoker.LambdaInvoker``,
                                                               ``inprocess.LocalInvoker``
``Staging``        large uploads through presigned PUTs        ``s3.S3Staging``
``Authenticator``  logins, tokens, user accounts               ``cognito.CognitoAuthenticator``
``Downloader``     fetching a URL a user names                 ``url_fetch.UrlDownloader``
=================  ==========================================  =====================================

The storage layout (docs/ARCHITECTURE.md) fits in a handful of blob-store calls:
immutable puts, conditional puts for heads and catalogs (S3's ``If-Match`` /
``If-None-Match``), gets that return the entity tag the next conditional put
needs, and presigned GETs for read plans.  Errors adapters raise are the
domain's own (:mod:`functions.engine.errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from functions.engine.errors import NotFound, PreconditionFailed, StoreError, StoreUnavailable
from functions.engine.model import ChangeEvent


@dataclass(frozen=True)
class Blob:
    """An object's bytes and its entity tag (opaque; pass it back to ``put(if_match=)``)."""

    data: bytes
    etag: str


@dataclass(frozen=True)
class Listing:
    """One object of a listing: its key, size in bytes and last write (POSIX seconds, the store's clock)."""

    key: str
    size: int
    modified: float


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

    def size(self, key: str) -> int:
        """Bytes of the object at *key*, without reading it; raise :class:`NotFound`."""
        ...

    def fetch_to(self, key: str, path: str) -> int:
        """Write the object's bytes to the local file *path* (streamed, never whole in memory); its size."""
        ...

    def delete(self, key: str) -> None:
        """Remove *key* (no error if absent)."""
        ...

    def list(self, prefix: str, start_after: str = "") -> Iterator[str]:
        """Keys starting with *prefix*, in lexicographic order (only those after *start_after*, if given)."""
        ...

    def presign_get(self, key: str, expires: int) -> str | None:
        """A URL that GETs *key* for *expires* seconds, or None if the store cannot make one."""
        ...

    def scan(self, prefix: str) -> Iterator[Listing]:
        """Objects whose key starts with *prefix*, with size and age, in lexicographic key order."""
        ...

    def delete_if_older(self, key: str, cutoff: float) -> bool:
        """Remove *key* only if it was last written at or before *cutoff* (POSIX seconds).

        Returns whether it removed something (False when absent or rewritten since).
        The check and the removal are as close as the store allows: atomic in
        memory; on S3 a HEAD then a DELETE of exactly the version the HEAD saw
        (a rewrite in between survives in a versioned bucket).
        """
        ...


class EventSink(Protocol):
    """Where committed versions are announced."""

    def emit(self, event: ChangeEvent) -> None:
        """Announce one committed version."""
        ...


class Invoker(Protocol):
    """How the API reaches the compute function."""

    #: Largest result carried in an answer (bytes), or None for no limit
    payload_limit: int | None

    def invoke(self, event: dict) -> dict:
        """Run one compute event and return its answer (errors as :func:`functions.engine.errors.encode`)."""
        ...


class Staging(Protocol):
    """Where big uploads land first: a presigned PUT, then read once and deleted."""

    def presign_put(self, key: str, expires: int, size: int) -> str:
        """A URL that PUTs exactly *size* bytes at *key* for *expires* seconds (the length is signed)."""
        ...

    def size(self, key: str) -> int:
        """Bytes of a staged object; raises :class:`~functions.engine.errors.NotFound`."""
        ...

    def read(self, key: str) -> bytes:
        """A staged object's bytes; raises :class:`~functions.engine.errors.NotFound`."""
        ...

    def delete(self, key: str) -> None:
        """Remove a staged object."""
        ...


class Downloader(Protocol):
    """Fetches the file behind a URL (``https``/``http``, ``s3://``) with bounded work."""

    def fetch(self, url: str, *, max_bytes: int, vet: Callable[[str, list[str]], None]) -> bytes:
        """The body at *url*.

        *vet* (url, resolved addresses) is called for every hop (redirects included)
        before connecting, and raises to refuse it; the connection goes to the vetted
        address.  Raises :class:`~functions.engine.errors.TooLarge` past *max_bytes*
        (0 = no bound), :class:`~functions.engine.errors.BadRequest` when the remote
        answers 4xx, :class:`~functions.engine.errors.UpstreamFailed` when it fails.
        """
        ...


@dataclass(frozen=True)
class User:
    """An authenticated user.

    Attributes
    ----------
    sub : str
        The provider's immutable, unguessable user id (Cognito's ``sub``).  It
        names the user's storage; usernames can be reused, subs cannot.
    username : str
        The login name, for display.

    """

    sub: str
    username: str


@dataclass(frozen=True)
class Account:
    """A user account as an administrator sees it.

    Attributes
    ----------
    username, sub : str
        The login name and the immutable id (see :class:`User`).
    enabled : bool
        Whether the account may log in.
    confirmed : bool
        Whether it has a permanent password (not waiting for a first login).
    superuser : bool
        Whether it is in the superusers' group (may administer users).

    """

    username: str
    sub: str
    enabled: bool = True
    confirmed: bool = True
    superuser: bool = False


class Authenticator(Protocol):
    """Logs users in, verifies their tokens, and manages accounts (admin side)."""

    def login(self, username: str, password: str) -> str:
        """Check a password and return a token for later requests.

        Raises
        ------
        BadCredentials
            Unknown user or wrong password.
        Throttled
            The provider refuses attempts for now.
        ProviderUnavailable
            The provider could not be reached.

        """
        ...

    def verify(self, token: str) -> User:
        """The user a token was issued to, after checking signature, expiry, issuer and audience.

        Raises
        ------
        InvalidToken
            Anything short of a valid, current token of this pool and app.
        ProviderUnavailable
            The signing keys could not be fetched, so nothing can be verified.

        """
        ...

    def add_user(self, username: str, password: str, *, superuser: bool = False) -> User:
        """Create a confirmed user with a permanent password (raises ``UserExists``, ``WeakPassword``).

        A *superuser* is also made a member of the superusers' group.
        """
        ...

    def accounts(self) -> list[Account]:
        """Every user of the pool with its state, sorted by username."""
        ...

    def is_superuser(self, username: str) -> bool:
        """Whether *username* is in the superusers' group (False for an unknown user)."""
        ...

    def list_users(self) -> list[User]:
        """Every user of the pool, sorted by username."""
        ...

    def remove_user(self, username: str) -> None:
        """Delete a user (raises ``UnknownUser``); their data stays in storage."""
        ...


__all__ = [
    "Authenticator",
    "Blob",
    "BlobStore",
    "EventSink",
    "Invoker",
    "Listing",
    "NotFound",
    "PreconditionFailed",
    "Staging",
    "StoreError",
    "StoreUnavailable",
    "User",
]
