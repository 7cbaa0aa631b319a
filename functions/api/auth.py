"""Login and logout (Caterva2's ``/auth/jwt/*``), and who is behind each request.

A request carries its token as the ``c2subauth`` cookie (what ``caterva2.Client``
and ``blosc2.C2Array`` send back after ``POST /auth/jwt/login``) or as
``Authorization: Bearer <token>``.  The token is verified on every request; one
that does not verify leaves the caller anonymous, which is enough for public
data, and the reason is reported if they reach for something protected (401).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from functions.api.deps import services_of
from functions.engine.errors import AuthRequired, BadCredentials, InvalidToken, ProviderUnavailable
from functions.engine.spaces import ANONYMOUS, Principal

router = APIRouter(prefix="/auth", tags=["users"])

COOKIE = "c2subauth"
#: Longer usernames or passwords are refused without asking the user pool.
MAX_CREDENTIAL_CHARS = 256



def _token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.cookies.get(COOKIE) or None


def client_address(request: Request, trust_forwarded_for: bool = False) -> str:
    """The caller's address, for the login limiter.

    The connection's peer: on API Gateway Mangum takes it from the event
    (``requestContext.http.sourceIp``), which the caller cannot forge.
    ``X-Forwarded-For`` is anyone's to write, so it counts only when the
    deployment says a proxy of its own sets it (``CAT_TRUST_FORWARDED_FOR``);
    then its last entry, the one that proxy appended, is the caller.
    """
    if trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return request.client.host if request.client else "unknown"


async def caller(request: Request) -> Principal:
    """Who is asking (verified once per request; anonymous when there is no valid token).

    ``async``: an anonymous request needs no worker thread (a sync dependency costs a
    threadpool hop on every request); a token is verified in one, as verifying may fetch
    the pool's signing keys.
    """
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = _token(request)
    auth = services_of(request).auth
    if not token:
        who = ANONYMOUS
    elif auth is None:
        who = Principal(token_problem="this server has no user pool, so it accepts no tokens")
    else:
        who = await run_in_threadpool(_verified, auth, token)
    request.state.principal = who
    return who


def _verified(auth, token: str) -> Principal:
    try:
        user = auth.verify(token)
    except (InvalidToken, ProviderUnavailable) as exc:
        return Principal(token_problem=str(exc))
    return Principal(sub=user.sub, username=user.username)


Caller = Annotated[Principal, Depends(caller)]


# ---------------------------------------------------------------------- endpoints


@router.post(
    "/jwt/login",
    status_code=204,
    response_class=Response,
    summary="Log in: sets the c2subauth cookie (its value also works as a bearer token)",
    responses={400: {"description": "LOGIN_BAD_CREDENTIALS"}, 429: {"description": "too many failures"}},
)
def login(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
) -> Response:
    """Form ``username`` and ``password`` → 204 with ``Set-Cookie: c2subauth=<token>``."""
    services = services_of(request)
    address = client_address(request, services.settings.trust_forwarded_for)
    # Per user *and* address: failures from elsewhere never lock an account's owner out
    user = username.strip().lower()[:MAX_CREDENTIAL_CHARS]
    keys = [f"user:{user} ip:{address}", f"ip:{address}"]
    services.login_limiter.check(keys)
    if services.auth is None:
        raise ProviderUnavailable("this server has no user pool configured: nobody can log in")
    try:
        if not username or not password or max(len(username), len(password)) > MAX_CREDENTIAL_CHARS:
            raise BadCredentials("bad username or password")
        token = services.auth.login(username, password)
    except BadCredentials:
        services.login_limiter.failed(keys)
        raise
    services.login_limiter.succeeded(keys[0])
    response = Response(status_code=204)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        path="/",
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/jwt/logout", status_code=204, response_class=Response, summary="Log out: clears the cookie")
def logout() -> Response:
    """Clear the ``c2subauth`` cookie (the token itself stays valid until it expires, ≤ 1 h)."""
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/me", summary="Who the request's token belongs to")
def me(who: Caller) -> dict:
    """``{"username": ...}`` for a valid token; 401 otherwise (with the reason)."""
    if not who.authenticated:
        raise AuthRequired(f"not logged in: {who.token_problem}" if who.token_problem else "not logged in")
    return {"username": who.username}
