"""User spaces: which storage root a user's path names, and who may do what.

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

from functions.engine import authorship
from functions.engine.errors import AuthRequired, BadRequest, DatasetNotFound, Forbidden
from functions.engine.paths import split_path

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
    version : int or None
        The version asked for (``?version=``); None for the current one.

    """

    space: str
    root: str
    rel: str
    version: int | None = None

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


def require_user(who: Principal, what: str) -> None:
    """Raise :class:`AuthRequired` (saying why) unless *who* is a logged-in user."""
    if not who.authenticated:
        raise _needs_login(who, what)


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


def destination(path: str, who: Principal) -> Location:
    """Where a move or copy may go: inside ``@personal``, ``@shared`` or ``@public`` (400 otherwise).

    A published root is read-only, and any other name is not a space: either way
    the request names a destination that cannot be, which Caterva2 answers 400.
    """
    root, rel = split_path(path)
    if root not in (PERSONAL, SHARED, PUBLIC) and not root.startswith("@"):  # "@..." roots: 404
        if not who.authenticated:
            raise _needs_login(who, "writing")
        raise BadRequest(f"{root!r} is not a space: move or copy into {PERSONAL}, {SHARED} or {PUBLIC}")
    return locate(root, rel, who, write=True)


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


# ---------------------------------------------------------------------- messages


@contextmanager
def speaking_as(who: Principal) -> Iterator[None]:
    """Say ``@personal`` instead of the caller's storage root in the messages of errors raised inside.

    The domain names storage roots in its messages (``@personal.<sub>/x``);
    users only know ``@personal/x``.  Errors are re-raised as the same type.
    Commits made inside name *who* as their author (:mod:`functions.engine.authorship`).
    """
    try:
        with authorship.committing_as(who.username):
            yield
    except Exception as exc:
        if who.sub is None or personal_root(who.sub) not in str(exc):
            raise
        try:
            clean = type(exc)(str(exc).replace(personal_root(who.sub), PERSONAL))
        except Exception:  # noqa: BLE001 - a type that takes other arguments: keep the original
            raise exc from None
        raise clean from None
