"""CORS from CAT_CORS_ORIGINS: preflights and responses over real HTTP (uvicorn), off by default."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from functions.api.app import create_app
from functions.aws import build_services

WEB = "https://app.example.org"


@pytest.fixture(scope="module")
def cors_api(stack):
    """The first region's API, built with CAT_CORS_ORIGINS set, on a free port."""
    import uvicorn

    settings = stack.regions[0].services.settings.model_copy(
        update={"cors_origins": f"{WEB}, http://localhost:3000/"}
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(build_services(settings)), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


def test_preflight_allows_the_clients_methods_and_headers(cors_api):
    got = httpx.options(
        f"{cors_api}/api/upload/@personal/x.b2nd",
        headers={
            "Origin": WEB,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert got.status_code == 200
    assert got.headers["access-control-allow-origin"] == WEB
    allowed = {h.strip().lower() for h in got.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert {"GET", "POST", "DELETE"} <= set(got.headers["access-control-allow-methods"].split(", "))
    assert got.headers["access-control-allow-credentials"] == "true"  # the c2subauth cookie
    assert int(got.headers["access-control-max-age"]) == 3600


def test_responses_carry_cors_headers_for_allowed_origins_only(cors_api):
    ok = httpx.get(f"{cors_api}/api/roots", headers={"Origin": "http://localhost:3000"})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "x-cat-cache" in ok.headers.get("access-control-expose-headers", "").lower()
    other = httpx.get(f"{cors_api}/api/roots", headers={"Origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    refused = httpx.options(
        f"{cors_api}/api/roots",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert refused.status_code == 400


def test_no_cors_by_default(api_url):
    got = httpx.get(f"{api_url}/api/roots", headers={"Origin": WEB})
    assert got.status_code == 200 and "access-control-allow-origin" not in got.headers
