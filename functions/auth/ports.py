"""The authentication port: what the API needs from an identity provider.

The API only ever sees a bearer token (the ``c2subauth`` cookie or an
``Authorization: Bearer`` header) and asks the port who it belongs to.  The
Cognito user pool is the production adapter (:mod:`functions.auth.cognito`);
nothing outside the adapters knows which provider is behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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

    def add_user(self, username: str, password: str) -> User:
        """Create a confirmed user with a permanent password (raises ``UserExists``, ``WeakPassword``)."""
        ...

    def list_users(self) -> list[User]:
        """Every user of the pool, sorted by username."""
        ...

    def remove_user(self, username: str) -> None:
        """Delete a user (raises ``UnknownUser``); their data stays in storage."""
        ...
