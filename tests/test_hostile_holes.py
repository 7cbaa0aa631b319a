"""Smaller holes, closed: subscriptions, presigned sizes, lazy info, login lockout, forged addresses, chunked bodies."""

from __future__ import annotations

import socket
import uuid

import blosc2
import httpx
import numpy as np
import pytest
from starlette.requests import Request

from functions.api.auth import client_address
from functions.engine.limits import LoginLimiter
from tests.test_writes import _new_writer, post_file

RUN = uuid.uuid4().hex[:6]


def test_anonymous_callers_cannot_subscribe_a_region(api_url):
    for action in ("subscribe", "unsubscribe"):
        r = httpx.post(f"{api_url}/api/{action}/example")
        assert r.status_code == 401 and "logged-in user" in r.json()["detail"]
        assert r.headers["www-authenticate"] == "Bearer"


def test_presigned_uploads_are_bound_to_their_size(stack, api_url):
    writer = _new_writer(stack, "size")
    limit = stack.regions[0].services.settings.max_upload_bytes
    path = f"@personal/sized-{RUN}/blob.bin"
    url = f"{api_url}/api/upload-url/{path}"
    r = httpx.post(url, headers=writer.headers)
    assert r.status_code == 400 and "size" in r.json()["detail"]  # the size is required
    r = httpx.post(url, params={"size": -1}, headers=writer.headers)
    assert r.status_code == 400
    r = httpx.post(url, params={"size": limit + 1}, headers=writer.headers)
    assert r.status_code == 413 and "limit" in r.json()["detail"] and "url" not in r.json()
    plan = httpx.post(url, params={"size": 1000}, headers=writer.headers).json()
    assert plan["size"] == 1000
    # S3 refuses another length (a signed header); moto does not check signatures, so the
    # commit is the line that holds here: what was staged is not the declared size
    assert httpx.put(plan["url"], content=b"y" * 5000).status_code == 200
    r = httpx.post(f"{api_url}{plan['commit']}", headers=writer.headers)
    assert r.status_code == 400 and "5000 bytes, not the 1000" in r.json()["detail"]
    assert httpx.post(f"{api_url}{plan['commit']}", headers=writer.headers).status_code == 404  # deleted
    assert httpx.get(f"{api_url}/api/info/{path}", headers=writer.headers).status_code == 404


def test_info_of_a_lazy_expression_is_authorised_like_a_read(stack, api_url):
    owner, other = _new_writer(stack, "lzowner"), _new_writer(stack, "lzother")
    frame = blosc2.asarray(np.arange(10.0)).to_cframe()
    secret = f"@personal/secret-{RUN}.b2nd"
    assert post_file(api_url, secret, frame, owner.headers, name="s.b2nd").status_code == 200
    lazy = f"@shared/peek-{RUN}.b2nd"
    body = {"expression": "x * 2", "operands": {"x": secret}}
    r = httpx.post(f"{api_url}/api/upload_lazyarr/{lazy}", json=body, headers=owner.headers)
    assert r.status_code == 200, r.text
    mine = httpx.get(f"{api_url}/api/info/{lazy}", headers=owner.headers)
    assert mine.status_code == 200 and mine.json()["expression"]
    for what in ("info", "fetch"):
        r = httpx.get(f"{api_url}/api/{what}/{lazy}", headers=other.headers)
        assert r.status_code == 403 and "not readable by you" in r.json()["detail"], (what, r.text)
        assert "x * 2" not in r.text and "secret" not in r.text


def _from(address: str, **kw) -> httpx.Client:
    """A client whose connections come from *address* (any 127.x address is this machine on Linux)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=20, **kw)


@pytest.fixture
def region2_limiter(stack):
    """A fresh login limiter on region 2 (the address is shared by every test), put back afterwards."""
    region = stack.regions[1]
    fresh = region.services.settings.login_failures_per_minute
    region.services.login_limiter = LoginLimiter(fresh)
    yield region
    region.services.login_limiter = LoginLimiter(fresh)


def test_failures_from_one_address_do_not_lock_the_user_out_elsewhere(stack, region2_limiter):
    victim = _new_writer(stack, "victim")
    url = region2_limiter.url
    budget = region2_limiter.services.settings.login_failures_per_minute
    with _from("127.0.0.2", base_url=url) as attacker:
        for _ in range(budget):
            r = attacker.post("/auth/jwt/login", data={"username": victim.name, "password": "guess"})
            assert r.status_code == 400
        r = attacker.post("/auth/jwt/login", data={"username": victim.name, "password": victim.password})
        assert r.status_code == 429 and r.headers["retry-after"]
    with _from("127.0.0.3", base_url=url) as owner:
        r = owner.post("/auth/jwt/login", data={"username": victim.name, "password": victim.password})
        assert r.status_code == 204


def test_a_forged_x_forwarded_for_is_not_an_address(stack, region2_limiter):
    url = region2_limiter.url
    budget = region2_limiter.services.settings.login_failures_per_minute
    with _from("127.0.0.4", base_url=url) as attacker:
        for i in range(budget):
            forged = {"X-Forwarded-For": f"10.0.0.{i}"}
            r = attacker.post("/auth/jwt/login", data={"username": f"nobody{i}", "password": "x"}, headers=forged)
            assert r.status_code == 400
        r = attacker.post(
            "/auth/jwt/login", data={"username": "someone", "password": "x"}, headers={"X-Forwarded-For": "10.9.9.9"}
        )
        assert r.status_code == 429  # the address is 127.0.0.4, whatever the header says


def _request(headers: dict, client=("203.0.113.7", 0)) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw, "client": client})


def test_x_forwarded_for_counts_only_when_configured():
    forged = {"X-Forwarded-For": "1.1.1.1, 198.51.100.9"}
    assert client_address(_request(forged)) == "203.0.113.7"  # API Gateway's sourceIp (Mangum's client)
    assert client_address(_request(forged), trust_forwarded_for=True) == "198.51.100.9"  # the proxy's entry
    assert client_address(_request({}), trust_forwarded_for=True) == "203.0.113.7"


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(stack, api_url):
    """The 413 arrives while the body is still being sent: the server never waits for the rest."""
    writer = _new_writer(stack, "chunked")
    limit = stack.regions[0].services.settings.payload_limit
    host, port = api_url.removeprefix("http://").split(":")
    boundary = "b0undary"
    head = (
        f"POST /api/upload/@personal/chunked-{RUN}.bin HTTP/1.1\r\nHost: {host}\r\n"
        f"{'Cookie: ' + writer.headers['Cookie']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    piece = b"z" * (256 << 10)
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head + f"{len(part):x}\r\n".encode() + part + b"\r\n")
        sent = 0
        while sent <= limit + (1 << 20):  # past the limit, and never the final chunk
            sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sent += len(piece)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            assert data, "the server closed without answering"
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert httpx.get(f"{api_url}/api/info/@personal/chunked-{RUN}.bin", headers=writer.headers).status_code == 404
