"""Unit tests of the auth pieces without AWS: token verification, the login limiter, spaces."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from functions.adapters.cognito import CognitoAuthenticator
from functions.engine.errors import BadRequest, DatasetNotFound, InvalidToken, ProviderUnavailable
from functions.engine.limits import LoginLimiter, TooManyAttempts
from functions.engine.spaces import (
    ANONYMOUS,
    AuthRequired,
    Forbidden,
    Principal,
    locate,
    resolve,
    speaking_as,
    visible_roots,
)

POOL = "eu-west-1_TestPool"
CLIENT = "app-client-1"
ISSUER = f"https://cognito-idp.eu-west-1.amazonaws.com/{POOL}"
SUB = "0f6c1d4e-1111-4222-8333-944455556666"


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY, OTHER_KEY = _key(), _key()


def _jwks(*pairs) -> dict:
    keys = []
    for kid, key in pairs:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    return {"keys": keys}


def _token(key=KEY, kid="k1", alg="RS256", **claims) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": SUB,
        "token_use": "id",
        "iat": now,
        "exp": now + 3600,
        "cognito:username": "alice",
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class FakeFetch:
    def __init__(self, doc):
        self.doc, self.calls = doc, []

    def __call__(self, url):
        self.calls.append(url)
        if isinstance(self.doc, Exception):
            raise self.doc
        return self.doc


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _auth(fetch, clock=None):
    return CognitoAuthenticator(None, POOL, CLIENT, fetch_json=fetch, monotonic=clock or Clock())


def test_valid_token_and_jwks_urls():
    fetch = FakeFetch(_jwks(("k1", KEY)))
    auth = _auth(fetch)
    user = auth.verify(_token())
    assert (user.sub, user.username) == (SUB, "alice")
    auth.verify(_token())
    assert fetch.calls == [f"{ISSUER}/.well-known/jwks.json"]  # fetched once, then cached
    local = CognitoAuthenticator(None, POOL, CLIENT, endpoint_url="http://127.0.0.1:5000/")
    assert local.jwks_url == f"http://127.0.0.1:5000/{POOL}/.well-known/jwks.json"
    assert local.issuer == ISSUER  # moto's tokens name the real issuer


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (_token(exp=int(time.time()) - 5), "expired"),
        (_token(aud="another-app"), "another application"),
        (_token(iss="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other"), "another user pool"),
        (_token(token_use="access"), "ID token"),
        (_token(key=OTHER_KEY), "signature"),
        (_token(sub="../../etc"), "not a user id"),
        (_token(exp=None), "exp"),
        (jwt.encode({"sub": SUB}, None, algorithm="none"), "not signed the way"),
        ("not-a-jwt", "malformed"),
        ("x" * 9000, "malformed"),
    ],
)
def test_bad_tokens_are_refused(token, reason):
    auth = _auth(FakeFetch(_jwks(("k1", KEY))))
    with pytest.raises(InvalidToken, match=reason):
        auth.verify(token)


def test_hs256_with_the_public_key_is_refused():
    """The classic algorithm confusion: an HMAC keyed with the (public) RSA key."""
    auth = _auth(FakeFetch(_jwks(("k1", KEY))))
    secret = KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    claims = {"sub": SUB, "aud": CLIENT, "iss": ISSUER, "token_use": "id", "iat": now, "exp": now + 60}
    signing = b".".join(
        _b64(json.dumps(part).encode()) for part in ({"alg": "HS256", "kid": "k1", "typ": "JWT"}, claims)
    )
    forged = (signing + b"." + _b64(hmac.new(secret, signing, hashlib.sha256).digest())).decode()
    with pytest.raises(InvalidToken, match="not signed the way"):
        auth.verify(forged)


def test_unknown_kid_refetches_at_most_once_a_minute():
    clock = Clock()
    fetch = FakeFetch(_jwks(("k1", KEY)))
    auth = _auth(fetch, clock)
    auth.verify(_token())
    for _ in range(20):  # random key ids must not turn into JWKS requests
        with pytest.raises(InvalidToken, match="key"):
            auth.verify(_token(kid="unknown"))
    assert len(fetch.calls) == 1
    # Key rotation: the new key is found once the interval has passed
    fetch.doc = _jwks(("k1", KEY), ("k2", OTHER_KEY))
    clock.now += 61
    assert auth.verify(_token(key=OTHER_KEY, kid="k2")).sub == SUB
    assert len(fetch.calls) == 2


def test_unreachable_jwks_is_unavailable_not_invalid():
    auth = _auth(FakeFetch(OSError("connection refused")))
    with pytest.raises(ProviderUnavailable, match="signing keys"):
        auth.verify(_token())


def test_login_limiter_windows_and_keys():
    clock = Clock()
    limiter = LoginLimiter(3, 60.0, clock=clock, max_keys=100)
    keys = ["user:alice", "ip:1.2.3.4"]
    for _ in range(3):
        limiter.check(keys)
        limiter.failed(keys)
    with pytest.raises(TooManyAttempts) as err:
        limiter.check(["user:alice", "ip:9.9.9.9"])
    assert 1 <= err.value.retry_after <= 60
    with pytest.raises(TooManyAttempts):
        limiter.check(["user:bob", "ip:1.2.3.4"])  # the address is over budget too
    limiter.check(["user:bob", "ip:9.9.9.9"])
    limiter.succeeded("user:alice")
    limiter.check(["user:alice", "ip:9.9.9.9"])  # its owner got in: the user key is clear
    clock.now += 61
    limiter.check(keys)  # the window slid past every failure
    for i in range(500):  # memory stays bounded under a flood of distinct names
        limiter.failed([f"user:{i}"])
    assert len(limiter._failures) <= 100


def test_spaces_map_paths_and_enforce_access():
    alice = Principal(sub=SUB, username="alice")
    loc = resolve("@personal/dir/x.b2nd", alice)
    assert (loc.space, loc.root, loc.rel) == ("@personal", f"@personal.{SUB}", "dir/x.b2nd")
    assert loc.path == "@personal/dir/x.b2nd"
    assert resolve("@shared/a", alice, write=True).root == "@shared"
    assert resolve("@public/a", ANONYMOUS).root == "@public"
    assert resolve("example/ds.b2nd", ANONYMOUS).root == "example"
    for path in ("@personal/x", "@shared/x"):
        with pytest.raises(AuthRequired, match="logged-in"):
            resolve(path, ANONYMOUS)
    with pytest.raises(AuthRequired, match="expired"):
        resolve("@public/x", Principal(token_problem="the token has expired"), write=True)
    with pytest.raises(AuthRequired):
        resolve("example/x", ANONYMOUS, write=True)
    with pytest.raises(Forbidden, match="read-only"):
        resolve("example/x", alice, write=True)
    # Storage names are not addressable, not even one's own
    for path in (f"@personal.{SUB}/x", "@personal.someone/x", "@other/x"):
        with pytest.raises(DatasetNotFound):
            resolve(path, alice)
    with pytest.raises(BadRequest, match="bytes"):
        locate("@personal", "é" * 449, alice)
    with pytest.raises(ValueError):
        Principal(sub="../x")


def test_visible_roots_and_messages():
    stored = ["example", "@public", f"@personal.{SUB}", "@shared", "zeta"]
    assert visible_roots(stored, authenticated=False) == ["example", "zeta", "@public"]
    assert visible_roots(stored, authenticated=True) == ["example", "zeta", "@public", "@personal", "@shared"]
    with pytest.raises(DatasetNotFound, match=r"^@personal/x\.b2nd$"):
        with speaking_as(Principal(sub=SUB)):
            raise DatasetNotFound(f"@personal.{SUB}/x.b2nd")


def test_generated_passwords_fit_the_policy_and_command_lines():
    """A generated password never starts with "-" (argparse would read it as an option)."""
    import re

    from functions.admin import generate_password

    for _ in range(5000):
        password = generate_password()
        assert password[0].isalpha()
        assert len(password) >= 12 and re.search("[a-z]", password) and re.search("[A-Z]", password)
        assert re.search("[0-9]", password)
