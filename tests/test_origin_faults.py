"""The origin stalled or dead: cached data is served, the rest answers 503 with Retry-After, fast.

The stall is real: this module starts its own local stack (moto as a child
process, one regional API) and pauses moto with SIGSTOP, so every S3 call
connects and then never gets an answer — what a partition looks like.  The
shared ``stack`` fixture's moto is never touched.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import blosc2
import httpx
import numpy as np
import pytest

from functions.api.app import create_app
from functions.aws import build_services
from functions.engine.content import load_object
from functions.settings import Settings
from infra.local import LocalStack, StackConfig, free_port
from tests.serving import serve
from tests.test_writes import _new_writer

CACHED = "/api/fetch/example/dir1/ds-2d.b2nd"
# A client timeout well above the API's S3 budget (~3 s, then the breaker): a hang fails the test
BUDGET = 5.0


@pytest.fixture(scope="module")
def own_stack():
    st = LocalStack(StackConfig(port=0, regions=1, moto_in_thread=False, head_ttl=1.0)).start()
    try:
        yield st
    finally:
        if st._moto is not None and st._moto.poll() is None:
            os.kill(st._moto.pid, signal.SIGCONT)
        st.stop()


def _uncached(st) -> str:
    """A dataset published at the origin that the API has never read (its manifest and chunks are not cached)."""
    path = f"fresh-{uuid.uuid4().hex[:6]}.b2nd"
    st.regions[0].services.publisher.publish("stall", path, load_object(blosc2.asarray(np.arange(1000))))
    return f"/api/fetch/stall/{path}"


def test_a_stalled_origin_serves_cached_data_and_fails_fast_otherwise(own_stack):
    st = own_stack
    writer = _new_writer(st, "stall")
    with httpx.Client(base_url=st.api_url, timeout=BUDGET) as http:
        warm = http.get(CACHED)
        assert warm.status_code == 200
        assert http.get("/api/info/example/dir1/ds-2d.b2nd").status_code == 200
        assert http.get("/api/roots").status_code == 200
        uncached = [_uncached(st) for _ in range(2)]
        os.kill(st._moto.pid, signal.SIGSTOP)
        try:
            # Each request below must answer within BUDGET (httpx raises otherwise)
            again = http.get(CACHED)
            assert again.status_code == 200 and again.content == warm.content
            assert http.get("/api/info/example/dir1/ds-2d.b2nd").status_code == 200
            roots = http.get("/api/roots")
            assert roots.status_code == 200 and "example" in roots.json()
            for url in uncached:
                r = http.get(url)
                assert r.status_code == 503, r.text
                assert r.headers["retry-after"] and "not answering" in r.json()["detail"]
            r = http.post(
                "/api/upload/@personal/stalled.bin", files={"file": ("stalled.bin", b"x")}, headers=writer.headers
            )
            assert r.status_code == 503 and r.headers["retry-after"], r.text
        finally:
            os.kill(st._moto.pid, signal.SIGCONT)
        # Once S3 answers again, the breaker's probe closes it: uncached data is read
        deadline = time.monotonic() + 30
        while (r := http.get(uncached[0])).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert r.status_code == 200
        assert np.array_equal(blosc2.ndarray_from_cframe(r.content)[:], np.arange(1000))


def test_a_dead_origin_answers_503_with_retry_after(own_stack):
    """An API whose S3 endpoint refuses connections: roots and uploads answer 503, never 500."""
    st = own_stack
    writer = _new_writer(st, "dead")
    dead = Settings(
        origin_bucket="cat-dead-origin", cache_bucket="cat-dead-cache", endpoint_url=f"http://127.0.0.1:{free_port()}"
    )
    with serve(create_app(build_services(dead))) as url, httpx.Client(base_url=url, timeout=BUDGET * 2) as http:
        for path in ("/api/roots", "/api/list/example", "/api/info/example/ds-1d.b2nd", CACHED):
            r = http.get(path)
            assert r.status_code == 503, (path, r.text)
            assert r.headers["retry-after"] and r.json()["detail"]
    # The stack's own moto killed: its API (which verified the writer before) answers uploads with 503
    st._moto.kill()
    st._moto.wait()
    with httpx.Client(base_url=st.api_url, timeout=BUDGET * 2) as http:
        r = http.post("/api/upload/@personal/dead.bin", files={"file": ("dead.bin", b"x")}, headers=writer.headers)
        assert r.status_code == 503 and r.headers["retry-after"], r.text
        r = http.get("/api/fetch/example/dir2/ds-4d.b2nd")
        assert r.status_code == 503 and r.headers["retry-after"], r.text


def test_the_stall_breaker_fails_fast_then_lets_one_probe_through():
    from botocore.exceptions import ReadTimeoutError

    from functions.adapters.s3 import StallBreaker
    from functions.engine.errors import StoreUnavailable

    now = [100.0]
    breaker = StallBreaker(cooldown=5.0, clock=lambda: now[0])
    breaker.before_call()  # closed: calls go through
    breaker.after_call(exception=ReadTimeoutError(endpoint_url="http://s3"))
    with pytest.raises(StoreUnavailable, match="not answering"):
        breaker.before_call()
    now[0] += 5.1
    breaker.before_call()  # the probe
    with pytest.raises(StoreUnavailable):
        breaker.before_call()  # others still fail fast while it runs
    breaker.after_call(exception=None)  # S3 answered
    breaker.before_call()
    assert not breaker.open
