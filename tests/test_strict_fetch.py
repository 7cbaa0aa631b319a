"""Strict ``/api/fetch`` as Caterva2 answers it, over real HTTP (and the real caterva2.Client).

Every parameter narrows the answer, so what the server cannot honour is refused,
never ignored; bodies are bounded before they are read; a plain file is downloaded.
"""

from __future__ import annotations

import json
import socket
import urllib.parse

import blosc2
import caterva2 as cat2
import httpx
import numpy as np
import pytest

from functions.engine import fetchrules
from infra.example_data import expected

E = expected()
DS = "example/ds-1d.b2nd"  # int64, 1000 elements


@pytest.fixture(scope="module")
def http(api_url):
    with httpx.Client(base_url=api_url, timeout=60) as c:
        yield c


def _points(resp: httpx.Response) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    return blosc2.ndarray_from_cframe(resp.content)[:]


# --------------------------------------------------------------------------- body shape: 422


def test_a_field_the_body_does_not_know_is_refused_422(http):
    r = http.post(f"/api/fetch/{DS}", json={"indicies": "[[1,5,9]]"})
    assert r.status_code == 422
    (error,) = r.json()["detail"]  # FastAPI's list
    assert error["type"] == "extra_forbidden" and error["loc"] == ["body", "indicies"]
    # The right name is answered
    assert np.array_equal(_points(http.post(f"/api/fetch/{DS}", json={"indices": "[[1,5,9]]"})), E["ds-1d.b2nd"][[1, 5, 9]])


def test_a_body_that_is_not_json_is_refused_without_being_echoed(http):
    body = b'{"indices": "[' + b"7" * (1 << 20)
    r = http.post(f"/api/fetch/{DS}", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert b"7777" not in r.content and len(r.content) < 1000
    assert r.json()["detail"][0]["type"] == "json_invalid"
    wrong_type = http.post(f"/api/fetch/{DS}", json={"slice_": 5})
    assert wrong_type.status_code == 422 and wrong_type.json()["detail"][0]["loc"] == ["body", "slice_"]


def test_query_errors_keep_their_400(http):
    # Only the body is held to FastAPI's 422: a bad query parameter still says what is wrong in text
    r = http.get("/api/chunk/example/ds-1d.b2nd", params={"nchunk": "x"})
    assert r.status_code == 400 and isinstance(r.json()["detail"], str)


# --------------------------------------------------------------------------- coordinates: 400


@pytest.mark.parametrize(
    ("indices", "fragment"),
    [
        ("[[1,true]]", "only integers"),
        ("[true]", "only integers"),
        ("[{}]", "not an integer"),
        ("[[1.5]]", "not an integer"),
        ("[[999999]]", "out of bounds"),
        ("[[-1001]]", "out of bounds"),
        ("[[100000000000000000000000]]", "beyond 64 bits"),
        ("[[1], [2]]", "2 entries for 1"),
        ("nonsense", "not JSON"),
        ('{"a": 1}', "JSON list"),
    ],
)
def test_coordinates_refuse_what_they_cannot_read(http, indices, fragment):
    for r in (
        http.get(f"/api/fetch/{DS}", params={"indices": indices}),
        http.post(f"/api/fetch/{DS}", json={"indices": indices}),
    ):
        assert r.status_code == 400, r.text
        assert fragment in r.json()["detail"]


def test_good_coordinates_still_read(http):
    want = E["ds-1d.b2nd"][[0, 999, -1000, -1]]
    assert np.array_equal(_points(http.get(f"/api/fetch/{DS}", params={"indices": "[[0,999,-1000,-1]]"})), want)
    assert np.array_equal(_points(http.post(f"/api/fetch/{DS}", json={"indices": [[0, 999, -1000, -1]]})), want)


def test_coordinates_do_not_combine_with_a_slice(http):
    for r in (
        http.get(f"/api/fetch/{DS}", params={"indices": "[[1,2]]", "slice_": "0:3"}),
        http.post(f"/api/fetch/{DS}", json={"indices": "[[1,2]]", "slice_": "0:3"}),
    ):
        assert r.status_code == 400 and "cannot be combined" in r.json()["detail"]


def test_more_coordinates_than_one_fetch_gathers_are_refused(http):
    key = json.dumps([[0] * (fetchrules.MAX_COORDS + 1)], separators=(",", ":"))
    r = http.post(f"/api/fetch/{DS}", json={"indices": key})
    assert r.status_code == 400 and "batches" in r.json()["detail"]
    # The character bound refuses before the parse: this is not even JSON past its start
    r = http.post(f"/api/fetch/{DS}", json={"indices": "[" + "0" * (fetchrules.MAX_INDICES_CHARS + 1) + "]"})
    assert r.status_code == 400 and "at most" in r.json()["detail"]


# --------------------------------------------------------------------------- body bound: 413


def _status_line(api_url: str, head: bytes) -> bytes:
    """Send only a request's head (no body) and read the answer's status line."""
    url = urllib.parse.urlsplit(api_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head)
        return sock.recv(4096).split(b"\r\n", 1)[0]


def test_a_body_past_the_bound_is_refused_before_it_is_read(api_url, http):
    # The answer comes with not one byte of the declared 32 MB sent
    declared = 32 << 20
    head = (
        f"POST /api/fetch/{DS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\nConnection: close\r\n\r\n"
    ).encode()
    assert b" 413 " in _status_line(api_url, head)
    # A body without a length is counted as it arrives
    def chunks():
        yield b'{"indices": "['
        for _ in range(12):
            yield b"0" * (1 << 20)

    r = http.post(f"/api/fetch/{DS}", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "ask in batches" in r.json()["detail"]
    # ... and a body under the bound is answered by the parse
    assert http.post(f"/api/fetch/{DS}", json={"indices": "[[0,1]]"}).status_code == 200


# --------------------------------------------------------------------------- what is fetched


def test_a_plain_file_is_downloaded_not_fetched(api_url, http):
    r = http.get("/api/fetch/example/README.md")
    assert r.status_code == 400 and "/api/download/example/README.md" in r.json()["detail"]
    assert http.get("/api/download/example/README.md").content == E["README.md"]
    with pytest.raises(httpx.HTTPStatusError):
        cat2.Client(api_url).fetch("example/README.md")
    # An SChunk is a dataset: fetched as before
    hello = http.get("/api/fetch/example/ds-hello.b2frame", params={"slice_": "0:12"})
    assert blosc2.schunk_from_cframe(hello.content)[:] == E["ds-hello.b2frame"][:12]


def test_a_move_into_a_root_that_is_not_a_space_is_refused(stack, api_url):
    user, password = stack.resources["demo_user"], stack.resources["demo_password"]
    client = cat2.Client(api_url, (user, password))
    src = client.upload(np.arange(5), "@personal/strict-move/a.b2nd")
    for dst in ("foo", "foo/bar", "example/a.b2nd"):
        with pytest.raises(httpx.HTTPStatusError) as info:
            client.move(src.path, dst)
        assert "Bad Request" in str(info.value)
    assert "strict-move/a.b2nd" in client.get_list("@personal")
    r = httpx.post(f"{api_url}/api/copy/", json={"src": str(src.path), "dst": "foo/a.b2nd"},
                   headers={"Cookie": client.cookie})
    assert r.status_code == 400 and "not a space" in r.json()["detail"]
