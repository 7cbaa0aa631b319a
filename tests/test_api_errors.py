"""Bad input gets a clear 4xx with a detail saying what was wrong; never a 500."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture(scope="module")
def http(api_url):
    with httpx.Client(base_url=api_url, timeout=10) as c:
        yield c


@pytest.mark.parametrize(
    ("url", "status", "fragment"),
    [
        ("/api/info/example/%2E%2E/secret", 400, "'..'"),
        ("/api/info/example/dir1/%2E%2E/%2E%2E/x", 400, "'..'"),
        ("/api/fetch/example/%2E/ds-1d.b2nd", 400, "'..' and '.'"),
        ("/api/info/nope", 404, "not found"),
        ("/api/info/example/nope.b2nd", 404, "not found"),
        ("/api/list/nope", 404, "not found"),
        ("/api/fetch/example/nope.b2nd", 404, "not found"),
        ("/api/fetch/example/ds-1d.b2nd?slice_=a:b", 400, "slice_ is not a slice"),
        ("/api/fetch/example/ds-1d.b2nd?slice_=1:2:3:4", 400, "slice_ is not a slice"),
        ("/api/fetch/example/ds-1d.b2nd?slice_=::0", 400, "step cannot be zero"),
        ("/api/fetch/example/ds-1d.b2nd?slice_=1,2", 400, "2 entries for 1"),
        ("/api/fetch/example/ds-1d.b2nd?slice_=5000", 400, "out of range"),
        ("/api/fetch/example/ds-1d.b2nd?field=a", 400, "structured dtype"),
        ("/api/fetch/example/ds-1d-fields.b2nd?field=zz", 400, "no field 'zz'"),
        ("/api/fetch/example/ds-1d-fields.b2nd?filter=__import__('os').system('x')", 400, "not allowed"),
        ("/api/fetch/example/ds-1d-fields.b2nd?filter=a.__class__", 400, "not allowed"),
        ("/api/fetch/example/ds-1d-fields.b2nd?filter=a%2B", 400, "does not parse"),
        ("/api/fetch/example/ds-1d-fields.b2nd?filter=a%2B1", 400, "boolean"),
        ("/api/fetch/example/ds-1d.b2nd?indices=[[1,2", 400, "indices is not JSON"),
        ("/api/fetch/example/ds-1d.b2nd?indices=[[1,5000]]", 400, "out of range"),
        ("/api/fetch/example/ds-hello.b2frame?field=a", 400, "n-d arrays"),
        ("/api/fetch/example", 400, "root, not a dataset"),
        ("/api/chunk/example/ds-1d.b2nd?nchunk=99", 400, "out of range"),
        ("/api/chunk/example/ds-1d.b2nd?nchunk=-1", 400, "out of range"),
        ("/api/chunk/example/ds-1d.b2nd?nchunk=x", 400, "nchunk"),
        ("/api/chunk/example/ds-1d.b2nd", 400, "nchunk"),
        ("/api/download/example/nope", 404, "not found"),
        ("/api/info/" + "a" * 2000, 400, "longer than"),
        ("/api/info/bad%5Croot/x", 400, "backslash"),
        ("/api/info/example/a%00b", 400, "control characters"),
        ("/api/plan/example/ds-1d.b2nd?slice_=x", 400, "slice_ is not a slice"),
        ("/api/subscribe/nope", 405, ""),
    ],
)
def test_bad_input(http, url, status, fragment):
    r = http.get(url)
    assert r.status_code == status, r.text
    if fragment:
        assert fragment in r.json()["detail"]


def test_subscribe_unknown_root_is_404(stack, http):
    assert http.post("/api/subscribe/nope").status_code == 401  # anonymous callers may not subscribe
    user, password = stack.resources["demo_user"], stack.resources["demo_password"]
    token = http.post("/auth/jwt/login", data={"username": user, "password": password}).cookies["c2subauth"]
    r = http.post("/api/subscribe/nope", headers={"Cookie": f"c2subauth={token}"})
    assert r.status_code == 404


def test_range_requests_are_refused_cleanly(http):
    # A stored frame serves ranges (tests/test_ranges.py); a slice is made per request
    r = http.get("/api/fetch/example/ds-1d.b2nd", params={"slice_": "0:5"}, headers={"Range": "bytes=0-99"})
    assert r.status_code == 416
    assert r.headers["accept-ranges"] == "none"
    assert "per request" in r.json()["detail"]
    r = http.get("/api/fetch/example/ds-1d.b2nd", headers={"Range": "bytes=99999999-"})
    assert r.status_code == 416
    assert r.headers["content-range"].startswith("bytes */")


def test_oversized_whole_fetch_is_413(stack, http):
    import blosc2
    import numpy as np

    from functions.engine.answers import AnswerLimits
    from functions.engine.content import load_object

    big = np.random.default_rng(0).random((1200, 1000))  # ~9.6 MB of incompressible doubles
    stack.regions[0].services.publisher.publish("errors", "big.b2nd", load_object(blosc2.asarray(big)))
    read = stack.regions[0].services.read
    old = read.limits
    # past the streamed limit too (and on a server that cannot stream, past the buffered one)
    for limits in (AnswerLimits(old.buffered, 5_000_000), AnswerLimits(old.buffered, 0)):
        read.limits = limits
        try:
            r = http.get("/api/fetch/errors/big.b2nd")
            assert r.status_code == 413
            assert "response limit" in r.json()["detail"]
            r = http.get("/api/download/errors/big.b2nd")
            assert r.status_code == 413
            small = http.get("/api/fetch/errors/big.b2nd?slice_=0:10")
            assert small.status_code == 200
        finally:
            read.limits = old


def test_post_fetch_accepts_a_body(http):
    import blosc2

    r = http.post("/api/fetch/example/ds-1d.b2nd", json={"slice_": "10:20"})
    assert r.status_code == 200
    assert list(blosc2.ndarray_from_cframe(r.content)[:]) == list(range(10, 20))


def test_openapi_docs_are_served(http):
    assert http.get("/docs").status_code == 200
    paths = http.get("/openapi.json").json()["paths"]
    assert "/api/fetch/{path}" in paths and "/api/plan/{path}" in paths
