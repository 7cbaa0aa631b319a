"""Cognito user-pool adapter of the authentication port (the only ``cognito-idp`` code).

Tokens are Cognito **ID tokens** (``token_use == "id"``): they name the user
(``cognito:username``) and carry the app client id as the standard ``aud``
claim, which PyJWT checks natively.  Access tokens are refused, so one kind of
token is valid everywhere.

Every token is verified locally on every request: RS256 signature against the
pool's published keys (JWKS), expiry, issuer (this pool) and audience (this app
client).  Nothing is ever trusted unverified, and no call to Cognito is made per
request; the JWKS is fetched once per process and again only when a token names
a key we have not seen (Cognito rotates keys rarely), at most once a minute so
that forged tokens with random key ids cannot make us hammer the endpoint.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import jwt
from botocore.exceptions import BotoCoreError, ClientError

from functions.engine.errors import (
    AuthError,
    BadCredentials,
    InvalidToken,
    PasswordChangeRequired,
    ProviderUnavailable,
    Throttled,
    UnknownUser,
    UserExists,
    WeakPassword,
)
from functions.engine.ports import Account, User

#: The Cognito group whose members may administer users (``/api/adduser`` and friends).
SUPERUSERS_GROUP = "superusers"

#: Seconds between JWKS fetches caused by unknown key ids (after a failed fetch: 5 s).
JWKS_REFETCH_INTERVAL = 60.0
_JWKS_RETRY_AFTER_FAILURE = 5.0
#: Cognito tokens are ~1 KB; anything much longer is not one of ours.
MAX_TOKEN_CHARS = 8192
#: A sub names storage (``@personal.<sub>``): it must fit the root-name rule (64 chars).
_SUB = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,53}$")

_BAD_LOGIN = {
    "NotAuthorizedException",
    "UserNotFoundException",
    "UserNotConfirmedException",
    "PasswordResetRequiredException",
    "InvalidParameterException",
}
_THROTTLED = {"TooManyRequestsException", "TooManyFailedAttemptsException", "LimitExceededException"}


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _message(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Message", ""))


def _fetch_json(url: str) -> Any:
    # urllib rather than an HTTP library: one small GET per process lifetime
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - URL built from settings
        return json.loads(resp.read())


def pool_region(pool_id: str) -> str:
    """The AWS region of a user pool (Cognito pool ids are ``<region>_<id>``)."""
    region, sep, rest = pool_id.partition("_")
    if not sep or not region or not rest:
        raise ValueError(f"not a Cognito user pool id: {pool_id!r}")
    return region


class CognitoAuthenticator:
    """The :class:`~functions.engine.ports.Authenticator` over a Cognito user pool.

    Parameters
    ----------
    client : botocore ``cognito-idp`` client
        Built once by the caller (cold start).
    pool_id : str
        The user pool id (``us-east-1_AbC123``).
    client_id : str
        The app client id (no secret; ``ALLOW_USER_PASSWORD_AUTH`` enabled).
    endpoint_url : str, optional
        A stand-in endpoint (moto's server, LocalStack).  Tokens still name the
        real Cognito issuer; only where the JWKS is fetched from changes.
    fetch_json : callable, optional
        ``url -> parsed JSON`` (tests inject keys with it).
    monotonic : callable, optional
        Clock for the JWKS refetch interval.
    leeway : float
        Seconds of clock skew tolerated on ``exp``/``iat`` (0: Lambda clocks are synced).

    """

    def __init__(
        self,
        client,
        pool_id: str,
        client_id: str,
        *,
        endpoint_url: str | None = None,
        fetch_json: Callable[[str], Any] = _fetch_json,
        monotonic: Callable[[], float] = time.monotonic,
        leeway: float = 0.0,
    ) -> None:
        self._idp = client
        self.pool_id = pool_id
        self.client_id = client_id
        self.issuer = f"https://cognito-idp.{pool_region(pool_id)}.amazonaws.com/{pool_id}"
        base = endpoint_url.rstrip("/") + f"/{pool_id}" if endpoint_url else self.issuer
        self.jwks_url = f"{base}/.well-known/jwks.json"
        self._fetch = fetch_json
        self._monotonic = monotonic
        self.leeway = leeway
        self._keys: dict[str, Any] = {}
        self._next_fetch = float("-inf")
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ login

    def login(self, username: str, password: str) -> str:
        """An ID token for *username* (``USER_PASSWORD_AUTH``)."""
        try:
            resp = self._idp.initiate_auth(
                ClientId=self.client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": username, "PASSWORD": password},
            )
        except ClientError as err:
            code, message = _code(err), _message(err)
            if code in _THROTTLED or "attempts exceeded" in message.lower():
                raise Throttled("the user pool refuses login attempts for now; wait and retry") from None
            if code in _BAD_LOGIN:
                raise BadCredentials("bad username or password") from None
            raise ProviderUnavailable(f"the user pool could not log you in: {code}") from None
        except BotoCoreError as err:
            raise ProviderUnavailable(f"the user pool is unreachable: {err}") from None
        result = resp.get("AuthenticationResult")
        if not result:
            challenge = resp.get("ChallengeName", "a challenge")
            if challenge == "NEW_PASSWORD_REQUIRED":
                raise PasswordChangeRequired("the account must set a new password first (ask an admin)")
            raise BadCredentials(f"the account needs {challenge}, which this API does not support")
        return result["IdToken"]

    # ------------------------------------------------------------------ verification

    def _key(self, kid: str):
        with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                return key
            now = self._monotonic()
            if now < self._next_fetch:
                raise InvalidToken("the token is signed with a key this user pool does not publish")
            try:
                data = self._fetch(self.jwks_url)
                keys = {
                    k["kid"]: jwt.PyJWK(k, algorithm="RS256").key
                    for k in data["keys"]
                    if k.get("kty") == "RSA" and k.get("use", "sig") == "sig" and "kid" in k
                }
            except Exception as exc:  # noqa: BLE001 - network, JSON or key errors: nothing verifiable
                self._next_fetch = now + _JWKS_RETRY_AFTER_FAILURE
                raise ProviderUnavailable(f"the pool's signing keys could not be fetched: {exc}") from exc
            self._keys = keys
            self._next_fetch = now + JWKS_REFETCH_INTERVAL
            key = keys.get(kid)
            if key is None:
                raise InvalidToken("the token is signed with a key this user pool does not publish")
            return key

    def verify(self, token: str) -> User:
        """The user of a valid, current ID token of this pool and app client."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        # Pinning the algorithm refuses "none" and HS256-with-the-public-key forgeries
        if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
            raise InvalidToken("the token is not signed the way this user pool signs")
        key = self._key(header["kid"])
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.client_id,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "token_use"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired; log in again") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token was issued for another application") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the token was issued by another user pool") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is not valid: {exc}") from None
        if claims.get("token_use") != "id":
            raise InvalidToken("an ID token is required (got an access or other token)")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not _SUB.match(sub):
            raise InvalidToken("the token's subject is not a user id")
        username = claims.get("cognito:username")
        return User(sub=sub, username=username if isinstance(username, str) else sub)

    # ------------------------------------------------------------------ admin

    def _admin(self, method: str, **kwargs):
        try:
            return getattr(self._idp, method)(UserPoolId=self.pool_id, **kwargs)
        except ClientError as err:
            code, message = _code(err), _message(err)
            if code == "UsernameExistsException":
                raise UserExists(f"user {kwargs.get('Username')!r} already exists") from None
            if code == "UserNotFoundException":
                raise UnknownUser(f"no user {kwargs.get('Username')!r}") from None
            if code == "InvalidPasswordException":
                raise WeakPassword(f"the password does not meet the pool's policy: {message}") from None
            if code in _THROTTLED:
                raise Throttled(message or code) from None
            raise AuthError(f"{method} failed: {code}: {message}") from None
        except BotoCoreError as err:
            raise ProviderUnavailable(f"the user pool is unreachable: {err}") from None

    def add_user(self, username: str, password: str, *, superuser: bool = False) -> User:
        """Create a confirmed user with a permanent password; no invitation is sent."""
        resp = self._admin("admin_create_user", Username=username, MessageAction="SUPPRESS")
        sub = _attribute(resp["User"], "sub")
        try:
            self._admin("admin_set_user_password", Username=username, Password=password, Permanent=True)
            if superuser:
                self._ensure_group()
                self._admin("admin_add_user_to_group", Username=username, GroupName=SUPERUSERS_GROUP)
        except AuthError:
            # A user without a usable password is only in the way of a retry
            self._admin("admin_delete_user", Username=username)
            raise
        return User(sub=sub or "", username=username)

    def _ensure_group(self) -> None:
        # The template creates the group; a pool made without it (tests, an older stack) gets it here
        try:
            self._idp.get_group(UserPoolId=self.pool_id, GroupName=SUPERUSERS_GROUP)
        except ClientError as err:
            if _code(err) != "ResourceNotFoundException":
                raise AuthError(f"get_group failed: {_code(err)}: {_message(err)}") from None
            self._admin("create_group", GroupName=SUPERUSERS_GROUP, Description="may administer users")

    def _pages(self, method: str, key: str, **kwargs) -> list[dict]:
        items, token = [], None
        while True:
            extra = {"NextToken" if method != "list_users" else "PaginationToken": token} if token else {}
            resp = self._admin(method, **kwargs, **extra)
            items += resp.get(key, [])
            token = resp.get("NextToken") or resp.get("PaginationToken")
            if not token:
                return items

    def _superusers(self) -> set[str]:
        try:
            members = self._pages("list_users_in_group", "Users", GroupName=SUPERUSERS_GROUP)
        except AuthError as exc:
            if "ResourceNotFoundException" in str(exc):
                return set()  # no group yet: nobody is a superuser
            raise
        return {u["Username"] for u in members}

    def accounts(self) -> list[Account]:
        """Every user with its state and group membership, sorted by username."""
        supers = self._superusers()
        return sorted(
            (
                Account(
                    username=u["Username"],
                    sub=_attribute(u, "sub") or "",
                    enabled=bool(u.get("Enabled", True)),
                    confirmed=u.get("UserStatus") == "CONFIRMED",
                    superuser=u["Username"] in supers,
                )
                for u in self._pages("list_users", "Users")
            ),
            key=lambda a: a.username,
        )

    def is_superuser(self, username: str) -> bool:
        """Whether *username* is in the superusers' group (asked of the pool each time: rare calls)."""
        try:
            groups = self._pages("admin_list_groups_for_user", "Groups", Username=username)
        except UnknownUser:
            return False
        return any(g.get("GroupName") == SUPERUSERS_GROUP for g in groups)

    def list_users(self) -> list[User]:
        """Every user, sorted by username."""
        pool = self._pages("list_users", "Users")
        users = (User(sub=_attribute(u, "sub") or "", username=u["Username"]) for u in pool)
        return sorted(users, key=lambda u: u.username)

    def remove_user(self, username: str) -> None:
        """Delete a user; their ``@personal`` data stays in storage under their sub."""
        self._admin("admin_delete_user", Username=username)


def _attribute(user: dict, name: str) -> str | None:
    for attr in user.get("Attributes", ()):
        if attr.get("Name") == name:
            return attr.get("Value")
    return None
