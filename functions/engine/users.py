"""User administration for superusers: Caterva2's ``adduser`` / ``deluser`` / ``listusers``.

Superusers are the members of a group of the user pool (``superusers`` in Cognito).
Whether the caller is one is asked of the pool on each call: these calls are rare,
and a revoked superuser loses the right at once, not when their token expires.
Answers and messages follow Caterva2's (``"User added: ..."``, ``"User deleted: ..."``,
a 400 saying ``UserNotExists``), without ever echoing a password back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from functions.engine.errors import AuthError, AuthRequired, BadRequest, Forbidden, UnknownUser
from functions.engine.ports import Account, Authenticator
from functions.engine.spaces import Principal

__all__ = ["UserAdmin", "account_json"]

#: What Caterva2 accepts as a user name here (it uses e-mail addresses); 254 is RFC 5321's bound.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_CHARS = 254


def account_json(account: Account) -> dict:
    """An account in the shape of Caterva2's ``listusers`` (its SQL user row, without the hash)."""
    return {
        "email": account.username,
        "id": account.sub,
        "is_active": account.enabled,
        "is_superuser": account.superuser,
        "is_verified": account.confirmed,
    }


@dataclass
class UserAdmin:
    """Superusers' administration of the pool's accounts.

    Parameters
    ----------
    auth : Authenticator
        The user pool.
    max_users : int
        Most accounts the pool may hold through ``adduser`` (0 = no bound).

    """

    auth: Authenticator
    max_users: int = 0

    def _require_superuser(self, who: Principal, what: str) -> None:
        if not who.authenticated:
            raise AuthRequired(f"{what} requires a login")
        if not self.auth.is_superuser(who.username or ""):
            raise Forbidden(f"only superusers may {what}")

    def add(self, who: Principal, username: str, password: str | None, superuser: bool = False) -> str:
        """Create an account; returns Caterva2's message."""
        self._require_superuser(who, "add users")
        if len(username) > MAX_EMAIL_CHARS or not _EMAIL.match(username):
            raise BadRequest(f"Error in adding {username[:80]!r}: the user name must be an e-mail address")
        if not password:
            raise BadRequest(f"Error in adding {username}: a password is required")
        if self.max_users and len(self.auth.list_users()) >= self.max_users:
            raise BadRequest(f"Only a maximum of {self.max_users} users are allowed")
        try:
            self.auth.add_user(username, password, superuser=superuser)
        except AuthError as exc:
            raise BadRequest(f"Error in adding {username}: {exc}") from None
        return f"User added: username={username!r} superuser={bool(superuser)}"

    def remove(self, who: Principal, username: str) -> str:
        """Delete an account (its ``@personal`` data stays in storage); returns Caterva2's message."""
        self._require_superuser(who, "delete users")
        try:
            self.auth.remove_user(username)
        except UnknownUser:
            raise BadRequest(f"Error in deleting {username}: UserNotExists") from None
        except AuthError as exc:
            raise BadRequest(f"Error in deleting {username}: {exc}") from None
        return f"User deleted: {username}"

    def listing(self, who: Principal, username: str | None = None) -> list[dict]:
        """Every account, or the one named *username* (superusers only: the list names everyone)."""
        self._require_superuser(who, "list users")
        accounts = self.auth.accounts()
        if username is not None:
            accounts = [a for a in accounts if a.username == username]
        return [account_json(a) for a in accounts]
