"""User spaces (DESIGN.md §7): which storage root a user's path names, and who may do what.

=============  ===============================  ==================================
user path      storage root                     access
=============  ===============================  ==================================
``@public/…``  ``@public``                      everyone reads; logged-in users write
``@shared/…``  ``@shared``                      logged-in users read and write
``@personal``  ``@personal.<sub>`` (own only)   the user alone
``example/…``  ``example`` (published roots)    everyone reads; nobody writes via the API
=============  ===============================  ==================================

``<sub>`` is the identity provider's immutable user id, so one user's
``@personal`` can neither be guessed nor addressed by another: every caller's
``@personal`` maps to their own sub, and storage names of personal spaces (any
root starting with ``@`` other than the three above) are not addressable at all.
Users never see the ``.<sub>`` suffix; answers speak of ``@personal/…``.

Every read and write endpoint resolves its paths here, and nowhere else.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.engine.errors import BadRequest, DatasetNotFound
from functions.engine.paths import split_path

if TYPE_CHECKING:
    from functions.engine.reader import CacheStats
    from functions.engine.service import Download, FetchParams, ReadService

PUBLIC = "@public"
SHARED = "@shared"
PERSONAL = "@personal"
USER_SPACES = (PUBLIC, SHARED, PERSONAL)
_PERSONAL_PREFIX = PERSONAL + "."
#: Storage root + path, UTF-8 bytes.  S3 keys are at most 1024 bytes and the
#: manifest key adds ``m/``, ``/<version>-<hash12>.json`` (~35 bytes) around them.
MAX_KEY_BYTES = 900
# A sub must keep "@personal.<sub>" a valid root name (paths.split_path: ≤ 64 chars)
_SUB = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,53}$")


class AuthRequired(PermissionError):
    """The resource needs a logged-in user and the request has none (HTTP 401)."""


class Forbidden(PermissionError):
    """The logged-in user may not do this here (HTTP 403)."""


@dataclass(frozen=True)
class Principal:
    """Who is asking.

    Attributes
    ----------
    sub : str or None
        The user's immutable id; None for anonymous callers.
    username : str or None
        For display only.
    token_problem : str or None
        Why a presented token was not accepted (the caller is then anonymous;
        the reason is reported if they touch something protected).

    """

    sub: str | None = None
    username: str | None = None
    token_problem: str | None = None

    def __post_init__(self) -> None:
        if self.sub is not None and not _SUB.match(self.sub):
            raise ValueError(f"not a usable user id: {self.sub!r}")

    @property
    def authenticated(self) -> bool:
        """Whether a user is logged in."""
        return self.sub is not None


ANONYMOUS = Principal()


@dataclass(frozen=True)
class Location:
    """A path as the user wrote it (``space``) and where it is stored (``root``).

    Attributes
    ----------
    space : str
        The root as the user sees it (``@personal``, ``example``).
    root : str
        The storage root (``@personal.<sub>``, ``example``).
    rel : str
        Path inside the root ("" for the root itself).

    """

    space: str
    root: str
    rel: str

    @property
    def path(self) -> str:
        """The user-visible path."""
        return f"{self.space}/{self.rel}" if self.rel else self.space

    @property
    def user_space(self) -> bool:
        """One of ``@public``, ``@shared``, ``@personal`` (not a published root)."""
        return self.space in USER_SPACES

    @property
    def personal(self) -> bool:
        """The caller's own ``@personal``."""
        return self.space == PERSONAL

    def at(self, rel: str) -> Location:
        """The same space, another path inside it (validated like any user path)."""
        if rel:
            split_path(f"{self.space}/{rel}")
            _check_key_length(self.root, rel)
        return dataclasses.replace(self, rel=rel)


def personal_root(sub: str) -> str:
    """Storage root of a user's ``@personal``."""
    if not _SUB.match(sub):
        raise ValueError(f"not a usable user id: {sub!r}")
    return _PERSONAL_PREFIX + sub


def _needs_login(who: Principal, what: str) -> AuthRequired:
    if who.token_problem:
        return AuthRequired(f"{what} needs a logged-in user, and your token was refused: {who.token_problem}")
    return AuthRequired(f"{what} needs a logged-in user: log in with POST /auth/jwt/login")


def _check_key_length(root: str, rel: str) -> None:
    if len(root.encode()) + 1 + len(rel.encode()) > MAX_KEY_BYTES:
        raise BadRequest(f"path is too long: at most {MAX_KEY_BYTES} bytes of UTF-8")


def locate(root: str, rel: str, who: Principal, *, write: bool = False) -> Location:
    """Map an already split user path to its storage location, enforcing access.

    Raises
    ------
    AuthRequired
        Anonymous access to ``@personal``/``@shared``, or an anonymous write.
    Forbidden
        A write to a published root.
    DatasetNotFound
        A storage name (``@personal.<sub>``) or unknown ``@`` root.
    BadRequest
        A path too long for the storage layout.

    """
    if root in (PERSONAL, SHARED):
        if not who.authenticated:
            raise _needs_login(who, root)
        storage = personal_root(who.sub) if root == PERSONAL else SHARED
    elif root == PUBLIC:
        if write and not who.authenticated:
            raise _needs_login(who, f"writing to {PUBLIC}")
        storage = PUBLIC
    elif root.startswith("@"):
        # Storage names of personal spaces are never addressable, not even by their owner
        raise DatasetNotFound(root)
    else:
        if write:
            if not who.authenticated:
                raise _needs_login(who, "writing")
            raise Forbidden(
                f"{root!r} is a published root and read-only through the API; "
                f"write to {PERSONAL}, {SHARED} or {PUBLIC} instead"
            )
        storage = root
    _check_key_length(storage, rel)
    return Location(space=root, root=storage, rel=rel)


def resolve(path: str, who: Principal, *, write: bool = False, allow_root_only: bool = True) -> Location:
    """Validate a user path (``split_path``) and :func:`locate` it."""
    root, rel = split_path(path, allow_root_only=allow_root_only)
    return locate(root, rel, who, write=write)


def may_read(storage_root: str, who: Principal) -> bool:
    """Whether *who* may read a storage root (how lazy-expression operands are re-authorised)."""
    if storage_root == SHARED:
        return who.authenticated
    if storage_root.startswith(_PERSONAL_PREFIX):
        return who.sub is not None and storage_root == personal_root(who.sub)
    return True  # published roots and @public


def shown(storage_path: str, who: Principal) -> str:
    """A storage path as *who* may see it: their own personal root as ``@personal``, others hidden."""
    root, _, rel = storage_path.partition("/")
    if root.startswith(_PERSONAL_PREFIX):
        if who.sub is not None and root == personal_root(who.sub):
            return f"{PERSONAL}/{rel}"
        return f"{PERSONAL} of another user"
    return storage_path


def visible_roots(stored: Iterable[str], *, authenticated: bool) -> list[str]:
    """Root names a caller sees: published roots, ``@public``, and for users ``@personal``, ``@shared``.

    The user spaces are listed whether or not anything was written to them yet;
    storage names of personal spaces never are.
    """
    published = sorted(name for name in stored if not name.startswith("@"))
    return published + ([PUBLIC, PERSONAL, SHARED] if authenticated else [PUBLIC])


# ---------------------------------------------------------------------- scoped reads


@contextmanager
def speaking_as(who: Principal) -> Iterator[None]:
    """Say ``@personal`` instead of the caller's storage root in the messages of errors raised inside.

    The domain names storage roots in its messages (``@personal.<sub>/x``);
    users only know ``@personal/x``.  Errors are re-raised as the same type.
    """
    try:
        yield
    except Exception as exc:
        if who.sub is None or personal_root(who.sub) not in str(exc):
            raise
        try:
            clean = type(exc)(str(exc).replace(personal_root(who.sub), PERSONAL))
        except Exception:  # noqa: BLE001 - a type that takes other arguments: keep the original
            raise exc from None
        raise clean from None


class ScopedReads:
    """The read service as one caller may use it.

    Same methods as :class:`~functions.engine.service.ReadService` (what the read
    endpoints call), taking the root as the user wrote it; paths are mapped and
    access-checked with :func:`locate`, and storage names are rewritten in
    answers and error messages.  Empty user spaces read as empty, not missing.

    Parameters
    ----------
    read : ReadService
        The process's read service.
    who : Principal
        The caller.

    """

    def __init__(self, read: ReadService, who: Principal) -> None:
        self._read = read
        self.who = who

    def _loc(self, root: str, rel: str) -> Location:
        return locate(root, rel, self.who)

    def _call(self, loc: Location, fn, *args, **kwargs):
        try:
            with speaking_as(self.who):
                return fn(loc.root, loc.rel, *args, **kwargs)
        except DatasetNotFound:
            # Name what the user asked for (the domain may name a root, or an object key)
            raise DatasetNotFound(loc.path) from None

    @property
    def region(self) -> _ScopedSubscriptions:
        """What the subscribe endpoints use: subscriptions of roots the caller may read."""
        return _ScopedSubscriptions(self)

    def roots(self, subscribed: set[str] | None = None) -> dict:
        """Roots visible to the caller (see :func:`visible_roots`)."""
        return self._read.roots(subscribed, authenticated=self.who.authenticated)

    def list(self, root: str, rel: str) -> list[str]:
        """Like ``ReadService.list``; an empty user space lists as ``[]``."""
        loc = self._loc(root, rel)
        try:
            return self._call(loc, self._read.list)
        except DatasetNotFound:
            if loc.user_space:
                return []
            raise

    def info(self, root: str, rel: str) -> dict:
        """Like ``ReadService.info``, with the user's path in ``urlpath``."""
        loc = self._loc(root, rel)
        try:
            out = self._call(loc, self._read.info)
        except DatasetNotFound:
            if loc.user_space and not loc.rel:
                return {"kind": "group", "mtime": None, "size": 0, "nfiles": 0}
            raise
        target = out.get("schunk", out)
        if "urlpath" in target:
            target["urlpath"] = loc.path
        if "operands" in out:  # a lazy expression: operands as this caller may see them
            out["operands"] = {alias: shown(path, self.who) for alias, path in out["operands"].items()}
        return out

    def _may_read(self, storage_root: str) -> bool:
        return may_read(storage_root, self.who)

    def fetch(self, root: str, rel: str, params: FetchParams, stats: CacheStats) -> bytes:
        """Like ``ReadService.fetch`` (lazy-expression operands re-authorised for the caller)."""
        return self._call(self._loc(root, rel), self._read.fetch, params, stats, may_read=self._may_read)

    def chunk(self, root: str, rel: str, nchunk: int, stats: CacheStats) -> bytes:
        """Like ``ReadService.chunk``."""
        return self._call(self._loc(root, rel), self._read.chunk, nchunk, stats, may_read=self._may_read)

    def download(self, root: str, rel: str, *, blosc2_encoding: bool, stats: CacheStats) -> Download:
        """Like ``ReadService.download``."""
        loc = self._loc(root, rel)
        return self._call(
            loc, self._read.download, blosc2_encoding=blosc2_encoding, stats=stats, may_read=self._may_read
        )

    def plan(self, root: str, rel: str, slice_: str | None, stats: CacheStats) -> dict:
        """Like ``ReadService.plan``, with the user's path in ``path``."""
        loc = self._loc(root, rel)
        out = self._call(loc, self._read.plan, slice_, stats)
        out["path"] = loc.path
        return out


class _ScopedSubscriptions:
    """``region.catalog``/``set_subscribed`` for the subscribe endpoints, through :func:`locate`.

    Only published roots and ``@public`` can be subscribed: a region-wide
    subscription to a private space would be shared by every user of the region.
    """

    def __init__(self, scoped: ScopedReads) -> None:
        self._scoped = scoped

    def _root(self, name: str) -> str:
        loc = self._scoped._loc(name, "")
        if loc.space in (PERSONAL, SHARED):
            raise BadRequest(f"{name} cannot be subscribed; only published roots and {PUBLIC} can")
        return loc.root

    def catalog(self, name: str):
        """The catalog of a subscribable root (404 if it has none)."""
        return self._scoped._read.region.catalog(self._root(name))

    def set_subscribed(self, name: str, on: bool) -> set[str]:
        """Subscribe or unsubscribe the region."""
        return self._scoped._read.region.set_subscribed(self._root(name), on)
