"""Users over real HTTP (the local stack): login, tokens, flood protection, admin, and who may do what.

Users A and B are created through the admin command (``python -m functions.admin``)
against the moto user pool, then log in through ``POST /auth/jwt/login``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import blosc2
import caterva2 as cat2
import httpx
import jwt
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.utilities.utils import load_resource

from functions import admin
from functions.engine.limits import LoginLimiter

RUN = uuid.uuid4().hex[:8]  # this module's paths and users do not collide with other tests'


@dataclass
class Person:
    name: str
    password: str
    token: str

    @property
    def cookie(self) -> dict:
        return {"Cookie": f"c2subauth={self.token}"}

    @property
    def bearer(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


def add_user(stack, name: str) -> str:
    """Create a user through the admin command; returns the password."""
    password = admin.generate_password()
    argv = ["--pool-id", stack.resources["user_pool_id"], "--endpoint-url", stack.endpoint_url]
    assert admin.main([*argv, "users", "add", name, "--password", password]) == 0
    return password


def login(url: str, name: str, password: str) -> str:
    resp = httpx.post(f"{url}/auth/jwt/login", data={"username": name, "password": password})
    assert resp.status_code == 204, resp.text
    return resp.cookies["c2subauth"]


@pytest.fixture(scope="module")
def people(stack) -> dict[str, Person]:
    out = {}
    for key in ("a", "b"):
        name = f"user-{key}-{RUN}"
        password = add_user(stack, name)
        out[key] = Person(name, password, login(stack.api_url, name, password))
    return out


def upload(url: str, path: str, data: bytes, headers: dict, name: str = "f.b2nd") -> httpx.Response:
    return httpx.post(f"{url}/api/upload/{path}", files={"file": (name, data)}, headers=headers)


def frame(value: float, shape=(8, 8)) -> bytes:
    return blosc2.asarray(np.full(shape, value)).to_cframe()


# --------------------------------------------------------------------------- login


def test_login_sets_the_cookie_clients_expect(api_url, people):
    a = people["a"]
    resp = httpx.post(f"{api_url}/auth/jwt/login", data={"username": a.name, "password": a.password})
    assert resp.status_code == 204
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("c2subauth=") and "HttpOnly" in cookie and "Path=/" in cookie
    assert "samesite=lax" in cookie.lower()
    assert httpx.get(f"{api_url}/auth/me", headers=a.cookie).json() == {"username": a.name}
    assert httpx.get(f"{api_url}/auth/me", headers=a.bearer).json() == {"username": a.name}
    # The real clients log in exactly this way
    with cat2.Client(api_url, (a.name, a.password)) as client:
        assert client.cookie.startswith("c2subauth=")
        assert {"@personal", "@shared", "@public", "example"} <= set(client.get_roots())
    assert blosc2.c2array.login(a.name, a.password, api_url).startswith("c2subauth=")


@pytest.mark.parametrize("field", ["password", "username"])
def test_bad_credentials(stack, people, field):
    # Failed logins count against the client address (all tests share 127.0.0.1): they go
    # to region 2, whose limiter test_login_flooding_is_throttled starts afresh and resets
    url = stack.regions[1].url
    form = {"username": people["a"].name, "password": people["a"].password, field: "wrong-" + RUN}
    resp = httpx.post(f"{url}/auth/jwt/login", data=form)
    assert (resp.status_code, resp.json()) == (400, {"detail": "LOGIN_BAD_CREDENTIALS"})
    assert "set-cookie" not in resp.headers
    with pytest.raises(httpx.HTTPStatusError):
        cat2.Client(url, (form["username"], form["password"]))


def test_logout_clears_the_cookie(api_url):
    resp = httpx.post(f"{api_url}/auth/jwt/logout")
    assert resp.status_code == 204 and 'c2subauth=""' in resp.headers["set-cookie"]


def _moto_key():
    """moto's private signing key: lets the test mint tokens that verify except for what it breaks."""
    return jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json"), algorithm="RS256").key


def _claims(stack, **changes) -> dict:
    pool = stack.resources["user_pool_id"]
    now = int(time.time())
    claims = {
        "iss": f"https://cognito-idp.us-east-1.amazonaws.com/{pool}",
        "aud": stack.resources["user_pool_client_id"],
        "sub": "11111111-2222-4333-8444-555555555555",
        "token_use": "id",
        "iat": now,
        "exp": now + 3600,
        "cognito:username": "mallory",
    }
    return {**claims, **changes}


def _forged_tokens(stack) -> dict[str, str]:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    moto = _moto_key()
    hour_ago = int(time.time()) - 3600

    def sign(key, **changes):
        return jwt.encode(_claims(stack, **changes), key, algorithm="RS256", headers={"kid": "dummy"})

    return {
        "other key": sign(other),
        "expired": sign(moto, iat=hour_ago - 60, exp=hour_ago),
        "other app": sign(moto, aud="someone-elses-client"),
        "access token": sign(moto, token_use="access"),
        "alg none": jwt.encode(_claims(stack), None, algorithm="none"),
        "garbage": "not.a.token",
    }


def test_forged_and_expired_tokens(stack, api_url, people):
    good = jwt.encode(_claims(stack), _moto_key(), algorithm="RS256", headers={"kid": "dummy"})
    assert httpx.get(f"{api_url}/auth/me", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    before = httpx.get(f"{api_url}/api/list/@public").json()
    for what, token in _forged_tokens(stack).items():
        for headers in ({"Cookie": f"c2subauth={token}"}, {"Authorization": f"Bearer {token}"}):
            # Public data: the caller is simply anonymous
            roots = httpx.get(f"{api_url}/api/roots", headers=headers)
            assert roots.status_code == 200 and "@personal" not in roots.json(), what
            assert httpx.get(f"{api_url}/api/info/example/ds-1d.b2nd", headers=headers).status_code == 200
            # Protected: 401 saying why
            resp = httpx.get(f"{api_url}/api/list/@personal", headers=headers)
            assert resp.status_code == 401 and "token was refused" in resp.json()["detail"], what
            resp = upload(api_url, f"@public/forged-{RUN}/x.b2nd", frame(1), headers)
            assert resp.status_code == 401, what
    expired = {"Cookie": f"c2subauth={_forged_tokens(stack)['expired']}"}
    resp = httpx.get(f"{api_url}/auth/me", headers=expired)
    assert resp.status_code == 401 and "expired" in resp.json()["detail"]
    assert httpx.get(f"{api_url}/api/list/@public").json() == before  # nothing was written


def test_login_flooding_is_throttled(stack, people):
    """Failures per username and per address are limited (region 2 only: the address is shared)."""
    region = stack.regions[1]
    url = region.url
    a = people["a"]
    fresh = region.services.settings.login_failures_per_minute
    region.services.login_limiter = LoginLimiter(fresh)  # earlier tests' failures do not count
    try:
        for _ in range(10):
            resp = httpx.post(f"{url}/auth/jwt/login", data={"username": a.name, "password": "guess"})
            assert resp.status_code == 400
        resp = httpx.post(f"{url}/auth/jwt/login", data={"username": a.name, "password": a.password})
        assert resp.status_code == 429 and "too many failed logins" in resp.json()["detail"]
        assert 1 <= int(resp.headers["retry-after"]) <= 60
        # The address is over budget as well: other usernames from it wait too
        resp = httpx.post(f"{url}/auth/jwt/login", data={"username": "someone", "password": "x"})
        assert resp.status_code == 429
        # A burst of concurrent attempts does not crash anything
        with httpx.Client() as client:
            form = {"username": a.name, "password": "x"}
            codes = {client.post(f"{url}/auth/jwt/login", data=form).status_code for _ in range(30)}
        assert codes == {429}
        assert httpx.get(f"{url}/api/roots").status_code == 200
    finally:
        # Other tests log in from this address too
        region.services.login_limiter = LoginLimiter(fresh)
    resp = httpx.post(f"{url}/auth/jwt/login", data={"username": a.name, "password": a.password})
    assert resp.status_code == 204


def test_admin_list_and_remove(stack, capsys):
    argv = ["--pool-id", stack.resources["user_pool_id"], "--endpoint-url", stack.endpoint_url]
    name = f"temp-{RUN}"
    assert admin.main([*argv, "--json", "users", "add", name]) == 0
    generated = capsys.readouterr().out
    password = json.loads(generated)["password"]
    assert login(stack.api_url, name, password)
    assert admin.main([*argv, "users", "list"]) == 0
    assert name in capsys.readouterr().out
    assert admin.main([*argv, "users", "add", name, "--password", password]) == 1  # exists
    assert "already exists" in capsys.readouterr().err
    assert admin.main([*argv, "users", "remove", name]) == 0
    resp = httpx.post(f"{stack.regions[1].url}/auth/jwt/login", data={"username": name, "password": password})
    assert resp.status_code == 400
    assert admin.main([*argv, "users", "remove", name]) == 1


# --------------------------------------------------------------------------- the authorisation matrix

CALLERS = ("anon", "a", "b")
SPACES = ("example", "public", "personal", "shared")
OPS = ("roots", "list", "info", "fetch", "chunk", "download", "upload", "remove", "move", "copy")
READS = ("list", "info", "fetch", "chunk", "download")
ROOT = {"example": "example", "public": "@public", "personal": "@personal", "shared": "@shared"}


def expected(caller: str, space: str, op: str) -> int:
    """The status each cell must answer (and see ``check_effects`` for what it must do)."""
    anon = caller == "anon"
    if op == "roots":
        return 200
    if space == "example":
        if op == "copy" and not anon:
            return 400  # a published root is not a space to copy into (Caterva2's answer)
        return 200 if op in READS else 401 if anon else 403
    if space == "public":
        return 200 if op in READS or not anon else 401
    if anon:
        return 401
    if space == "shared" or caller == "a":
        return 200
    # B's "@personal/..." is B's own space: A's files are simply not there
    return {"list": 200, "upload": 200}.get(op, 404)


@pytest.fixture(scope="module")
def matrix(api_url, people):
    """A puts a dataset in each user space, plus one victim per caller for remove and move."""
    a = people["a"]
    base = {"example": "example"} | {s: f"{ROOT[s]}/m-{RUN}" for s in ("public", "personal", "shared")}
    for space in ("public", "personal", "shared"):
        for name in ["m.b2nd"] + [f"{op}-{c}.b2nd" for op in ("rm", "mv") for c in CALLERS]:
            assert upload(api_url, f"{base[space]}/{name}", frame(7), a.cookie).status_code == 200
    return base


def _headers(people, caller):
    if caller == "anon":
        return {}
    # A sends the cookie (as Caterva2's clients do), B a bearer token: both must work
    return people["a"].cookie if caller == "a" else people["b"].bearer


def _request(url: str, base: dict, headers: dict, caller: str, space: str, op: str) -> httpx.Response:
    target = "example/ds-1d.b2nd" if space == "example" else f"{base[space]}/m.b2nd"
    folder = base[space]
    if op == "roots":
        return httpx.get(f"{url}/api/roots", headers=headers)
    if op == "list":
        return httpx.get(f"{url}/api/list/{folder}", headers=headers)
    if op in ("info", "download"):
        return httpx.get(f"{url}/api/{op}/{target}", headers=headers)
    if op == "fetch":
        return httpx.get(f"{url}/api/fetch/{target}", params={"slice_": "0:2"}, headers=headers)
    if op == "chunk":
        return httpx.get(f"{url}/api/chunk/{target}", params={"nchunk": 0}, headers=headers)
    if op == "upload":
        return upload(url, f"{folder}/up-{caller}.b2nd", frame(1), headers)
    if op == "remove":
        victim = "example/ds-1d.b2nd" if space == "example" else f"{folder}/rm-{caller}.b2nd"
        return httpx.post(f"{url}/api/remove/{victim}", headers=headers)
    if op == "move":
        src = "example/ds-1d.b2nd" if space == "example" else f"{folder}/mv-{caller}.b2nd"
    else:
        src = target
    body = {"src": src, "dst": f"{folder}/{op}d-{caller}.b2nd"}  # moved-a.b2nd, copyd-b.b2nd, ...
    return httpx.post(f"{url}/api/{op}/", json=body, headers=headers)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("caller", CALLERS)
def test_authorisation_matrix(api_url, people, matrix, caller, space, op):
    resp = _request(api_url, matrix, _headers(people, caller), caller, space, op)
    want = expected(caller, space, op)
    assert resp.status_code == want, f"{caller} {op} {space}: {resp.status_code} {resp.text[:200]}"
    if want >= 400:
        assert resp.json()["detail"], "errors must say what was wrong"
    if op == "roots":
        visible = set(resp.json())
        assert (ROOT[space] in visible) == (caller != "anon" or space in ("example", "public"))
        assert not any(r.startswith("@personal.") for r in visible)
    if caller == "b" and space == "personal":
        # Whatever B does under "@personal" happens in B's space and never reaches A's
        listing = httpx.get(f"{api_url}/api/list/{matrix['personal']}", headers=people["a"].cookie).json()
        assert "m.b2nd" in listing and "up-b.b2nd" not in listing and "copyd-b.b2nd" not in listing
        if op == "list":
            assert resp.json() in ([], ["up-b.b2nd"])
        if op in ("info", "fetch", "chunk", "download"):
            assert "@personal." not in resp.text  # the storage name never shows


def test_matrix_side_effects(api_url, people, matrix):
    """After the matrix: the refused writes changed nothing, the allowed ones did what they said."""
    a, b = people["a"], people["b"]
    for space in ("public", "shared"):
        listing = set(httpx.get(f"{api_url}/api/list/{matrix[space]}", headers=a.cookie).json())
        assert {"rm-a.b2nd", "rm-b.b2nd", "mv-a.b2nd", "mv-b.b2nd"}.isdisjoint(listing)
        assert {"rm-anon.b2nd", "mv-anon.b2nd", "m.b2nd", "moved-a.b2nd", "copyd-b.b2nd"} <= listing
        assert "up-anon.b2nd" not in listing
    mine = set(httpx.get(f"{api_url}/api/list/{matrix['personal']}", headers=a.cookie).json())
    assert {"rm-b.b2nd", "mv-b.b2nd", "up-a.b2nd", "moved-a.b2nd"} <= mine and "rm-a.b2nd" not in mine
    theirs = httpx.get(f"{api_url}/api/list/{matrix['personal']}", headers=b.bearer).json()
    assert theirs == ["up-b.b2nd"]
    assert httpx.get(f"{api_url}/api/info/example/ds-1d.b2nd").status_code == 200
    # Copying published data into a user space is allowed (reading it is)
    body = {"src": "example/ds-1d.b2nd", "dst": f"{matrix['personal']}/"}
    resp = httpx.post(f"{api_url}/api/copy/", json=body, headers=a.cookie)
    assert resp.json() == f"{matrix['personal']}/ds-1d.b2nd"



def test_blosc2_clients_plans_and_subscriptions_in_spaces(api_url, people, matrix):
    a = people["a"]
    path = f"{matrix['personal']}/m.b2nd"
    auth = f"c2subauth={a.token}"
    arr = blosc2.C2Array(path, urlbase=api_url, auth_token=auth)
    assert arr.shape == (8, 8) and np.array_equal(arr[2:4], np.full((2, 8), 7.0))
    assert np.array_equal(blosc2.Proxy(arr)[:], np.full((8, 8), 7.0))
    with pytest.raises(FileNotFoundError):
        blosc2.C2Array(path, urlbase=api_url, auth_token=f"c2subauth={people['b'].token}")
    plan = httpx.get(f"{api_url}/api/plan/{path}", headers=a.cookie).json()
    assert plan["path"] == path and "@personal." not in json.dumps(plan)
    # Region-wide subscriptions: published roots and @public only
    assert httpx.post(f"{api_url}/api/subscribe/@personal", headers=a.cookie).status_code == 400
    assert httpx.post(f"{api_url}/api/subscribe/@shared").status_code == 401
    resp = httpx.post(f"{api_url}/api/subscribe/@personal.{a.name}", headers=a.cookie)
    assert resp.status_code == 404
